"""Where a step's time goes: each compiled kernel of a step timed on its own.

    .venv/bin/python benchmarks/profile_step.py [--size 1000000] [--steps 12] [--warm 12]

Builds the reference market (``benchmarks/reference.yaml``) at ``--size`` people, runs
``--warm`` steps so the market is past its start, then runs ``--steps`` more steps with
every call that :meth:`sim.model.LoyaltyModel.step` makes into :mod:`sim.engine` (and the
measures, ``LoyaltyModel._record``) wrapped in a clock. Prints milliseconds per step for
each, and what is left (the step's own Python: offers, flows, the ledger).
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

    from sim import engine
    from sim.api import load_scenario
    from sim.model import LoyaltyModel

    LoyaltyModel(load_scenario(HERE / "reference.yaml", {"market.population": 200, "market.steps": 2})).run()  # load kernels
    scenario = load_scenario(
        HERE / "reference.yaml",
        {"market.population": args.size, "market.steps": args.warm + args.steps, "market.seed": args.seed},
    )
    model = LoyaltyModel(scenario)
    for _ in range(args.warm):
        model.step()

    clock: dict[str, float] = defaultdict(float)

    def timed(name, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                clock[name] += time.perf_counter() - start

        return wrapper

    kernels = ("acquire", "start", "consume", "word_of_mouth", "decide", "settle", "age", "orphan", "typical_values")
    originals = {name: getattr(engine, name) for name in kernels}
    for name, function in originals.items():
        setattr(engine, name, timed(name, function))
    record = LoyaltyModel._record
    LoyaltyModel._record = timed("_record (measures)", record)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.step()
    total = time.perf_counter() - start
    for name, function in originals.items():
        setattr(engine, name, function)
    LoyaltyModel._record = record

    print(f"reference market, {args.size:,} people, {args.steps} steps after {args.warm}: {total / args.steps * 1e3:.1f} ms per step, "
          f"{args.size * args.steps / total:,.0f} customer-steps/s")
    for name, seconds in sorted(clock.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {seconds / args.steps * 1e3:8.1f} ms/step  {seconds / total:6.1%}")
    rest = total - sum(clock.values())
    print(f"  {'rest of the step':<20} {rest / args.steps * 1e3:8.1f} ms/step  {rest / total:6.1%}")


if __name__ == "__main__":
    main()
