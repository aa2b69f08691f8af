"""Do the engine and the Mesa baseline agree? The agreement test's comparison, with more seeds.

    .venv/bin/python benchmarks/agreement.py [--engine-seeds 200] [--baseline-seeds 96] [--jobs 2]

Runs the reference market (``benchmarks/reference.yaml``) at the size of
``tests/test_baseline.py`` (2,000 people, 24 steps) with the engine over seeds 1..N and with
the baseline over seeds 1001..1000+M (the two draw their random numbers differently, so they
agree in distribution, not run by run), and prints, per firm, the mean annual retention, mean
running satisfaction and total profit of each with its standard error, and the difference in
standard errors (z). With 9 comparisons, one |z| near 2 is expected by chance about once in three
runs of this script.
"""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

POPULATION, STEPS = 2_000, 24


def _outcomes(args: tuple[str, int]) -> dict[str, np.ndarray]:
    implementation, seed = args
    from mesa_baseline import BaselineModel
    from test_baseline import outcomes, reference

    from sim.model import LoyaltyModel

    model = LoyaltyModel if implementation == "engine" else BaselineModel
    return outcomes(model(reference(POPULATION, STEPS), seed=seed).run().metrics_frame())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-seeds", type=int, default=200)
    parser.add_argument("--baseline-seeds", type=int, default=96)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from test_baseline import FIRMS, stack

    tasks = [("engine", s) for s in range(1, args.engine_seeds + 1)] + [("baseline", 1000 + s) for s in range(1, args.baseline_seeds + 1)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_outcomes, tasks, chunksize=4))
    engine = stack(results[: args.engine_seeds])
    baseline = stack(results[args.engine_seeds :])
    print(f"reference market, {POPULATION:,} people, {STEPS} steps: engine seeds 1-{args.engine_seeds}, "
          f"baseline seeds 1001-{1000 + args.baseline_seeds}")
    print(f"{'outcome':<17} {'firm':<11} {'engine':>22} {'baseline':>22} {'z':>6}")
    for key in ("retention_annual", "satisfaction_avg", "profit"):
        for j, firm in enumerate(FIRMS):
            x, y = engine[key][:, j], baseline[key][:, j]
            sx, sy = x.std(ddof=1) / math.sqrt(x.size), y.std(ddof=1) / math.sqrt(y.size)
            z = (x.mean() - y.mean()) / math.hypot(sx, sy)
            print(f"{key:<17} {firm:<11} {x.mean():>12.5g} +- {sx:<7.2g} {y.mean():>12.5g} +- {sy:<7.2g} {z:>+6.2f}")


if __name__ == "__main__":
    main()
