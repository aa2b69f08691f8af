"""All measures (MODEL.md section 9), computed per firm from customer state and the ledger.

Each measure is a named column of the per-step metrics table (one row per step and
firm). Measures are computed from agent state at the end of a step by
:func:`compute`; agents never update totals themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.ledger import ACCOUNTS
from sim.population import HELD, LOYALTY_TYPES, Population
from sim.rules import satisfaction_level
from sim.scenario import Behaviour

SATISFACTION_LEVELS = ("dissatisfied", "generally_satisfied", "fairly_satisfied", "highly_satisfied")
CHURN_REASONS = ("left_category", "dissatisfied", "price", "rewards", "value", "firm_closed")
STICKINESS = (("high", 0.8), ("medium", 0.6), ("low", 0.0))  # band, lowest yearly repurchase probability
REPEAT_THRESHOLD = 0.7  # yearly repurchase probability from which a customer is a repeat buyer
ATTITUDE_THRESHOLD = 7  # likelihood to recommend from which attitude counts as favourable
EMOTIONAL_THRESHOLD = 0.5  # attachment from which a customer is emotionally loyal

#: Columns of the per-step metrics table, in order, after `step`, `day` and `firm`.
COLUMNS = (
    "active", "customers", "prospects", "market_share", "price",
    "acquisitions", "acquired_prospects", "won_from_rivals",
    "churned", "lost_to_rivals", *(f"churn_{r}" for r in CHURN_REASONS),
    "retention_rate", "churn_rate", "retention_rate_annual", "repeat_purchase_rate", "repurchase_probability",
    "satisfaction_mean", "satisfaction_avg_mean", *(f"share_{lvl}" for lvl in SATISFACTION_LEVELS), "csat",
    "nps", "share_promoters", "share_passives", "share_detractors", "ces",
    "expectation_mean", "perceived_value_mean", "trust_mean", "attachment_mean", "switching_cost_mean",
    *(f"share_{t}" for t in LOYALTY_TYPES), "share_locked_in",
    "layer_behavioural", "layer_attitudinal", "layer_emotional",
    "quadrant_true", "quadrant_latent", "quadrant_spurious", "quadrant_none",
    *(f"stickiness_{band}" for band, _ in STICKINESS),
    "members", "points_outstanding", "word_of_mouth_positive", "word_of_mouth_negative",
    *ACCOUNTS, "profit", "cumulative_profit", "npv", "margin_per_customer", "clv", "customer_equity",
    "cost_per_acquisition", "retention_cost_per_customer",
)


@dataclass
class StepFlows:
    """What happened to each firm's customers during one step (counts per firm)."""

    start_customers: np.ndarray
    acquired_prospects: np.ndarray
    won_from_rivals: np.ndarray
    lost_to_rivals: np.ndarray
    churn: dict[str, np.ndarray]  # every customer lost, by reason (rivals' wins included)
    word_of_mouth_positive: np.ndarray
    word_of_mouth_negative: np.ndarray

    @classmethod
    def empty(cls, n_firms: int) -> StepFlows:
        z = lambda: np.zeros(n_firms)  # noqa: E731
        return cls(z(), z(), z(), z(), {r: z() for r in CHURN_REASONS}, z(), z())


class Metrics:
    """Preallocated (steps + 1, F) arrays, one per column; row t holds the state after step t."""

    def __init__(self, steps: int, n_firms: int):
        self.table = {name: np.zeros((steps + 1, n_firms)) for name in COLUMNS}

    def record(self, step: int, values: dict[str, np.ndarray]) -> None:
        for name, value in values.items():
            self.table[name][step] = value


