"""Safety: names given by users never lead a write out of the results folder, and a market too
large for the machine's memory is refused up front with the estimate (the estimate itself is
checked against a measurement of the engine)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import sim.experiments as ex
import sim.manifest as mf
from sim import limits
from sim.api import run as api_run
from sim.loader import ScenarioError
from sim.model import LoyaltyModel
from sim.results import safe_component, write_run

from conftest import make_scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = {"market": {"population": 200, "steps": 3, "seed": 1}}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    monkeypatch.setattr(mf, "FSYNC", False)


def files_under(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["../../escape", "..", ".", "/etc/passwd", "a/../../b", "~root", "x" * 300, "", "con\x00nul"])
def test_names_become_one_folder_component(name):
    part = safe_component(name)
    assert part and "/" not in part and part not in (".", "..") and len(part) <= 64 and "\x00" not in part


def test_ids_and_variant_names_cannot_leave_the_results_folder(tmp_path):
    out = tmp_path / "deep" / "out"
    spec = make_scenario(**TINY)
    write_run(LoyaltyModel(spec, seed=1).run(), out, rid="../../../run-escape", charts=False)
    ex.compare([("../../evil", spec), ("/abs/olute", make_scenario(sets={"firms.focal.price.list": 12.0}, **TINY))], 2, out=out, exp_id="../../exp-escape")
    ex.replicate(spec, 2, out=out, exp_id="..")
    written = files_under(tmp_path)
    assert written and all(out.resolve() in p.parents for p in written), sorted(map(str, written))


def test_variant_names_that_would_share_a_file_are_refused(tmp_path):
    spec = make_scenario(**TINY)
    with pytest.raises(ex.ExperimentError, match="distinct file names"):
        ex.compare([("a/b", spec), ("a_b", spec)], 2, out=tmp_path, exp_id="e")


# --------------------------------------------------------------------------- memory


def _peak(population: int, degree: float) -> int:
    scenario = make_scenario(market={"population": population, "steps": 2, "network": {"mean_degree": degree}})
    gc.collect()
    tracemalloc.start()
    try:
        model = LoyaltyModel(scenario, seed=1).run()
        model.customers_frame()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_memory_estimate_is_measured_not_guessed():
    """The engine's peak memory per person (and per tie) is measured here; the estimate must
    not fall short of it, nor exceed it threefold (re-measure with
    benchmarks/memory_per_customer.py and update sim/limits.py when the engine changes)."""
    small, large = 20_000, 80_000
    measured = (_peak(large, 10) - _peak(small, 10)) / (large - small)
    estimated = limits.BYTES_PER_PERSON + 10 * limits.BYTES_PER_TIE
    assert measured <= estimated <= 3 * measured, (measured, estimated)


def test_a_market_too_large_for_the_memory_is_refused_with_the_estimate():
    spec = make_scenario(market={"population": 1_000_000, "steps": 10, "network": {"mean_degree": 10}})
    need = limits.estimate(spec).total
    assert need == limits.BASE_BYTES + 1_000_000 * (limits.BYTES_PER_PERSON + 10 * limits.BYTES_PER_TIE) + 11 * 2 * limits.METRIC_COLUMNS * 16
    message = limits.resource_problem(spec, available=need - 1, where="the test's limit")
    assert "1,000,000 people" in message and limits.human(need) in message and "the test's limit" in message
    assert "lower market.population" in message
    assert limits.resource_problem(spec, available=need) is None
    four = limits.resource_problem(spec, available=need, copies=4, where="the test's limit")
    assert f"{limits.human(4 * need)} for 4 worker processes at once" in four


def test_the_api_and_the_experiments_refuse_it_too(tmp_path, monkeypatch):
    monkeypatch.setenv(limits.ENV_LIMIT, "100MB")  # less than the program itself
    spec = make_scenario(**TINY)
    with pytest.raises(ScenarioError, match="market.population: .*of memory"):
        api_run(spec)
    with pytest.raises(ex.ExperimentError, match="market.population: .*LOYALTY_SIM_MAX_MEMORY=100MB"):
        ex.replicate(spec, 2, out=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("setting, exit_code, text", [
    ("1MB", 2, "more than the limit LOYALTY_SIM_MAX_MEMORY=1MB"),
    ("lots", 2, "LOYALTY_SIM_MAX_MEMORY='lots': expected a size such as 8GB"),
    ("64GB", 0, ""),
])
def test_the_command_line_reports_the_estimate(tmp_path, setting, exit_code, text):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nmarket: {population: 300, steps: 2}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", limits.ENV_LIMIT: setting, "LOYALTY_SIM_FSYNC": "0"}
    result = subprocess.run([sys.executable, "-m", "sim", "run", path, "--out", tmp_path / "out", "--no-charts", "-q"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    if exit_code:
        assert result.stderr.startswith(f"error: {path}: market.population: ") and text in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "out").exists()
