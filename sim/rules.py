"""Customer behaviour rules, each a plain vectorised function of arrays.

Each rule is stated in words in its docstring and in ``docs/model.md`` (the ODD
description names these functions). Rules take the arrays they need and return new
arrays; the model (``sim.model``) decides who they apply to and stores the results.
Utilities are in log perceived-value units: 0.1 is worth about 10% more value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.offers import Offers
from sim.scenario import Behaviour, LoyaltyEconomics, Segment

F32 = np.float32
DAYS_PER_YEAR = 365.0


def per_step(rate_per_year: float | np.ndarray, step_years: float) -> float | np.ndarray:
    """Probability that an event with a constant yearly rate happens within one step."""
    return -np.expm1(-np.asarray(rate_per_year) * step_years)


@dataclass(frozen=True)
class StepRates:
    """Behaviour coefficients converted to one step of ``step_days`` days."""

    step_years: float
    satisfaction_weight: float
    experience_weight: float
    promise_weight: float
    trust_gain: float
    trust_loss: float
    spend_decay: float
    spend_weight: float  # makes the decayed spend sum an unbiased annual spend
    buzz_decay: float
    discount_per_step: float

    @classmethod
    def of(cls, behaviour: Behaviour, step_days: float, discount_rate: float) -> StepRates:
        years = step_days / DAYS_PER_YEAR
        return cls(
            step_years=years,
            satisfaction_weight=float(-np.expm1(-step_days / behaviour.satisfaction.memory_days)),
            experience_weight=float(per_step(behaviour.expectation.experience_rate, years)),
            promise_weight=float(per_step(behaviour.expectation.promise_rate, years)),
            trust_gain=float(per_step(behaviour.trust.gain_per_year, years)),
            trust_loss=float(per_step(behaviour.trust.loss_per_year, years)),
            spend_decay=float(np.exp(-years)),
            spend_weight=float(-np.expm1(-years) / years),
            buzz_decay=float(np.exp(-step_days / behaviour.word_of_mouth.memory_days)),
            discount_per_step=float((1.0 + discount_rate) ** years - 1.0),
        )


# --------------------------------------------------------------------------- perceived value (MODEL.md s.2)


def segment_value_terms(segments: list[Segment], offers: Offers) -> np.ndarray:
    """(S, F) log value of each firm's image, convenience and risk terms for each segment.

    image value rises with brand; time and effort costs fall with speed and delivery;
    risk (mental) cost falls with guarantees and price protection.
    """
    image = np.array([s.image_weight for s in segments])[:, None]
    convenience = np.array([s.convenience_weight for s in segments])[:, None]
    risk = np.array([s.risk_weight for s in segments])[:, None]
    return (
        image * offers.log_brand
        - convenience * 0.5 * (offers.log_time_cost + offers.log_effort_cost)
        - risk * offers.log_risk_cost
    ).astype(F32)


def offer_values(trait_matrix: np.ndarray, segment: np.ndarray, offers: Offers, segment_terms: np.ndarray) -> np.ndarray:
    """(N, F) log perceived value of every firm's standard offer for every person.

    log b = quality_sensitivity * log quality + service_sensitivity * log(service quality * staff)
            - price_sensitivity * log(price / reference price) + segment image/convenience/risk terms.
    ``trait_matrix`` holds the columns (quality_sensitivity, service_sensitivity, -price_sensitivity).
    """
    firm_matrix = np.stack([offers.log_quality, offers.log_service, offers.log_price]).astype(F32)
    return trait_matrix @ firm_matrix + segment_terms[segment]


def tenure_value(
    firm: np.ndarray,
    tenure_days: np.ndarray,
    quality_sensitivity: np.ndarray,
    price_sensitivity: np.ndarray,
    offers: Offers,
    economics: LoyaltyEconomics,
) -> np.ndarray:
    """Extra log value a customer gets from its own firm through tenure.

    Personalisation: the firm learns the customer over ``personalisation_days`` and the
    product fits better, worth log(1 + personalisation) at full learning. Price tolerance:
    price sensitivity toward one's own firm falls by ``price_tolerance_per_year`` per year
    of tenure (Reichheld's premium), so part of the price term is given back.
    """
    learnt = np.minimum(tenure_days / offers.personalisation_days[firm], 1.0)
    fit = quality_sensitivity * np.log1p(offers.personalisation[firm] * learnt)
    tolerance = np.minimum(np.minimum(tenure_days / DAYS_PER_YEAR, economics.max_years) * economics.price_tolerance_per_year, 1.0)
    return (fit + price_sensitivity * tolerance * offers.log_price[firm]).astype(F32)


def purchase_shock(
    firm: np.ndarray, offers: Offers, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw what happens at this step's purchases for customers of ``firm``.

    A stock-out (chance 1 - availability) is a failed purchase; otherwise a service
    failure happens with ``failure_rate`` and is recovered with ``recovery_rate``.
    Returns (log shock to perceived value, bought, failed unrecovered, recovered).
    The shock is log failure_penalty for a stock-out or unrecovered failure,
    log recovery_boost for a recovered one, plus normal noise of sd ``noise``.
    """
    n = firm.size
    draws = rng.random((3, n))
    stockout = draws[0] >= offers.availability[firm]
    failure = draws[1] < offers.failure_rate[firm]
    recovered = failure & ~stockout & (draws[2] < offers.recovery_rate[firm])
    unrecovered = stockout | (failure & ~recovered)
    shock = rng.normal(0.0, noise, n) if noise > 0 else np.zeros(n)
    shock += np.where(unrecovered, offers.log_failure_penalty[firm], 0.0)
    shock += np.where(recovered, offers.log_recovery_boost[firm], 0.0)
    return shock.astype(F32), ~stockout, unrecovered, recovered


def contract_remaining(tenure_days: np.ndarray, contract_days: np.ndarray) -> np.ndarray:
    """Share of the current contract period still to run (contracts renew automatically);
    0 where the firm has no contracts. The exit fee is charged in this proportion."""
    length = np.maximum(contract_days, 1e-9)
    return np.where(contract_days > 0, 1.0 - np.mod(tenure_days, length) / length, 0.0)


# --------------------------------------------------------------------------- satisfaction and expectation (s.3)


def satisfaction(perceived_value: np.ndarray, expectation: np.ndarray) -> np.ndarray:
    """c = b / a: rises with perception, falls with expectation."""
    return (perceived_value / expectation).astype(F32)


def satisfaction_level(c: np.ndarray, behaviour: Behaviour) -> np.ndarray:
    """0 dissatisfied, 1 generally, 2 fairly, 3 highly satisfied."""
    s = behaviour.satisfaction
    return np.searchsorted(np.array([s.generally_satisfied, s.fairly_satisfied, s.highly_satisfied], dtype=F32), c, side="right")


def update_expectation(expectation: np.ndarray, perceived_value: np.ndarray, promised: np.ndarray, rates: StepRates) -> np.ndarray:
    """Adaptive expectation: a moves toward the perceived value b it experienced and
    toward the value the firm promises: a' = a + w_e (b - a) + w_p (promised - a)."""
    return (expectation + rates.experience_weight * (perceived_value - expectation) + rates.promise_weight * (promised - expectation)).astype(F32)


# --------------------------------------------------------------------------- trust and attachment


def update_trust(trust: np.ndarray, c: np.ndarray, failed: np.ndarray, behaviour: Behaviour, rates: StepRates) -> np.ndarray:
    """Trust approaches 1 while expectations are met (c >= met_threshold), decays while
    they are not, and loses ``failure_loss`` of itself at an unrecovered failure."""
    met = c >= behaviour.trust.met_threshold
    new = np.where(met, trust + rates.trust_gain * (1 - trust), trust * (1 - rates.trust_loss))
    new = np.where(failed, new * (1 - behaviour.trust.failure_loss), new)
    return np.clip(new, 0, 1).astype(F32)


def update_attachment(
    attachment: np.ndarray, trust: np.ndarray, community_drive: np.ndarray, behaviour: Behaviour, rates: StepRates
) -> np.ndarray:
    """dA/dt = (trust_gain * trust + community drive) (1 - A) - decay * A, per year.

    The community drive of a member is attachment_per_year * intensity, where intensity
    is 1 at full care and four events a year (co-creation adds to it)."""
    a = behaviour.attachment
    growth = (a.trust_gain_per_year * trust + community_drive) * (1 - attachment) - a.decay_per_year * attachment
    return np.clip(attachment + growth * rates.step_years, 0, 1).astype(F32)


# --------------------------------------------------------------------------- search and choice (s.4)


def search_probability(satisfaction_avg: np.ndarray, inertia: np.ndarray, behaviour: Behaviour, rates: StepRates) -> np.ndarray:
    """Chance of re-evaluating the current firm in a step.

    The non-linear satisfaction-loyalty curve gives a yearly search probability from the
    running satisfaction (steep for the dissatisfied, flat in the middle zone, near zero
    for the delighted); it is converted to one step and damped by the customer's inertia.
    """
    xs, ps = np.array(behaviour.search.curve, dtype=np.float64).T
    yearly = np.interp(satisfaction_avg, xs, ps)
    per = 1.0 - np.power(1.0 - yearly, rates.step_years)
    return (per * (1.0 - inertia)).astype(F32)


def choice_probabilities(utility: np.ndarray, outside_value: float | np.ndarray, scale: float) -> np.ndarray:
    """Multinomial logit over firms and the outside option (last column).

    ``utility`` is (M, F) with -inf for firms a person cannot buy from; ``outside_value``
    is the utility of buying from no firm (one value, or one per row)."""
    outside = np.broadcast_to(np.asarray(outside_value, dtype=utility.dtype), (utility.shape[0],))[:, None]
    full = np.concatenate([utility, outside], axis=1) / scale
    full -= full.max(axis=1, keepdims=True)
    np.exp(full, out=full)
    full /= full.sum(axis=1, keepdims=True)
    return full


def draw_choice(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the chosen column for each row (inverse transform of one uniform draw)."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(probabilities.shape[0])[:, None] * cumulative[:, -1:]
    return np.minimum((u >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


# --------------------------------------------------------------------------- word of mouth (s.7) and NPS (s.9)


def recommend_score(satisfaction_avg: np.ndarray, trust: np.ndarray, attachment: np.ndarray, behaviour: Behaviour) -> np.ndarray:
    """Likelihood to recommend, 0-10: 10 * logistic(w_c log c + w_t (trust - 0.5) + w_a attachment + offset), rounded."""
    n = behaviour.nps
    z = n.satisfaction_weight * np.log(np.maximum(satisfaction_avg, 1e-6)) + n.trust_weight * (trust - 0.5) + n.attachment_weight * attachment + n.offset
    return np.rint(10.0 / (1.0 + np.exp(-z))).astype(np.uint8)


def spread_word_of_mouth(speakers: np.ndarray, rates: np.ndarray, ties: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each speaker has Poisson(rate) conversations this step, each with one of its ties
    drawn at random. Returns (speaker per conversation, listener per conversation).
    People with no ties say nothing."""
    degree = ties.shape[1]
    if degree == 0 or speakers.size == 0:
        return speakers[:0], speakers[:0]
    talks = rng.poisson(rates)
    who = np.repeat(speakers, talks)
    listener = ties[who, rng.integers(0, degree, size=who.size)]
    return who, listener
