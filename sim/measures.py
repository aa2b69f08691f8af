"""All measures (MODEL.md section 9), computed per firm from customer state and the ledger.

Each measure is a named column of the per-step metrics table (one row per step and
firm). Measures are computed from agent state at the end of a step by
:func:`compute`, which sums the state it needs per firm in one compiled pass
(:func:`tally`); agents never update totals themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.ledger import ACCOUNTS
from sim.parallel import CHUNK, Split
from sim.population import HELD, LOYALTY_OF_HELD_BY, LOYALTY_TYPES, Population
from sim.rules import jit, person
from sim.scenario import Behaviour

SATISFACTION_LEVELS = ("dissatisfied", "generally_satisfied", "fairly_satisfied", "highly_satisfied")
CHURN_REASONS = ("left_category", "dissatisfied", "price", "rewards", "value", "firm_closed")
STICKINESS = (("high", 0.8), ("medium", 0.6), ("low", 0.0))  # band, lowest yearly repurchase probability
REPEAT_THRESHOLD = 0.7  # yearly repurchase probability from which a customer is a repeat buyer
ATTITUDE_THRESHOLD = 7  # likelihood to recommend from which attitude counts as favourable
EMOTIONAL_THRESHOLD = 0.5  # attachment from which a customer is emotionally loyal

#: Columns of the per-step metrics table, in order, after `step`, `day` and `firm`.
COLUMNS = (
    "active", "customers", "prospects", "market_share", "price", "purchases", "units",
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
    "members", "points_outstanding", "points_liability", "word_of_mouth_positive", "word_of_mouth_negative",
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
    purchases: np.ndarray  # purchase occasions
    units: np.ndarray  # units sold

    @classmethod
    def empty(cls, n_firms: int) -> StepFlows:
        z = lambda: np.zeros(n_firms)  # noqa: E731
        return cls(z(), z(), z(), z(), {r: z() for r in CHURN_REASONS}, z(), z(), z(), z())


class Metrics:
    """Preallocated (steps + 1, F) arrays, one per column; row t holds the state after step t."""

    def __init__(self, steps: int, n_firms: int):
        self.table = {name: np.zeros((steps + 1, n_firms)) for name in COLUMNS}

    def record(self, step: int, values: dict[str, np.ndarray]) -> None:
        for name, value in values.items():
            self.table[name][step] = value


# rows of the per-firm tally of customer state (see :func:`tally`)
T_COUNT, T_SATISFACTION, T_SATISFACTION_AVG, T_LEVEL = 0, 1, 2, 3  # T_LEVEL .. T_LEVEL + 3: satisfaction levels
T_PROMOTERS, T_DETRACTORS, T_EXPECTATION, T_PERCEIVED, T_TRUST, T_ATTACHMENT, T_SWITCHING = 7, 8, 9, 10, 11, 12, 13
T_LOYALTY = 14  # T_LOYALTY .. + 5: loyalty types
T_LOCKED_IN, T_REPURCHASE, T_REPEAT, T_FAVOURABLE, T_EMOTIONAL = 20, 21, 22, 23, 24
T_TRUE, T_LATENT, T_SPURIOUS, T_NONE = 25, 26, 27, 28
T_STICKINESS = 29  # .. + 2: high, medium, low
T_MEMBERS, T_POINTS, T_KEPT = 32, 33, 34
TALLY_ROWS = 35
_LOYALTY_OF_HELD_BY = LOYALTY_OF_HELD_BY
_LOCKED_IN = HELD["switching_cost"]
_STICKY_HIGH, _STICKY_MEDIUM = STICKINESS[0][1], STICKINESS[1][1]
# what :func:`tally` counts, coded in a few bits per customer (see there)
_ATTITUDE_CODES, _HELD_CODES = 256, 128
assert len(HELD) <= 16  # held_by takes four bits of a code


@jit
def tally(firm, tenure, satisfaction, satisfaction_avg, recommend_score, expectation, perceived_value, trust, attachment,
          switching_cost, held_by, repurchase, member, points, thresholds, window, out, counts, lo, hi):
    """Sum the customer state every measure needs, per firm, in a pass over people
    ``lo .. hi-1``: ``out`` (chunks, TALLY_ROWS, F) gets the sums per chunk, ``counts`` (the same
    shape, in integers) what is counted, all of it in the row of the range's first chunk (a
    sum of integers is the same in any order; sums of numbers are kept per chunk, so they are
    the same whatever the threads).

    ``thresholds`` are the satisfaction levels' lower bounds; ``window`` is the repeat-purchase
    window in steps (customers with a longer tenure count as kept).

    The sums are taken a firm at a time over a chunk, each customer's value or 0, in loops
    the compiler runs several customers at a time. What is counted is coded in two small
    integers per customer, whose occurrences are counted per firm and decoded at the end:
    the satisfaction level, detractor, favourable attitude, promoter, repeat buyer and the
    stickiness bands (256 codes); held_by, emotional loyalty, club membership and kept (64).
    Adding one to a code's count costs a customer two increments, where a row per measure
    cost twenty."""
    n_firms = out.shape[2]
    generally, fairly, highly = np.float32(thresholds[0]), np.float32(thresholds[1]), np.float32(thresholds[2])
    attitude = np.zeros((n_firms, _ATTITUDE_CODES), dtype=np.int64)
    bond = np.zeros((n_firms, _HELD_CODES), dtype=np.int64)
    for chunk in range(lo // CHUNK, (hi + CHUNK - 1) // CHUNK):
        a, b = max(lo, chunk * CHUNK), min(hi, (chunk + 1) * CHUNK)
        sums = out[chunk]
        for g in range(n_firms):
            s_satisfaction = s_average = s_expectation = s_perceived = s_trust = s_attachment = s_switching = s_repurchase = s_points = 0.0
            for p in range(a, b):
                i = person(p)
                on = firm[i] == g
                s_satisfaction += satisfaction[i] if on else 0.0
                s_average += satisfaction_avg[i] if on else 0.0
                s_expectation += expectation[i] if on else 0.0
                s_perceived += perceived_value[i] if on else 0.0
                s_trust += trust[i] if on else 0.0
                s_attachment += attachment[i] if on else 0.0
                s_switching += switching_cost[i] if on else 0.0
                s_repurchase += repurchase[i] if on else 0.0
                s_points += points[i] if on else 0.0
            sums[T_SATISFACTION, g] = s_satisfaction
            sums[T_SATISFACTION_AVG, g] = s_average
            sums[T_EXPECTATION, g] = s_expectation
            sums[T_PERCEIVED, g] = s_perceived
            sums[T_TRUST, g] = s_trust
            sums[T_ATTACHMENT, g] = s_attachment
            sums[T_SWITCHING, g] = s_switching
            sums[T_REPURCHASE, g] = s_repurchase
            sums[T_POINTS, g] = s_points
        for p in range(a, b):
            i = person(p)
            f = firm[i]
            if f < 0:
                continue
            c = np.float32(satisfaction_avg[i])  # the level as :func:`sim.rules.level` gives it
            score, r = recommend_score[i], repurchase[i]
            code = (
                (c >= generally) + (c >= fairly) + (c >= highly)
                | ((score <= 6) | (score >= ATTITUDE_THRESHOLD) << 1 | (score >= 9) << 2) << 2
                | ((r >= REPEAT_THRESHOLD) | (r >= _STICKY_HIGH) << 1 | (r >= _STICKY_MEDIUM) << 2) << 5
            )
            attitude[f, code] += 1
            bond[f, held_by[i] | ((attachment[i] >= EMOTIONAL_THRESHOLD) | member[i] << 1 | (tenure[i] > window) << 2) << 4] += 1
    counted = counts[lo // CHUNK]
    for f in range(n_firms):
        for code in range(_ATTITUDE_CODES):
            k = attitude[f, code]
            if k == 0:
                continue
            detractor, favourable, promoter = code & 4 != 0, code & 8 != 0, code & 16 != 0
            repeat, high, medium = code & 32 != 0, code & 64 != 0, code & 128 != 0
            counted[T_COUNT, f] += k
            counted[T_LEVEL + (code & 3), f] += k
            counted[T_PROMOTERS, f] += k * promoter
            counted[T_DETRACTORS, f] += k * detractor
            counted[T_REPEAT, f] += k * repeat
            counted[T_FAVOURABLE, f] += k * favourable
            quadrant = T_TRUE if favourable and repeat else T_LATENT if favourable else T_SPURIOUS if repeat else T_NONE
            counted[quadrant, f] += k
            counted[T_STICKINESS + (0 if high else 1 if medium else 2), f] += k
        for code in range(_HELD_CODES):
            k = bond[f, code]
            if k == 0:
                continue
            held = code & 15
            counted[T_LOYALTY + _LOYALTY_OF_HELD_BY[held], f] += k
            counted[T_LOCKED_IN, f] += k * (held == _LOCKED_IN)
            counted[T_EMOTIONAL, f] += k * (code & 16 != 0)
            counted[T_MEMBERS, f] += k * (code & 32 != 0)
            counted[T_KEPT, f] += k * (code & 64 != 0)


def year_steps(steps_per_year: float) -> int:
    """The steps that make up "the last year" of the measures over a year (at least one: with
    steps longer than a year, the last step)."""
    return max(1, int(round(steps_per_year)))


def window_steps(step: int, steps_per_year: float) -> int:
    """The repeat-purchase window at the end of ``step``: a year of steps, or every step so far."""
    return min(step, year_steps(steps_per_year))


def level_thresholds(behaviour: Behaviour) -> np.ndarray:
    """The satisfaction levels' lower bounds, as :func:`tally` takes them."""
    s = behaviour.satisfaction
    return np.array([s.generally_satisfied, s.fairly_satisfied, s.highly_satisfied])


