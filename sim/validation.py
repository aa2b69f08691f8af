"""The validation suite: closed-form verification and stylised facts (Rand and Rust 2011).

Each check builds its scenario out of ordinary scenario settings, runs the model, reads
state through the public surface (``model.population`` arrays, ``model.ledger``, the
metrics table) and compares what it measured with what theory or the literature says,
within stated sampling error. The same functions back ``tests/test_validation.py`` and
``loyalty-sim validate-model`` (which writes a report with charts).

**Verification** (behaviour held fixed, so a closed form exists):

* :func:`check_clv`: one firm, nobody searches (search curve 0), constant category exit
  (so retention ``r`` per yearly step is constant), no failures, no noise, no rewards, no
  basket growth or serve-cost decline: the mean discounted value of a cohort matches
  Gupta and Lehmann's ``m r / (1 + i - r)``, and with margin growth ``g`` (prices rising by
  ``g`` a year through the timeline, unit cost 0) ``m r / (1 + i - r (1 + g))``.
* :func:`check_clv_measure`: the ``clv`` column against ``m (1 + i) / (1 + i - r)``.
* :func:`check_survival`: the same fixed-behaviour market on monthly steps: a cohort's
  survival matches ``r^t``; ``repeat_purchase_rate`` and ``retention_rate_annual`` match ``r``.
* :func:`check_bass`: one firm, no initial customers, entry on one's own at rate ``p``
  (innovation) and through referrals (imitation): adoption follows the Bass curve with
  ``q = referral_rate * positive_reach_per_year * y / (1 - buzz retention per step)``.

**Stylised facts** (behaviour free, direction and size from the literature): see the
functions ``fact_*`` below.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from sim.scenario import Scenario

#: Scenario settings that hold behaviour fixed: one firm keeps everyone it has (nobody
#: searches), nobody enters, purchases never fail, perception has no noise, word of mouth
#: is silent, and the relationship does not get more profitable with tenure.
FIXED_BEHAVIOUR: dict[str, Any] = {
    "market": {
        "initial_tenure_days": 0.0,
        "network": {"mean_degree": 0},
        "loyalty_economics": {"basket_growth_per_year": 0.0, "serve_cost_decline_per_year": 0.0, "price_tolerance_per_year": 0.0},
    },
    "behaviour": {
        "search": {"curve": [[1.0, 0.0]]},
        "satisfaction": {"experience_noise": 0.0},
        "word_of_mouth": {"positive_reach_per_year": 0.0, "negative_reach_per_year": 0.0, "referral_rate": 0.0},
    },
    "segments": [{"name": "everyone", "share": 1.0, "category_entry_per_year": 0.0, "purchases_per_year": 12.0, "basket": 1.0}],
    "firms": {
        "focal": {
            "role": "focal",
            "initial_share": 1.0,
            "price": {"list": 4.0},
            "service": {"failure_rate": 0.0, "availability": 1.0, "cost_per_purchase": 0.0},
            "costs": {"unit_cost": 0.0},
        }
    },
}


@dataclass
class Check:
    """One validation check: what was expected, what the model produced, and the verdict."""

    name: str
    claim: str  # the statement checked, in words
    expected: float
    simulated: float
    error: float  # standard error of `simulated` (sampling), or the tolerance used
    passed: bool
    rule: str  # how `passed` was decided
    details: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)  # what the chart draws

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and key == "segments" and isinstance(out.get(key), list) and len(value) == len(out[key]):
            out[key] = [_merge(a, b) if isinstance(b, dict) else b for a, b in zip(out[key], value)]
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_of(data: dict[str, Any], **over: Any) -> Scenario:
    """A validated scenario from plain data with nested overrides merged in."""
    from sim.api import scenario_from_dict

    return scenario_from_dict(_merge(data, over), source="<validation>")


def _run(scenario: Scenario, seed: int | None = None):
    from sim.model import LoyaltyModel

    return LoyaltyModel(scenario, seed=seed).run()


# --------------------------------------------------------------------------- closed forms


def gupta_lehmann(margin: float, retention: float, discount: float, growth: float = 0.0, periods: int | None = None) -> float:
    """Expected discounted margin of a new customer, Gupta and Lehmann's timing:
    ``sum_{t>=1} m (1 + g)^(t - 1) r^t / (1 + i)^t``: the margin of period t is earned at its
    end, by customers who survived t retention events, and discounted t periods.
    With ``periods`` the sum stops there (a finite run); without, it is
    ``m r / (1 + i - r (1 + g))``."""
    q = retention * (1.0 + growth) / (1.0 + discount)
    if periods is None:
        return margin * retention / (1.0 + discount - retention * (1.0 + growth))
    return margin * retention / (1.0 + discount) * (1.0 - q**periods) / (1.0 - q) if q != 1 else margin * retention / (1.0 + discount) * periods


def bass_adoption(t: np.ndarray, p: float, q: float) -> np.ndarray:
    """Share of the market that has adopted by time ``t`` (years) in the Bass model."""
    e = np.exp(-(p + q) * np.asarray(t, dtype=float))
    return (1.0 - e) / (1.0 + (q / p) * e)


def clv_scenario(retention: float = 0.8, discount_rate: float = 0.10, growth: float = 0.0, years: int = 40, population: int = 20_000, seed: int = 7) -> Scenario:
    """The fixed-behaviour market on yearly steps: retention ``r`` a year through the segment's
    category exit rate ``-ln r``; margin growth ``g`` through a price rising by ``g`` a year
    (one timeline event per step; with unit cost 0 the margin is proportional to the price)."""
    price = FIXED_BEHAVIOUR["firms"]["focal"]["price"]["list"]
    timeline = [{"at": t, "set": {"firms.focal.price.list": price * (1.0 + growth) ** (t - 1)}} for t in range(2, years + 1)] if growth else []
    return scenario_of(
        FIXED_BEHAVIOUR,
        name="clv_growth" if growth else "clv",
        market={"population": population, "steps": years, "step_days": 365.0, "discount_rate": discount_rate, "seed": seed},
        segments=[{"category_exit_per_year": -math.log(retention)}],
        timeline=timeline,
    )


def margin_per_year(scenario: Scenario) -> float:
    """Contribution of one customer in one yearly step of the fixed-behaviour market."""
    seg, firm = scenario.segments[0], scenario.firms[scenario.focal_firm]
    years = scenario.market.step_days / 365.0
    occasions = float(seg.purchases_per_year) * years
    return occasions * float(seg.basket) * (firm.price.list * (1 - firm.price.discount) - firm.costs.unit_cost) - occasions * firm.service.cost_per_purchase


def check_clv(growth: float = 0.0, retention: float = 0.8, discount_rate: float = 0.10, population: int = 20_000, seed: int = 7) -> Check:
    """Simulated CLV of the initial cohort against Gupta and Lehmann (with margin growth ``g``).

    Timing in the model: every customer buys in each step it starts as a customer; category
    exits are drawn after the purchases (phase 8), and a step's margin is added to the
    customer's ``value_to_date`` only if it is still a customer after phase 8, discounted by
    ``(1 + d)^-tenure``. The initial customers start with tenure 1, so the margin of step t is
    credited when the customer survived t retention events and is discounted t yearly steps,
    with ``d = (1 + i)^(step_days / 365) - 1 = i`` on yearly steps: exactly Gupta and Lehmann's
    timing. Nobody re-enters (entry rate 0), so ``value_to_date`` of those who left stays their
    realised lifetime value. The comparison is with the finite sum over the run's steps (the
    infinite-horizon value is reported beside it)."""
    scenario = clv_scenario(retention, discount_rate, growth, population=population, seed=seed)
    model = _run(scenario)
    value = model.population.value_to_date.astype(np.float64)
    m = margin_per_year(scenario)
    steps = scenario.market.steps
    expected = gupta_lehmann(m, retention, discount_rate, growth, periods=steps)
    simulated = float(value.mean())
    se = float(value.std(ddof=1) / math.sqrt(value.size))
    z = (simulated - expected) / se
    label = f"CLV with margin growth g = {growth:g}" if growth else "CLV, constant margin"
    form = "m r / (1 + i - r (1 + g))" if growth else "m r / (1 + i - r)"
    # cohort value by year from the ledger: contribution of the step over the initial cohort
    contribution = np.array([model.ledger.contribution(t)[0] for t in range(1, steps + 1)]) / value.size
    return Check(
        name="clv_growth" if growth else "clv",
        claim=f"{label}: mean discounted value of a cohort = {form}",
        expected=expected,
        simulated=simulated,
        error=se,
        passed=abs(z) < 4.0,
        rule="|simulated - expected| < 4 standard errors (SE over customers)",
        details={
            "margin_m": m, "retention_r": retention, "discount_i": discount_rate, "growth_g": growth,
            "customers": int(value.size), "years": steps, "z": z,
            "closed_form_infinite": gupta_lehmann(m, retention, discount_rate, growth),
        },
        series={"year": list(range(1, steps + 1)), "contribution_per_initial_customer": contribution.tolist(),
                "expected": [m * (1 + growth) ** (t - 1) * retention ** (t - 1) for t in range(1, steps + 1)]},
    )


def check_clv_measure(retention: float = 0.8, discount_rate: float = 0.10, population: int = 20_000, seed: int = 7, at: int = 3) -> Check:
    """The ``clv`` column (first margin at time 0: ``m (1 + d) / (1 + d - r)``) against the
    same closed form with the configured ``m`` and ``r``; its sampling error comes from the
    measured retention (delta method)."""
    scenario = clv_scenario(retention, discount_rate, population=population, seed=seed, years=at + 1)
    model = _run(scenario)
    table = model.metrics.table
    m = margin_per_year(scenario)
    expected = m * (1 + discount_rate) / (1 + discount_rate - retention)
    simulated = float(table["clv"][at, 0])
    n = float(table["customers"][at - 1, 0])
    se = m * (1 + discount_rate) / (1 + discount_rate - retention) ** 2 * math.sqrt(retention * (1 - retention) / n)
    return Check(
        name="clv_measure",
        claim="the clv measure = m (1 + i) / (1 + i - r) (first margin at time 0)",
        expected=expected,
        simulated=simulated,
        error=se,
        passed=abs(simulated - expected) < 4 * se and abs(float(table["margin_per_customer"][at, 0]) - m) < 1e-6 * m,
        rule="|simulated - expected| < 4 SE (from the binomial error of retention); margin_per_customer = m",
        details={"margin_m": m, "margin_measured": float(table["margin_per_customer"][at, 0]), "retention_r": retention, "discount_i": discount_rate, "step": at},
    )


def survival_scenario(retention: float = 0.8, steps: int = 36, population: int = 20_000, seed: int = 11) -> Scenario:
    """The fixed-behaviour market on monthly steps with yearly retention ``r``."""
    return scenario_of(
        FIXED_BEHAVIOUR,
        name="survival",
        market={"population": population, "steps": steps, "step_days": 365.0 / 12, "seed": seed},
        segments=[{"category_exit_per_year": -math.log(retention)}],
    )


def check_survival(retention: float = 0.8, steps: int = 36, population: int = 20_000, seed: int = 11) -> Check:
    """Survival of the initial cohort after t steps against ``r^(t y)``, at every step
    (binomial standard errors; the largest |z| over the steps must stay below 4.5), and the
    yearly retention measures against ``r``."""
    scenario = survival_scenario(retention, steps, population, seed)
    model = _run(scenario)
    table = model.metrics.table
    y = scenario.market.step_days / 365.0
    n0 = float(table["customers"][0, 0])
    t = np.arange(steps + 1)
    survival = table["customers"][:, 0] / n0
    expected = retention ** (t * y)
    se = np.sqrt(expected * (1 - expected) / n0)
    z = np.divide(survival - expected, se, out=np.zeros_like(se), where=se > 0)
    year = int(round(1 / y))
    repeat = table["repeat_purchase_rate"][year:, 0]
    annual = table["retention_rate_annual"][1:, 0]
    se_year = math.sqrt(retention * (1 - retention) / n0)
    measures_ok = abs(float(repeat[0]) - retention) < 4 * se_year and abs(float(np.exp(np.mean(np.log(annual)))) - retention) < 4 * se_year
    return Check(
        name="survival",
        claim="cohort survival after t years = r^t; repeat_purchase_rate and retention_rate_annual = r",
        expected=float(expected[-1]),
        simulated=float(survival[-1]),
        error=float(se[-1]),
        passed=bool(np.max(np.abs(z)) < 4.5 and measures_ok),
        rule="max over steps |z| < 4.5 (binomial SE); first-year repeat_purchase_rate and the geometric mean of retention_rate_annual within 4 SE of r",
        details={
            "retention_r": retention, "customers": int(n0), "max_abs_z": float(np.max(np.abs(z))),
            "repeat_purchase_rate_year1": float(repeat[0]),
            "retention_rate_annual_geomean": float(np.exp(np.mean(np.log(annual)))),
        },
        series={"year": (t * y).tolist(), "survival": survival.tolist(), "expected": expected.tolist()},
    )


def bass_scenario(p: float = 0.05, q: float = 2.0, population: int = 6000, steps: int = 208, seed: int = 5) -> Scenario:
    """One firm and no initial customers; prospects enter on their own at rate ``p`` a year and
    through referrals. Every customer is a promoter (NPS offset high), talks to random ties
    (fully rewired network) and nobody leaves. The referral rate is set so that the
    equivalent imitation coefficient is ``q`` (see :func:`bass_equivalent_q`)."""
    step_days, memory_days, reach = 7.0, 3.5, 100.0
    per_q = bass_equivalent_q(1.0, reach, step_days, memory_days)
    return scenario_of(
        FIXED_BEHAVIOUR,
        name="bass",
        market={"population": population, "steps": steps, "step_days": step_days, "seed": seed, "network": {"mean_degree": 50, "rewiring": 1.0}},
        behaviour={
            "word_of_mouth": {"positive_reach_per_year": reach, "negative_reach_per_year": 0.0, "referral_rate": q / per_q, "memory_days": memory_days},
            "nps": {"offset": 20.0},
            "choice": {"outside_value": -100.0},
        },
        segments=[{"category_entry_per_year": p, "category_exit_per_year": 0.0}],
        firms={"focal": {"initial_share": 0.0}},
    )


def bass_equivalent_q(referral_rate: float, reach_per_year: float, step_days: float, memory_days: float) -> float:
    """Imitation coefficient of the model's referral mechanism under mean field: with a share
    F of people promoters who each have ``reach * y`` conversations a step with random ties,
    a prospect hears ``F reach y`` good things a step; buzz keeps a share
    ``exp(-step_days / memory_days)`` a step, so it settles at ``F reach y / (1 - retention)``,
    and the entry rate gains ``referral_rate`` times that: ``q = referral_rate reach y / (1 - e^(-step/memory))``."""
    y = step_days / 365.0
    return referral_rate * reach_per_year * y / (1.0 - math.exp(-step_days / memory_days))


def fit_bass(t: np.ndarray, adopted: np.ndarray) -> tuple[float, float]:
    """Least-squares Bass coefficients (p, q) of an adoption curve."""
    from scipy.optimize import curve_fit

    (p, q), _ = curve_fit(bass_adoption, t, adopted, p0=(0.05, 1.0), bounds=([1e-6, 1e-6], [10.0, 100.0]))
    return float(p), float(q)


def check_bass(p: float = 0.05, q: float = 2.0, population: int = 6000, seed: int = 5) -> Check:
    """Adoption with word of mouth as the only imitation channel against the Bass curve with
    the equivalent coefficients. Passes when a Bass curve fits the simulated one closely
    (RMSE < 0.02: the shape is Bass), its fitted q is within 15% of the equivalent q, and
    the simulated curve stays within 0.08 of the equivalent Bass curve at every step.
    Known reasons for a small shortfall of q: referrals act a step later than the talk
    (buzz is read at the next step's entry), and prospects with more ties hear more and
    adopt first (the network has a fixed out-degree but a Poisson in-degree); a dense,
    fully rewired network (50 ties) and many weak conversations (100 a year, short
    memory) keep both small. The first innovators arrive at random, which shifts the
    whole curve in time a little (the 0.08 band)."""
    scenario = bass_scenario(p, q, population, seed=seed)
    model = _run(scenario)
    table = model.metrics.table
    y = scenario.market.step_days / 365.0
    t = np.arange(scenario.market.steps + 1) * y
    adopted = table["customers"][:, 0] / scenario.market.population
    expected = bass_adoption(t, p, q)
    gap = float(np.max(np.abs(adopted - expected)))
    p_fit, q_fit = fit_bass(t, adopted)
    rmse = float(np.sqrt(np.mean((adopted - bass_adoption(t, p_fit, q_fit)) ** 2)))
    peak_sim = float(t[1:][np.argmax(np.diff(adopted))])
    peak_bass = math.log(q / p) / (p + q)
    return Check(
        name="bass",
        claim="word-of-mouth adoption follows the Bass curve F(t) = (1 - e^-(p+q)t) / (1 + (q/p) e^-(p+q)t)",
        expected=q,
        simulated=q_fit,
        error=0.15 * q,
        passed=rmse < 0.02 and abs(q_fit - q) < 0.15 * q and gap < 0.08,
        rule="Bass fit RMSE < 0.02, fitted q within 15% of the equivalent q, max |F_sim - F_Bass| < 0.08",
        details={"p": p, "q_equivalent": q, "p_fitted": p_fit, "q_fitted": q_fit, "fit_rmse": rmse, "max_gap": gap, "peak_year_sim": peak_sim, "peak_year_bass": peak_bass,
                 "referral_rate": scenario.behaviour.word_of_mouth.referral_rate},
        series={"year": t.tolist(), "adopted": adopted.tolist(), "expected": expected.tolist(), "fitted": bass_adoption(t, p_fit, q_fit).tolist()},
    )


CLOSED_FORMS: dict[str, Callable[[], Check]] = {
    "clv": lambda: check_clv(0.0),
    "clv_growth": lambda: check_clv(0.05),
    "clv_measure": check_clv_measure,
    "survival": check_survival,
    "bass": check_bass,
}


# --------------------------------------------------------------------------- ODD completeness


def scenario_key_paths() -> list[str]:
    """Every key a scenario file may hold, as a dotted path in the notation of
    ``docs/model.md``: ``firms.F.`` for any firm, ``segments[k].`` for any segment,
    ``[]`` for the items of other lists (``firms.F.rewards.tiers[].discount``)."""
    from pydantic import BaseModel

    from sim.scenario import Firm, Scenario, _unwrap

    paths: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            if model is Scenario and name == "firms":
                walk(Firm, "firms.F.")
                continue
            if model is Scenario and name == "segments":
                from sim.scenario import Segment

                walk(Segment, "segments[k].")
                continue
            child = _unwrap(info.annotation)
            is_list = "list[" in str(info.annotation) and child is not None
            if child is not None and not (name in {"mean", "sd"}):
                if child.__name__ == "Trait":
                    paths.append(path)  # a trait: a number or {mean, sd}
                    continue
                walk(child, f"{path}[]." if is_list else f"{path}.")
                continue
            paths.append(path)

    walk(Scenario, "")
    return paths


def schema_default(path: str) -> str:
    """The default of a key path of :func:`scenario_key_paths`, as written in the key index of
    ``docs/model.md`` (JSON; ``-`` for keys inside lists and the timeline, which have no
    scenario-wide default)."""
    import json

    from sim.scenario import Firm, Scenario, Segment

    if "[]" in path or path.startswith("timeline"):
        return "-"
    if path.startswith("firms.F."):
        model, parts = Firm(), path[len("firms.F."):].split(".")
    elif path.startswith("segments[k]."):
        model, parts = Segment(), path[len("segments[k]."):].split(".")
    else:
        model, parts = Scenario(), path.split(".")
    value: Any = model
    for part in parts:
        value = getattr(value, part)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    text = json.dumps(value, separators=(", ", ": "))
    return text.replace("|", "\\|")