def _by_firm(firm: np.ndarray, n_firms: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(firm, weights=weights, minlength=n_firms).astype(np.float64)


def compute(
    step: int,
    pop: Population,
    flows: StepFlows,
    ledger,
    offers,
    behaviour: Behaviour,
    history: dict[str, np.ndarray],
    steps_per_year: float,
    discount_per_step: float,
) -> dict[str, np.ndarray]:
    """Every measure of the metrics table at the end of ``step``; ``history`` holds the
    rows recorded for the earlier steps (measures over the last year read it)."""
    n_firms = offers.size
    customers_idx = np.flatnonzero(pop.firm >= 0)
    firm = pop.firm[customers_idx].astype(np.intp)
    count = _by_firm(firm, n_firms)
    safe = np.maximum(count, 1.0)

    def mean(values: np.ndarray) -> np.ndarray:
        return _by_firm(firm, n_firms, values.astype(np.float64)) / safe

    def share(mask: np.ndarray) -> np.ndarray:
        return _by_firm(firm, n_firms, mask.astype(np.float64)) / safe

    out: dict[str, np.ndarray] = {}
    out["active"] = offers.active.astype(np.float64)
    out["customers"] = count
    out["prospects"] = np.full(n_firms, float(pop.size - customers_idx.size))
    out["market_share"] = count / max(customers_idx.size, 1)
    out["price"] = offers.price

    # flows, retention and churn
    out["acquired_prospects"] = flows.acquired_prospects
    out["won_from_rivals"] = flows.won_from_rivals
    out["acquisitions"] = flows.acquired_prospects + flows.won_from_rivals
    churn_total = sum(flows.churn.values())
    out["churned"] = churn_total
    out["lost_to_rivals"] = flows.lost_to_rivals
    for reason, counts in flows.churn.items():
        out[f"churn_{reason}"] = counts
    start = flows.start_customers
    retention = np.where(start > 0, 1.0 - churn_total / np.maximum(start, 1.0), 1.0)
    out["retention_rate"] = retention
    out["churn_rate"] = 1.0 - retention
    out["retention_rate_annual"] = retention**steps_per_year
    customer_history = history["customers"]
    out["repeat_purchase_rate"] = repeat_purchase_rate(pop, firm, customers_idx, customer_history, step, steps_per_year)
    repurchase = pop.repurchase[customers_idx]
    out["repurchase_probability"] = mean(repurchase)

    # satisfaction
    c = pop.satisfaction[customers_idx]
    c_avg = pop.satisfaction_avg[customers_idx]
    level = satisfaction_level(c_avg, behaviour)
    out["satisfaction_mean"] = mean(c)
    out["satisfaction_avg_mean"] = mean(c_avg)
    for code, name in enumerate(SATISFACTION_LEVELS):
        out[f"share_{name}"] = share(level == code)
    out["csat"] = share(level >= 2)
    recommend = pop.recommend[customers_idx]
    promoters, detractors = share(recommend >= 9), share(recommend <= 6)
    out["share_promoters"], out["share_detractors"] = promoters, detractors
    out["share_passives"] = np.where(count > 0, 1.0 - promoters - detractors, 0.0)
    out["nps"] = 100.0 * (promoters - detractors)
    out["ces"] = 4.0 + 3.0 * np.tanh(-0.5 * (offers.log_time_cost + offers.log_effort_cost))

    # relationship state
    out["expectation_mean"] = mean(pop.expectation[customers_idx])
    out["perceived_value_mean"] = mean(pop.perceived_value[customers_idx])
    out["trust_mean"] = mean(pop.trust[customers_idx])
    attachment = pop.attachment[customers_idx]
    out["attachment_mean"] = mean(attachment)
    out["switching_cost_mean"] = mean(pop.switching_cost[customers_idx])

    # loyalty types and layers
    held_by = pop.held_by[customers_idx]
    loyalty = pop.loyalty_type[customers_idx]
    for code, name in enumerate(LOYALTY_TYPES):
        out[f"share_{name}"] = share(loyalty == code)
    out["share_locked_in"] = share(held_by == HELD["switching_cost"])
    repeat = repurchase >= REPEAT_THRESHOLD
    favourable = recommend >= ATTITUDE_THRESHOLD
    out["layer_behavioural"] = share(repeat)
    out["layer_attitudinal"] = share(favourable)
    out["layer_emotional"] = share(attachment >= EMOTIONAL_THRESHOLD)
    out["quadrant_true"] = share(favourable & repeat)
    out["quadrant_latent"] = share(favourable & ~repeat)
    out["quadrant_spurious"] = share(~favourable & repeat)
    out["quadrant_none"] = share(~favourable & ~repeat)
    upper = 1.01
    for band, lower in STICKINESS:
        out[f"stickiness_{band}"] = share((repurchase >= lower) & (repurchase < upper))
        upper = lower
    out["members"] = _by_firm(firm, n_firms, pop.member[customers_idx].astype(np.float64))
    out["points_outstanding"] = _by_firm(firm, n_firms, pop.points[customers_idx].astype(np.float64))
    out["word_of_mouth_positive"] = flows.word_of_mouth_positive
    out["word_of_mouth_negative"] = flows.word_of_mouth_negative

    # money
    for account, rows in ledger.accounts.items():
        out[account] = rows[step].copy()
    profit_rows = ledger.profit(step)
    out["profit"] = profit_rows[step]
    out["cumulative_profit"] = profit_rows.sum(axis=0)
    out["npv"] = (profit_rows * ledger.discount[: step + 1, None]).sum(axis=0)
    # contribution per customer-step over the last year of steps (steady through payout steps)
    first = max(1, step - int(round(steps_per_year)) + 1)
    # customers served in a step: those at its start and the prospects who joined and bought in it
    served = customer_history[first - 1 : step].sum(axis=0) + history["acquired_prospects"][first:step].sum(axis=0) + out["acquired_prospects"]
    contribution = sum(ledger.contribution(t) for t in range(first, step + 1)) if step >= 1 else np.zeros(n_firms)
    out["margin_per_customer"] = np.where((served > 0) & (count > 0), contribution / np.maximum(served, 1.0), 0.0)
    recent_retention = (history["retention_rate"][first:step].sum(axis=0) + retention) / (step - first + 1) if step >= 1 else retention
    out["clv"] = customer_lifetime_value(out["margin_per_customer"], recent_retention, discount_per_step)
    out["customer_equity"] = out["clv"] * count
    # what winning a customer costs against what keeping one costs (the seed: about 5 to 1)
    won = flows.acquired_prospects + flows.won_from_rivals
    out["cost_per_acquisition"] = np.where(won > 0, out["acquisition_cost"] / np.maximum(won, 1.0), 0.0)
    kept = np.maximum(start - churn_total, 0.0)
    keeping = out["reward_cost"] + out["community_cost"]
    out["retention_cost_per_customer"] = np.where(kept > 0, keeping / np.maximum(kept, 1.0), 0.0)
    return out


def repeat_purchase_rate(pop: Population, firm: np.ndarray, customers_idx: np.ndarray, customer_history: np.ndarray, step: int, steps_per_year: float) -> np.ndarray:
    """Share of a firm's customers of a year ago (``w`` = one year of steps, or all steps so
    far) who still buy from it now without a break, put on a yearly basis: (kept / then) ** (year / w)."""
    n_firms = customer_history.shape[1]
    window = min(step, int(round(steps_per_year)))
    if window == 0:
        return np.ones(n_firms)
    then = customer_history[step - window]
    # a customer there at the end of step t - w has a tenure of at least w + 1 at the end of step t
    kept = _by_firm(firm, n_firms, (pop.tenure[customers_idx] > window).astype(np.float64))
    survival = np.where(then > 0, np.minimum(kept / np.maximum(then, 1.0), 1.0), 1.0)
    return survival ** (steps_per_year / window)


def customer_lifetime_value(margin: np.ndarray, retention: np.ndarray, discount: float) -> np.ndarray:
    """Expected discounted margin of a customer: m (1 + d) / (1 + d - r).

    ``margin`` is the contribution per customer per step, ``retention`` the per-step
    retention averaged over the last year of steps, ``discount`` the discount rate per
    step. Margin of the current step is counted (Gupta and Lehmann's form with the
    first margin at time 0)."""
    r = np.minimum(retention, 0.9999)
    return margin * (1.0 + discount) / (1.0 + discount - r)
