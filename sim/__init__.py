"""loyalty-sim: an agent-based customer-loyalty strategy simulator.

Importing the package is cheap: the model, Mesa and plotting load only when used.

    >>> import sim
    >>> scenario = sim.load_scenario("scenarios/starter.yaml")
    >>> model = sim.run(scenario)              # a finished LoyaltyModel
    >>> model.metrics_frame()                   # per-step metrics, one row per step and firm
    >>> model.customer(42)                      # one customer, as an agent

Experiments (results folders with 95% intervals; ``jobs`` worker processes or a Dask ``scheduler``):

    >>> result = sim.replicate(scenario, 20, jobs=4)             # intervals on every outcome
    >>> result.summary                                            # per firm: mean, ci_low, ci_high
    >>> cheap = sim.load_scenario("scenarios/starter.yaml", {"firms.focal.price.list": 9})
    >>> sim.compare([("base", scenario), ("cheap", cheap)], 20).extra["differences"]
    >>> sim.sweep(scenario, {"firms.focal.price.list": [9, 10, 11]}, 10, outcome="npv").extra["best"]
    >>> sim.retention_effect(scenario, 20, gains=(0, 5, 10)).extra["effect"]
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("loyalty-sim")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "load_scenario",
    "scenario_from_dict",
    "run",
    "LoyaltyModel",
    "ScenarioError",
    "replicate",
    "compare",
    "sweep",
    "retention_effect",
]


def __getattr__(name: str):
    if name in ("load_scenario", "scenario_from_dict", "run"):
        from sim import api

        return getattr(api, name)
    if name == "LoyaltyModel":
        from sim.model import LoyaltyModel

        return LoyaltyModel
    if name in ("replicate", "compare", "sweep", "retention_effect"):
        from sim import experiments

        return getattr(experiments, name)
    if name == "ScenarioError":
        from sim.loader import ScenarioError

        return ScenarioError
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
