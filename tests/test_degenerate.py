"""Degenerate but valid markets run and report sensibly: no NaN or infinity anywhere in the
metrics, the summary or the run's outcomes; market shares that sum to one whenever anyone is
a customer (zero when nobody is); loyalty-type shares that sum to one for every firm with
customers; counts that add up.

Runs are made with warnings as errors (the suite turns RuntimeWarning into a failure), so a
division by zero or an invalid value inside the engine fails the test even when its result
is masked later."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from sim.experiments import run_outcomes
from sim.model import LoyaltyModel
from sim.results import write_run
from sim.scenario import Firm

from conftest import DELETE, make_scenario

LOYALTY = ("share_monopoly", "share_inertia", "share_price", "share_incentive", "share_trust", "share_none")
SATISFACTION = ("share_dissatisfied", "share_generally_satisfied", "share_fairly_satisfied", "share_highly_satisfied")


def _bounds(info) -> tuple[Any, bool, Any, bool]:
    low = high = None
    low_open = high_open = False
    for rule in info.metadata:
        if isinstance(rule, Ge):
            low = rule.ge
        elif isinstance(rule, Gt):
            low, low_open = rule.gt, True
        elif isinstance(rule, Le):
            high = rule.le
        elif isinstance(rule, Lt):
            high, high_open = rule.lt, True
    return low, low_open, high, high_open


def every_lever(model: type[BaseModel], at: str) -> dict[str, Any]:
    """Every number of a firm's strategy at its lowest (``min``) or highest (``max``) allowed
    value (a number with no upper bound: 1e9), every switch off (min) or on (max)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind = info.annotation
        if name in ("initial_share", "start_step", "end_step"):
            continue  # who the firm's customers are and when, not a lever
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out[name] = every_lever(kind, at)
        elif kind is bool:
            out[name] = at == "max"
        elif kind in (int, float):
            low, low_open, high, high_open = _bounds(info)
            if at == "min":
                value = (low or 0) + (1e-6 if low_open else 0)
            else:
                value = (1e9 if high is None else high) - (1e-6 if high_open else 0)
            out[name] = int(value) if kind is int else float(value)
    return out


CASES: dict[str, dict[str, Any]] = {
    "zero customers": {"market": {"population": 0}},
    "one customer": {"market": {"population": 1}},
    "one firm": {"firms": {"rival": DELETE}},
    "one firm holding everyone": {"firms": {"focal": {"initial_share": 1.0}, "rival": DELETE}},
    "no firm holding anyone": {"firms": {"focal": {"initial_share": 0.0}, "rival": {"initial_share": 0.0}}},
    "every lever at zero": {"firms": {"focal": every_lever(Firm, "min")}},
    "every lever at its maximum": {"firms": {"focal": every_lever(Firm, "max")}},
    "both firms with every lever at its maximum": {"firms": {"focal": every_lever(Firm, "max"), "rival": every_lever(Firm, "max")}},
    "a timeline event at the last step": {"timeline": [{"at": 12, "set": {"firms.focal.price.list": 30.0, "firms.rival.active": False}}]},
    "the only rival leaves at the first step": {"timeline": [{"at": 0, "set": {"firms.rival.active": False}}]},
    "one step": {"market": {"steps": 1}},
    "steps of a day": {"market": {"step_days": 1, "steps": 40}},
    "steps of a year": {"market": {"step_days": 365, "steps": 6}},
    "no social ties": {"market": {"network": {"mean_degree": 0}}},
}


def run_case(overrides: dict[str, Any]):
    market = {"population": 400, "steps": 12, **overrides.get("market", {})}
    scenario = make_scenario(**{**overrides, "market": market})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by zero or invalid value inside the engine fails
        return LoyaltyModel(scenario, seed=3).run()


def check_sensible(model, tmp_path) -> None:
    metrics = model.metrics_frame()
    numbers = metrics.select_dtypes("number")
    bad = [c for c in numbers.columns if not np.isfinite(numbers[c].to_numpy(dtype=float)).all()]
    assert not bad, f"non-finite values in {bad}"
    assert (metrics["customers"] >= 0).all()
    assert len(metrics) == (model.n_steps + 1) * len(model.firm_names)
    for step, rows in metrics.groupby("step"):
        customers = rows["customers"].sum()
        shares = rows["market_share"].sum()
        assert shares == pytest.approx(1.0 if customers > 0 else 0.0, abs=1e-9), (step, customers, shares)
        assert customers <= model.population.size
    held = metrics[metrics["customers"] > 0]
    for columns in (LOYALTY, SATISFACTION):
        present = [c for c in columns if c in metrics.columns]
        if present and len(held):
            assert np.allclose(held[present].sum(axis=1), 1.0, atol=1e-9), f"{columns} do not sum to 1"
    outcomes = run_outcomes(metrics.assign(run_id="r"), 365.0 / model.step_days)
    numeric = outcomes.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy(dtype=float)).all(), numeric
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = write_run(model, tmp_path, rid="r", charts=False)
    summary = json.loads((folder / "summary.json").read_text())
    text = json.dumps(summary)
    assert "NaN" not in text and "Infinity" not in text, text
    assert len(pd.read_csv(folder / "customers.csv")) == model.population.size


@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_markets_run_and_report_sensibly(case, tmp_path):
    check_sensible(run_case(CASES[case]), tmp_path)


def test_the_lever_extremes_are_really_at_the_bounds():
    low, high = every_lever(Firm, "min"), every_lever(Firm, "max")
    assert low["price"]["list"] == pytest.approx(1e-6) and low["service"]["failure_rate"] == 0.0
    assert high["service"]["failure_rate"] == 1.0 and high["rewards"]["enabled"] is True and high["price"]["discount"] == pytest.approx(1 - 1e-6)


@pytest.mark.parametrize("days", [1000, 3660])
def test_steps_longer_than_two_years_run(days, tmp_path):
    check_sensible(run_case({"market": {"step_days": days, "steps": 3}}), tmp_path)