def tally_arrays(chunks: int, n_firms: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed sums and counts for :func:`tally` over ``chunks`` chunks of customers."""
    sums = np.zeros((chunks, TALLY_ROWS, n_firms))
    return sums, np.zeros(sums.shape, dtype=np.int64)


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
    split: Split | None = None,
    tallied: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every measure of the metrics table at the end of ``step``; ``history`` holds the
    rows recorded for the earlier steps (measures over the last year read it). ``tallied``
    is the :func:`tally` of the customers' state at the end of the step (the sums and counts
    of :func:`tally_arrays`), where the step took it; else it is taken here, ``split`` sharing
    it among threads (one thread without it)."""
    if tallied is None:
        split = split or Split(pop.size, 1)
        tallied = tally_arrays(split.chunks, offers.size)
        split.each(
            tally, pop.firm, pop.tenure, pop.satisfaction, pop.satisfaction_avg, pop.recommend, pop.expectation, pop.perceived_value,
            pop.trust, pop.attachment, pop.switching_cost, pop.held_by, pop.repurchase, pop.member, pop.points,
            level_thresholds(behaviour), window_steps(step, steps_per_year), *tallied,
        )
    n_firms = offers.size
    sums, counts = tallied
    t = sums.sum(axis=0) + counts.sum(axis=0)
    count = t[T_COUNT]
    safe = np.maximum(count, 1.0)
    share = t / safe  # each row as a mean (or share) over the firm's customers
    n_customers = count.sum()

    out: dict[str, np.ndarray] = {}
    out["active"] = offers.active.astype(np.float64)
    out["customers"] = count
    out["prospects"] = np.full(n_firms, float(pop.size - n_customers))
    out["market_share"] = count / max(n_customers, 1)
    out["price"] = offers.price
    out["purchases"] = flows.purchases
    out["units"] = flows.units

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
    out["repeat_purchase_rate"] = repeat_purchase_rate(t[T_KEPT], customer_history, step, steps_per_year)
    out["repurchase_probability"] = share[T_REPURCHASE]

    # satisfaction
    out["satisfaction_mean"] = share[T_SATISFACTION]
    out["satisfaction_avg_mean"] = share[T_SATISFACTION_AVG]
    for code, name in enumerate(SATISFACTION_LEVELS):
        out[f"share_{name}"] = share[T_LEVEL + code]
    out["csat"] = share[T_LEVEL + 2] + share[T_LEVEL + 3]
    promoters, detractors = share[T_PROMOTERS], share[T_DETRACTORS]
    out["share_promoters"], out["share_detractors"] = promoters, detractors
    out["share_passives"] = np.where(count > 0, 1.0 - promoters - detractors, 0.0)
    out["nps"] = 100.0 * (promoters - detractors)
    out["ces"] = 4.0 + 3.0 * np.tanh(-0.5 * (offers.log_time_cost + offers.log_effort_cost))

    # relationship state
    out["expectation_mean"] = share[T_EXPECTATION]
    out["perceived_value_mean"] = share[T_PERCEIVED]
    out["trust_mean"] = share[T_TRUST]
    out["attachment_mean"] = share[T_ATTACHMENT]
    out["switching_cost_mean"] = share[T_SWITCHING]

    # loyalty types and layers
    for code, name in enumerate(LOYALTY_TYPES):
        out[f"share_{name}"] = share[T_LOYALTY + code]
    out["share_locked_in"] = share[T_LOCKED_IN]
    out["layer_behavioural"] = share[T_REPEAT]
    out["layer_attitudinal"] = share[T_FAVOURABLE]
    out["layer_emotional"] = share[T_EMOTIONAL]
    out["quadrant_true"] = share[T_TRUE]
    out["quadrant_latent"] = share[T_LATENT]
    out["quadrant_spurious"] = share[T_SPURIOUS]
    out["quadrant_none"] = share[T_NONE]
    for k, (band, _) in enumerate(STICKINESS):
        out[f"stickiness_{band}"] = share[T_STICKINESS + k]
    out["members"] = t[T_MEMBERS]
    out["points_outstanding"] = t[T_POINTS]
    out["points_liability"] = t[T_POINTS] * offers.point_value  # what the firm owes if every point is redeemed
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
    first = max(1, step - year_steps(steps_per_year) + 1)
    # customers served in a step: those at its start and the prospects who joined and bought in it
    served = customer_history[first - 1 : step].sum(axis=0) + history["acquired_prospects"][first:step].sum(axis=0) + out["acquired_prospects"]
    contribution = ledger.contribution(slice(first, step + 1)).sum(axis=0) if step >= 1 else np.zeros(n_firms)
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


def repeat_purchase_rate(kept: np.ndarray, customer_history: np.ndarray, step: int, steps_per_year: float) -> np.ndarray:
    """Share of a firm's customers of a year ago (``w`` = one year of steps, or all steps so
    far) who still buy from it now without a break, put on a yearly basis: (kept / then) ** (year / w).
    ``kept`` counts each firm's customers with a tenure above ``w`` (a customer there at the
    end of step t - w has a tenure of at least w + 1 at the end of step t)."""
    n_firms = customer_history.shape[1]
    window = window_steps(step, steps_per_year)
    if window == 0:
        return np.ones(n_firms)
    then = customer_history[step - window]
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
