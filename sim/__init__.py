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

import hashlib
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

try:
    __version__ = metadata.version("loyalty-sim")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"



def _cache_compiled_code_by_source() -> None:
    """Keep the compiled kernels in a folder named after the package's source code.

    Numba caches each compiled function on disk and checks only that function's own file
    for changes, while the kernels of ``sim.engine`` inline rules from ``sim.rules`` and
    ``sim.fastmath``: after a change to a rule, the cached kernels would silently run the old
    rule. So the cache lives in a folder named after a hash of every source file of the
    package and of its location (under ``$XDG_CACHE_HOME/loyalty-sim``, else
    ``~/.cache/loyalty-sim``); the four most recently used folders are kept. A
    ``NUMBA_CACHE_DIR`` set by the user wins."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(str(here).encode())  # each checkout its own folder (numba keys its index by file times)
    for path in sorted(here.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loyalty-sim"
    folder = root / digest.hexdigest()[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
        for old in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)[4:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:  # no writable cache folder: Numba's own choice
        return
    os.environ["NUMBA_CACHE_DIR"] = str(folder)  # read when Numba is imported (by worker processes too)
    if "numba" in sys.modules:
        sys.modules["numba"].config.CACHE_DIR = str(folder)


_cache_compiled_code_by_source()

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
