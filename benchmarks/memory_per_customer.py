"""Measure the memory one run needs per person and per social tie (the figures of sim/limits.py).

Peak traced allocation (tracemalloc) of building, running and writing a run of 100,000 and of
400,000 people; the difference divided by 300,000 is the cost of one person. Done at 0 and at
40 ties per person, the difference of those divided by 40 is the cost of one tie.

    .venv/bin/python benchmarks/memory_per_customer.py
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc

from sim.api import scenario_from_dict
from sim.model import LoyaltyModel
from sim.results import write_run


def peak(population: int, degree: float, steps: int = 3) -> int:
    scenario = scenario_from_dict({
        "name": "memory",
        "market": {"population": population, "steps": steps, "network": {"mean_degree": degree}},
        "segments": [{"name": "a", "share": 1.0}],
        "firms": {"focal": {"role": "focal", "initial_share": 0.3}, "rival": {"initial_share": 0.3}},
    })
    tracemalloc.start()
    model = LoyaltyModel(scenario, seed=1).run()
    with tempfile.TemporaryDirectory() as out:
        write_run(model, out, charts=False)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del model
    gc.collect()
    return top


def main() -> None:
    per_person = {}
    for degree in (0, 40):
        small, large = peak(100_000, degree), peak(400_000, degree)
        per_person[degree] = (large - small) / 300_000
        print(f"{degree:>2} ties per person: {per_person[degree]:.0f} B per person at peak")
    print(f"per person (no ties): {per_person[0]:.0f} B; per tie: {(per_person[40] - per_person[0]) / 40:.1f} B")


if __name__ == "__main__":
    main()
