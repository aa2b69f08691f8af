"""Shared fixtures and helpers for the model tests.

Scenarios are built in code from a small base market (a few thousand people, monthly
steps, a focal firm and one rival) with nested-dict overrides, so each test states only
the keys it is about:

    make_scenario(market={"steps": 12}, firms={"rival": {"price": {"list": 8.0}}})
    make_scenario(firms={"rival": DELETE})                  # drop the rival
    make_scenario(sets={"firms.focal.product.promise": 1.3})  # dotted keys, as --set

Stochastic claims use several seeds (``replicate``) or paired runs with the same seed
(common random numbers: two scenarios differing in one key).
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim import rules
from sim.api import scenario_from_dict
from sim.model import LoyaltyModel
from sim.scenario import Scenario, set_key_path

#: Marker value in overrides: remove this key from the base scenario.
DELETE = object()

BASE: dict[str, Any] = {
    "name": "test_market",
    "market": {"population": 3000, "steps": 24, "step_days": 30.0, "seed": 1},
    "segments": [{"name": "mainstream", "share": 1.0}],
    "firms": {
        "focal": {"role": "focal", "initial_share": 0.3},
        "rival": {"initial_share": 0.3},
    },
}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in (mappings merge, everything else replaces;
    ``DELETE`` removes a key)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_data(sets: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Plain scenario data: the base market with nested ``overrides`` and dotted ``sets``."""
    data = deep_merge(BASE, overrides)
    for path, value in (sets or {}).items():
        set_key_path(data, path, value)
    return data


def make_scenario(sets: dict[str, Any] | None = None, **overrides: Any) -> Scenario:
    """A validated small Scenario (see the module docstring)."""
    return scenario_from_dict(scenario_data(sets, **overrides))


def run_model(scenario: Scenario, seed: int | None = None) -> LoyaltyModel:
    """Build and run every step of ``scenario``."""
    return LoyaltyModel(scenario, seed=seed).run()


_METRICS: dict[tuple[str, int | None], pd.DataFrame] = {}


def metrics_of(scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
    """The metrics frame of a full run of ``scenario`` with ``seed``, memoised per process on the
    scenario's content hash (tests that look at one run in several ways share it). Treat it as
    read-only."""
    key = (scenario.digest(), seed)
    if key not in _METRICS:
        _METRICS[key] = run_model(scenario, seed).metrics_frame()
    return _METRICS[key]


def replicate(scenario: Scenario, seeds: Iterable[int]) -> list[pd.DataFrame]:
    """Metrics frames of ``scenario`` run once per seed."""
    return [metrics_of(scenario, seed) for seed in seeds]


def firm_rows(frame: pd.DataFrame, firm: str) -> pd.DataFrame:
    """The rows of ``firm`` in a metrics frame, indexed by step."""
    return frame[frame["firm"] == firm].set_index("step")


def total(frame: pd.DataFrame, firm: str, column: str, steps: slice | None = None) -> float:
    """Sum of ``column`` for ``firm`` over ``steps`` (label slice on step, inclusive; default: steps >= 1)."""
    rows = firm_rows(frame, firm)[column]
    rows = rows.loc[steps] if steps is not None else rows.loc[1:]
    return float(rows.sum())


def mean_over(frame: pd.DataFrame, firm: str, column: str, steps: slice | None = None) -> float:
    rows = firm_rows(frame, firm)[column]
    rows = rows.loc[steps] if steps is not None else rows.loc[1:]
    return float(rows.mean())


def paired(make: Callable[[Any], Scenario], levels: tuple[Any, ...], seeds: Iterable[int], measure: Callable[[pd.DataFrame], float]) -> np.ndarray:
    """Common random numbers: for each seed, ``measure`` (of the metrics frame) of the scenario
    ``make(level)`` at each level, all run with that seed. Returns an array (n_seeds, n_levels)."""
    return np.array([[measure(metrics_of(make(level), seed)) for level in levels] for seed in seeds])


@rules.jit
def each(function, x: np.ndarray) -> np.ndarray:
    """A compiled rule (one number in, one out) applied to every element of ``x``, in compiled code."""
    out = np.empty(x.size)
    for k in range(x.size):
        out[k] = function(x[k])
    return out


def write_yaml(folder: Path, name: str, text: str) -> Path:
    """Write a dedented YAML file and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def small_scenario() -> Scenario:
    """The base market: 3,000 people, 24 monthly steps, a focal firm and a rival."""
    return make_scenario()
