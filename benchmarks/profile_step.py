"""Where a step's time goes: each pass and each compiled kernel of a step timed on its own.

    .venv/bin/python benchmarks/profile_step.py [--size 1000000] [--steps 12] [--warm 12] [--threads N] [--plain]

Builds the reference market (``benchmarks/reference.yaml``) at ``--size`` people, runs
``--warm`` steps so the market is past its start, then runs ``--steps`` more steps with
every call that :meth:`sim.model.LoyaltyModel.step` makes into :mod:`sim.engine` (and the
measures, ``LoyaltyModel._record``) wrapped in a clock. A pass (``sim.engine.PASSES``) runs
as Python here, so that each kernel it calls is timed too; the pass's own figure includes
what calling those kernels from Python costs (tens of microseconds a call), so the steps take
longer than with ``--plain``. For the same reason ``close`` calls each of its kernels once per
range here, not 16 chunks at a time (``sim.engine.SETTLE_CHUNKS``; the same results). Prints
milliseconds per step for each (wall-clock time: a pass split among ``--threads`` threads
counts once; a kernel inside a pass, the range of the pass where it took longest, all of its
calls there added up), and what is left (the step's own Python: offers, flows, the ledger).

``--plain`` only times the steps, with no clock inside them: the figure to compare two
versions of the engine with (run them alternately; it works with any version).
``--kernel NAME`` times one kernel alone (on one thread, over the whole market): its first
call of a step is recorded with the state it found, then repeated ``--steps`` times, the state
put back before each; prints the fastest and the median time. To compare two versions of one
kernel.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warm", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="threads of the step (default: every available core)")
    parser.add_argument("--plain", action="store_true", help="only time the steps (no clocks inside them)")
    parser.add_argument("--kernel", help="time one kernel of sim.engine alone, on one thread (e.g. consume)")
    args = parser.parse_args()
    if args.kernel:
        from sim import engine

        compiled = sorted(name for name, value in vars(engine).items() if getattr(getattr(value, "py_func", None), "__module__", None) == "sim.engine" and value not in engine.PASSES)
        if args.kernel not in compiled:
            parser.error(f"--kernel: no compiled kernel {args.kernel!r} in sim.engine; one of: {', '.join(compiled)}")
        args.threads = 1

    from sim import engine
    from sim.api import load_scenario
    from sim.model import LoyaltyModel
    from sim.parallel import Split

    LoyaltyModel(load_scenario(HERE / "reference.yaml", {"market.population": 200, "market.steps": 2})).run()  # load kernels
    scenario = load_scenario(
        HERE / "reference.yaml",
        {"market.population": args.size, "market.steps": args.warm + args.steps, "market.seed": args.seed},
    )
    model = LoyaltyModel(scenario, threads=args.threads)
    for _ in range(args.warm):
        model.step()
    if args.plain:
        start = time.perf_counter()
        for _ in range(args.steps):
            model.step()
        total = time.perf_counter() - start
        print(f"reference market, {args.size:,} people on {model._split.threads} thread(s), {args.steps} steps after {args.warm}: "
              f"{total / args.steps * 1e3:.2f} ms per step, {args.size * args.steps / total:,.0f} customer-steps/s (plain)")
        return

    if args.kernel:
        time_kernel(model, args.kernel, args.steps)
        return

    clock: dict[str, float] = defaultdict(float)

    def timed(name, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                clock[name] += time.perf_counter() - start

        return wrapper

    each = Split.each
    by_range: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))  # (pass, kernel): time per range
    running = threading.local()  # the pass a thread is running

    def timed_kernel(name, function):  # a kernel called by a pass, timed per range
        def wrapper(*a):
            start = time.perf_counter()
            try:
                return function(*a)
            finally:
                by_range[running.name, name][running.lo] += time.perf_counter() - start

        return wrapper

    def timed_each(split, kernel, *a):  # a kernel or pass over every range of customers, by its name
        start = time.perf_counter()
        try:
            return each(split, passes.get(kernel, kernel), *a)
        finally:
            clock[getattr(kernel, "__name__", str(kernel))] += time.perf_counter() - start

    # A pass (engine.PASSES) calls several kernels for its range. Here it runs as Python (its
    # py_func), which looks the kernels up in the engine module, where they are wrapped in clocks.
    def in_python(p):
        def run(*a):
            running.name, running.lo = p.__name__, a[-2]  # a kernel may be called on parts of the range
            return p.py_func(*a)

        return run

    passes = {p: in_python(p) for p in engine.PASSES}
    kernels = {name for p in engine.PASSES for name in p.py_func.__code__.co_names if hasattr(getattr(engine, name, None), "py_func")}
    direct = ("marketing_reach",)  # kernels the step calls once, not per range
    originals = {name: getattr(engine, name) for name in (*direct, *kernels)}
    for name in direct:
        setattr(engine, name, timed(name, originals[name]))
    for name in kernels:
        setattr(engine, name, timed_kernel(name, originals[name]))
    Split.each = timed_each
    record = LoyaltyModel._record
    LoyaltyModel._record = timed("_record (measures)", record)
    stretch, engine.SETTLE_CHUNKS = engine.SETTLE_CHUNKS, model._split.chunks  # one call per range of each kernel of close
    start = time.perf_counter()
    for _ in range(args.steps):
        model.step()
    total = time.perf_counter() - start
    for name, function in originals.items():
        setattr(engine, name, function)
    Split.each = each
    LoyaltyModel._record = record
    engine.SETTLE_CHUNKS = stretch
    # a kernel inside a pass: the longest of its ranges' times (the ranges run at once)
    inner = {f"{name} (part of {within})": max(times.values()) for (within, name), times in by_range.items()}

    print(f"reference market, {args.size:,} people on {model._split.threads} thread(s), {args.steps} steps after {args.warm}: "
          f"{total / args.steps * 1e3:.1f} ms per step, {args.size * args.steps / total:,.0f} customer-steps/s")
    for name, seconds in sorted({**clock, **inner}.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<36} {seconds / args.steps * 1e3:8.1f} ms/step  {seconds / total:6.1%}")
    rest = total - sum(clock.values())
    print(f"  {'rest of the step':<36} {rest / args.steps * 1e3:8.1f} ms/step  {rest / total:6.1%}")


def time_kernel(model, name: str, repeats: int) -> None:
    """Record the first call of kernel ``name`` in the next step, then time it ``repeats`` times on
    the state it found (see the module's docstring)."""
    import numpy as np

    from sim import engine
    from sim.parallel import Split

    kernel = getattr(engine, name)
    recorded: list = []

    def record(*a):
        if not recorded:
            arrays = [x for x in (*model._pop, *a) if isinstance(x, np.ndarray)]
            recorded.append((a, arrays, [x.copy() for x in arrays]))
        return kernel(*a)

    each, passes = Split.each, {p: p.py_func for p in engine.PASSES}  # passes as Python, to see the call
    Split.each = lambda split, k, *a: each(split, passes.get(k, k), *a)
    setattr(engine, name, record)
    try:
        model.step()
    finally:
        setattr(engine, name, kernel)
        Split.each = each
    if not recorded:
        raise SystemExit(f"--kernel: {name} was not called in a step of this market")
    a, arrays, saved = recorded[0]
    times = []
    for _ in range(repeats):
        for array, copy in zip(arrays, saved):
            array[...] = copy
        start = time.perf_counter()
        kernel(*a)
        times.append(time.perf_counter() - start)
    print(f"{name} alone, {model.population.size:,} people on one thread, {repeats} calls: "
          f"fastest {min(times) * 1e3:.2f} ms, median {np.median(times) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
