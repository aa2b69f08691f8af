"""A step shared among threads: the ranges, and the same results whatever their number."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from conftest import make_scenario
from test_invariants import RICH

from sim import parallel
from sim.experiments import ProcessExecutor
from sim.model import LoyaltyModel
from sim.parallel import CHUNK, Split
from sim.population import Population


@pytest.mark.parametrize("n", [0, 1, CHUNK - 1, CHUNK, 5 * CHUNK + 17, 40 * CHUNK])
@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_ranges_cover_everyone_once_in_whole_chunks(n, threads):
    split = Split(n, threads)
    assert 1 <= split.threads <= threads
    assert len(split.ranges) == split.threads
    assert split.ranges[0][0] == 0 and split.ranges[-1][1] == n
    for (_, hi), (lo, _) in zip(split.ranges, split.ranges[1:]):
        assert hi == lo and lo % CHUNK == 0  # contiguous, starting at whole chunks
    assert all(lo <= hi for lo, hi in split.ranges)
    assert split.chunks * CHUNK >= n > (split.chunks - 1) * CHUNK or n == split.chunks == 0


def test_small_markets_run_on_fewer_threads():
    assert Split(3 * CHUNK, 2).threads == 1  # handing work to a thread would cost more than it saves
    assert Split(2 * parallel.MIN_CHUNKS * CHUNK, 2).threads == 2
    assert Split(100 * CHUNK, 3).threads == 3


def test_each_returns_the_results_in_the_order_of_the_ranges():
    split = Split(20 * CHUNK, 4)
    assert split.each(lambda tag, lo, hi: (tag, lo, hi), "x") == [("x", lo, hi) for lo, hi in split.ranges]


def test_each_passes_on_a_kernels_error():
    def fails(lo, hi):
        if lo > 0:
            raise RuntimeError(f"range {lo}")
        return lo

    with pytest.raises(RuntimeError, match="range"):
        Split(20 * CHUNK, 2).each(fails)


def test_an_error_on_the_calling_thread_leaves_the_helpers_ready_for_the_next_call():
    split = Split(20 * CHUNK, 2)

    def fails_first(lo, hi):
        if lo == 0:
            raise RuntimeError("first range")
        return lo

    with pytest.raises(RuntimeError, match="first range"):
        split.each(fails_first)
    assert split.each(lambda lo, hi: (lo, hi)) == split.ranges  # no result of the failed call left behind


def test_while_the_helpers_are_busy_a_call_runs_its_ranges_on_its_own_thread():
    import threading

    split = Split(20 * CHUNK, 2)

    def where(lo, hi):
        return lo, hi, threading.current_thread().name

    free = split.each(where)
    assert [r[:2] for r in free] == split.ranges
    assert free[0][2] == threading.current_thread().name != free[1][2]  # the second range on a helper
    with split._crew.lock:  # another model's step holds the helpers
        busy = split.each(where)
    assert busy == [(lo, hi, threading.current_thread().name) for lo, hi in split.ranges]


def test_steps_of_models_on_two_python_threads_at_once_give_their_own_results():
    """Helpers are shared by every model of the process: a call made while another thread
    uses them runs its ranges on its own thread, with the same results."""
    import threading

    def run():
        model = LoyaltyModel(make_scenario(market={"population": 12 * CHUNK, "steps": 6}), threads=2)
        model.run()
        return model.metrics_frame()

    alone = run()
    frames = [None, None]

    def worker(k):
        frames[k] = run()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for frame in frames:
        assert frame is not None and frame.equals(alone)


def test_threads_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Split(10, 0)
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_default_threads(0)


def test_default_threads_can_be_set_for_the_process():
    try:
        parallel.set_default_threads(3)
        assert parallel.default_threads() == 3
        assert Split(100 * CHUNK).threads == 3
    finally:
        parallel.set_default_threads(None)
    assert parallel.default_threads() == parallel.available_cores()


def _state(model: LoyaltyModel) -> dict[str, np.ndarray]:
    out = {f"metrics.{name}": rows for name, rows in model.metrics.table.items()}
    out.update({f"population.{f.name}": getattr(model.population, f.name) for f in fields(Population)})
    out.update({f"ledger.{name}": rows for name, rows in model.ledger.accounts.items()})
    return out


@pytest.mark.parametrize("floor", [False, True])
def test_results_do_not_depend_on_the_number_of_threads(monkeypatch, floor):
    """Every metric, every account and every customer's state are bit-for-bit the same on 1
    to 5 threads, through a rich market: a firm entering (its typical value is taken over the
    people it can serve), a firm leaving (its customers are orphaned), rewards ending, word
    of mouth across the ranges, and the retention counterfactual."""
    monkeypatch.setattr(parallel, "MIN_CHUNKS", 1)  # a range per chunk in a small market
    scenario = make_scenario(**{**RICH, "market": {"population": 5 * CHUNK - 300, "steps": 24, "seed": 8}})
    retention = np.full(scenario.market.steps + 1, 0.99) if floor else None
    runs = {}
    for threads in (1, 2, 3, 5):
        model = LoyaltyModel(scenario, threads=threads, retention_floor=retention)
        assert model._split.threads == threads
        runs[threads] = _state(model.run())
    reference = runs.pop(1)
    assert reference["metrics.customers"][-1].sum() > 0 and reference["metrics.word_of_mouth_positive"].sum() > 0
    for threads, state in runs.items():
        for name, values in reference.items():
            assert np.array_equal(values, state[name], equal_nan=True), f"{name} differs on {threads} threads"


def test_stretches_of_settling_do_not_change_the_results():
    """engine.close settles a range SETTLE_CHUNKS chunks at a time: on 1 thread and on 3 the
    stretches start at different people (a long market, so a range holds several)."""
    from sim import engine

    population = (2 * engine.SETTLE_CHUNKS + 7) * CHUNK + 123
    scenario = make_scenario(**{**RICH, "market": {"population": population, "steps": 20, "seed": 3}})
    one, three = (_state(LoyaltyModel(scenario, threads=threads).run()) for threads in (1, 3))
    assert one["metrics.won_from_rivals"].sum() > 0  # people moved between firms
    for name, values in one.items():
        assert np.array_equal(values, three[name], equal_nan=True), f"{name} differs"


def test_worker_processes_share_the_cores(monkeypatch):
    seen = {}

    class Pool:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Pool)
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    ProcessExecutor(3)
    assert seen["initializer"] is parallel.set_default_threads and seen["initargs"] == (2,)
    ProcessExecutor(16)
    assert seen["initargs"] == (1,)


def test_a_persons_index_passes_through_unchanged():
    import numba

    from sim.rules import person

    @numba.njit
    def total(values, lo, hi):
        out = 0.0
        for p in range(lo, hi):
            out += values[person(p)]
        return out

    values = np.arange(10.0)
    assert total(values, 3, 7) == 3 + 4 + 5 + 6


@pytest.mark.parametrize("rows", [0, 1, 7, 1000])
def test_a_large_csv_is_the_same_file_on_any_number_of_threads(tmp_path, monkeypatch, rows):
    """customers.csv is turned into text in pieces on threads and written in order."""
    import pyarrow as pa

    from sim import manifest

    monkeypatch.setattr(manifest, "CSV_PIECE_ROWS", 3)  # many pieces, and more than two per thread
    table = pa.table({
        "n": np.arange(rows),
        "x": np.linspace(0.0, 1.0, rows),
        "firm": pa.DictionaryArray.from_arrays(np.arange(rows, dtype=np.int16) % 3, ["a", "b,c", ""]),
    })
    one = manifest.atomic_table_csv(table, tmp_path / "one.csv", threads=1).read_bytes()
    assert one.count(b"\n") == rows + 1  # a header, then one line per row
    for threads in (2, 3, 5):
        assert manifest.atomic_table_csv(table, tmp_path / f"{threads}.csv", threads=threads).read_bytes() == one
    assert manifest.atomic_table_csv(table.to_pandas(), tmp_path / "frame.csv", threads=2).read_bytes() == one


def test_the_customers_table_holds_what_the_customers_frame_holds():
    import pyarrow as pa

    model = LoyaltyModel(make_scenario(market={"population": 3 * CHUNK, "steps": 3}), threads=1)
    model.run()
    frame, table = model.customers_frame(), model.customers_table()
    assert list(frame.columns) == table.column_names
    for name in frame.columns:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        assert column.to_pylist() == frame[name].tolist(), name
    assert (frame["firm"] == "").sum() == (model.population.firm < 0).sum() > 0  # prospects have no firm

