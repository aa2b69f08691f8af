"""Customer behaviour rules: each rule is one small compiled function of one customer.

Each rule is stated in words in its docstring and in ``docs/model.md`` (the ODD
description names these functions). The step kernels of :mod:`sim.engine` call them
once per customer inside compiled loops; each elementwise rule is also a NumPy ufunc
(``numba.vectorize``), so it can be called on whole arrays from Python, which is how the
tests check it. Rules that need the scenario's coefficients take them as plain numbers;
the ``*_of`` helpers at the end of each section unpack a :class:`Behaviour` for callers
that hold one.

Utilities are in log perceived-value units: 0.1 is worth about 10% more value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from sim import fastmath
from sim.population import HELD
from sim.scenario import Behaviour, Segment

F32 = np.float32
DAYS_PER_YEAR = 365.0

#: Compilation options of every compiled rule and kernel (cached on disk next to the source).
#: Arithmetic follows NumPy's error model (a division by zero gives inf, it does not raise):
#: the checks would cost more than the rules, and the rules never divide by zero.
jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
#: The same, for small rules that kernels call once per customer: inlined by Numba itself (the
#: compiler would not inline them into a large kernel, and a call per customer costs).
inlined = numba.njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})


@intrinsic
def person(typingctx, i):
    """The index ``i`` of a person, which the compiler may take to be non-negative.

    Numba counts a negative index from the end of an array, so every array access with a
    signed index carries a test for it, unless the compiler can prove the index is not
    negative. It can in ``range(n)``, but not in a kernel's range ``lo .. hi-1``, where the
    tests on some twenty arrays per person cost up to a fifth of a kernel's time. Kernels
    take each person's index through this function, which tells the compiler (an
    ``llvm.assume``); it generates no instruction."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        assume = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(1)]), "llvm.assume")
        builder.call(assume, [builder.icmp_signed(">=", value, value.type(0))])
        return value

    return i(i), codegen


def ufunc(signature: str):
    """An elementwise rule: a ufunc over arrays, and a plain function inside compiled code."""
    return numba.vectorize([signature], cache=True, nopython=True)


def per_step(rate_per_year, step_years: float):
    """Probability that an event with a constant yearly rate happens within one step."""
    return -np.expm1(-np.asarray(rate_per_year, dtype=np.float64) * step_years)


@jit
def chance(rate_per_year: float, step_years: float) -> float:
    """:func:`per_step` for one customer (compiled)."""
    return -math.expm1(-rate_per_year * step_years)


@dataclass(frozen=True)
class StepRates:
    """Behaviour coefficients converted to one step of ``step_days`` days."""

    step_years: float
    satisfaction_weight: float
    experience_weight: float
    promise_weight: float
    market_weight: float  # toward the comparison level (the market's delivered value)
    standard_weight: float  # toward the customer's fixed standard
    reference_weight: float  # of the reference price's move toward the market's prices
    grudge_decay: float  # share of a grudge against a former firm left after a step
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
            market_weight=float(per_step(behaviour.expectation.market_rate, years)),
            standard_weight=float(per_step(behaviour.expectation.standard_rate, years)),
            reference_weight=float(per_step(behaviour.reference_price.adaptation_per_year, years)),
            grudge_decay=float(np.exp(-step_days / behaviour.memory.memory_days)),
            trust_gain=float(per_step(behaviour.trust.gain_per_year, years)),
            trust_loss=float(per_step(behaviour.trust.loss_per_year, years)),
            spend_decay=float(np.exp(-years)),
            spend_weight=float(-np.expm1(-years) / years),
            buzz_decay=float(np.exp(-step_days / behaviour.word_of_mouth.memory_days)),
            discount_per_step=float((1.0 + discount_rate) ** years - 1.0),
        )


# --------------------------------------------------------------------------- random numbers
#
# Every draw is a pure function of (stream key, customer, slot): a counter-based generator
# (SplitMix64 finaliser). A customer's draw for a given decision at a given step is the same
# whatever else happens in the market, so two variants run with the same seed share their
# random numbers decision by decision (common random numbers), and the order in which the
# kernels visit customers can never change a result.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SLOT = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@jit
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def _bits(key, i, slot):
    """53 random bits for customer ``i``'s draw number ``slot`` of the stream ``key``."""
    z = _mix(np.uint64(key) + np.uint64(i) * _GOLDEN)
    z = _mix(z + np.uint64(slot) * _SLOT)
    return z >> np.uint64(11)


@jit
def uniform(key, i, slot) -> float:
    """A uniform number in [0, 1) for customer ``i``'s draw number ``slot`` of the stream ``key``."""
    return float(_bits(key, i, slot)) * (1.0 / 9007199254740992.0)


@inlined
def normal(key, i, slot) -> float:
    """A standard normal number: :func:`normal_quantile` at the uniform of ``slot`` moved into
    the open interval (0, 1), u + 2^-54. It is made from the integer 2 k + 1 (k the uniform's
    bits), which gives the same number as the addition but leaves nothing for the compiler to
    re-associate once this is inlined into a loop."""
    return normal_quantile(float(_bits(key, i, slot) * np.uint64(2) + np.uint64(1)) * (0.5 / 9007199254740992.0))


@jit
def normal_each(key, first, slot, out, n):
    """out[k] = :func:`normal` (key, first + k, slot) for k < n (a loop that vectorises)."""
    for k in range(n):
        out[k] = normal(key, first + k, slot)


@inlined
def normal_quantile(p) -> float:
    """The inverse of the standard normal distribution function at p in (0, 1) (Wichura's
    algorithm AS241, accurate to about 1e-16): a rational function of p in the middle
    (|p - 1/2| <= 0.425, 85% of draws), of sqrt(-log(tail probability)) beyond.

    Every part is computed and the right one chosen, with no branch: a loop of draws
    (:func:`normal_each`) then runs several at a time in SIMD registers, which is faster than
    skipping the parts a draw does not need. Each part's arithmetic is the algorithm's, so
    the value is the same as with branches."""
    q = p - 0.5
    r = 0.180625 - q * q
    num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r
               + 4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
            + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q
    den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r
               + 2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
            + 4.2313330701600911252e+1) * r + 1.0)
    middle = num / den
    s = math.sqrt(-fastmath.log(p if q <= 0.0 else 1.0 - p))  # the tail's variable
    r = s - 1.6  # up to s = 5 (tail probability down to about 1e-11)
    num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r
               + 1.27045825245236838258e+0) * r + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
            + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0)
    den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r
               + 1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
            + 2.05319162663775882187e+0) * r + 1.0)
    near = num / den
    r = s - 5.0  # beyond
    num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r
               + 2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r
            + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0)
    den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r
               + 7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
            + 5.99832206555887937690e-1) * r + 1.0)
    tail = near if s <= 5.0 else num / den
    tail = -tail if q < 0.0 else tail
    return middle if abs(q) <= 0.425 else tail


@fastmath.exact
def poisson(rate: float, key, i, slot, limit=-1.0) -> int:
    """A Poisson(``rate``) count: for rates up to 30, the distribution function inverted at the
    uniform of ``slot`` (the smallest k whose cumulative probability reaches it); above, the
    rounded normal approximation. A caller that draws many counts at one rate passes
    ``limit = exp(-rate)`` (the chance of none), computed once. Compiled without
    re-association, like :func:`poisson_tables`: both sum the probabilities exactly as written,
    so they give the same counts."""
    if rate <= 0.0:
        return 0
    if rate > 30.0:
        return max(0, int(round(rate + math.sqrt(rate) * normal(key, i, slot))))
    if limit < 0.0:
        limit = math.exp(-rate)
    u = uniform(key, i, slot)
    most = rate + 40.0 * math.sqrt(rate) + 40.0  # beyond this the remaining probability is below 1e-300
    k = 0
    p = cumulative = limit
    while u > cumulative and k < most:
        k += 1
        p *= rate / k
        cumulative += p
    return k


@fastmath.exact
def poisson_tables(rates, limits):
    """For drawing many Poisson counts at a few rates (each at most 30): row ``r`` of the first
    array holds the cumulative probabilities :func:`poisson` sums for ``rates[r]`` (from
    ``limits[r]`` = exp(-rate), the same arithmetic in the same order), up to where its search
    stops, ``most[r]``, the second array. :func:`poisson_at` then draws the same counts without
    a division at each step of the search."""
    most = rates + 40.0 * np.sqrt(rates) + 40.0
    tables = np.empty((rates.size, int(math.ceil(most.max())) + 1))
    for r in range(rates.size):
        k = 0
        p = cumulative = limits[r]
        tables[r, 0] = cumulative
        while k < most[r]:
            k += 1
            p *= rates[r] / k
            cumulative += p
            tables[r, k] = cumulative
    return tables, most


@inlined
def poisson_at(table, most, u) -> int:
    """The Poisson count whose cumulative probability (``table``, of :func:`poisson_tables`)
    first reaches the uniform ``u``: :func:`poisson` of the same uniform."""
    k = 0
    while u > table[k] and k < most:
        k += 1
    return k


def stream_key(seed: int, step: int, stream: int = 0) -> np.uint64:
    """The key of the draws of ``step`` (``stream`` separates independent uses of one seed)."""
    return np.random.SeedSequence([seed, stream, step]).generate_state(1, np.uint64)[0]


@jit
def _uniform_table(key, n, slots):
    out = np.empty((n, slots))
    for i in range(n):
        for s in range(slots):
            out[i, s] = uniform(key, i, s)
    return out


def uniforms(key, n: int, slots: int = 1) -> np.ndarray:
    """(n, slots) table of :func:`uniform` draws (for tests and inspection)."""
    return _uniform_table(np.uint64(key), n, slots)


@jit
def squash(x) -> float:
    """tanh(x), computed as (e^2x - 1) / (e^2x + 1): one exponential (:func:`sim.fastmath.exp`,
    which vectorises), and within 3e-16 of the library's tanh (|x| beyond 20 gives +-1, as
    tanh does in double precision; tests/test_rules.py checks both)."""
    x = min(max(x, -20.0), 20.0)
    e = fastmath.exp(2.0 * x)
    return (e - 1.0) / (e + 1.0)


# --------------------------------------------------------------------------- perceived value (MODEL.md s.2)


def segment_value_terms(segments: list[Segment], offers) -> np.ndarray:
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
    ).astype(np.float64)


@ufunc("float64(float64, float64, float64, float64, float64, float64, float64)")
def offer_value(quality_sensitivity, service_sensitivity, price_sensitivity, log_quality, log_service, log_price, segment_term):
    """Log perceived value of a firm's standard offer for one person:

    log b = quality_sensitivity * log quality + service_sensitivity * log(service quality * staff)
            - price_sensitivity * log(price / reference price) + the segment's image/convenience/risk term.
    """
    return quality_sensitivity * log_quality + service_sensitivity * log_service - price_sensitivity * log_price + segment_term


@ufunc("float64(float64, float64, float64, float64)")
def tenure_value(tenure_days, quality_sensitivity, personalisation, personalisation_days):
    """Extra log value a customer gets from its own firm through tenure (personalisation):
    the firm learns the customer over ``personalisation_days`` and the product fits better,
    worth log(1 + personalisation) at full learning. It is part of the value the customer
    perceives."""
    if personalisation <= 0:
        return 0.0
    return quality_sensitivity * math.log1p(personalisation * min(tenure_days / personalisation_days, 1.0))


@ufunc("float64(float64, float64, float64, float64, float64)")
def price_tolerance(tenure_days, price_sensitivity, log_price, max_years, tolerance_per_year):
    """What a customer's tenure gives back of the price term in its utility of staying:
    price sensitivity toward one's own firm falls by ``tolerance_per_year`` per year of tenure
    (up to ``max_years``; Reichheld's loyal customers tolerate a premium). It holds the customer
    (a loyalty effect), but the premium still lowers the value it perceives and its satisfaction."""
    tolerance = min(min(tenure_days / DAYS_PER_YEAR, max_years) * tolerance_per_year, 1.0)
    return price_sensitivity * tolerance * log_price


@jit
def purchase_outcome(u_stock, u_failure, u_recovery, z, availability, failure_rate, recovery_rate, noise, log_failure_penalty, log_recovery_boost):
    """What happens at one customer's purchases of a step, from its uniforms and one normal ``z``.

    A stock-out (chance 1 - availability) is a failed purchase; otherwise a service
    failure happens with ``failure_rate`` and is recovered with ``recovery_rate``.
    Returns (log shock to perceived value, bought, failed unrecovered, recovered).
    The shock is log failure_penalty for a stock-out or unrecovered failure,
    log recovery_boost for a recovered one, plus normal noise of sd ``noise``.
    """
    stockout = u_stock >= availability
    failure = u_failure < failure_rate
    recovered = failure and not stockout and u_recovery < recovery_rate
    unrecovered = stockout or (failure and not recovered)
    shock = noise * z
    if unrecovered:
        shock += log_failure_penalty
    elif recovered:
        shock += log_recovery_boost
    return shock, not stockout, unrecovered, recovered


@ufunc("float64(float64, float64)")
def contract_remaining(tenure_days, contract_days):
    """Share of the current contract period still to run (contracts renew automatically);
    0 where the firm has no contracts. The exit fee is charged in this proportion."""
    if contract_days <= 0.0:
        return 0.0
    return 1.0 - (tenure_days % contract_days) / contract_days


# --------------------------------------------------------------------------- satisfaction and expectation (s.3)


@ufunc("float64(float64, float64)")
def satisfaction(perceived_value, expectation):
    """c = b / a: rises with perception, falls with expectation."""
    return perceived_value / expectation


@ufunc("int64(float64, float64, float64, float64)")
def level(c, generally, fairly, highly):
    """0 dissatisfied, 1 generally, 2 fairly, 3 highly satisfied (thresholds inclusive,
    compared at the single precision satisfaction is stored in)."""
    c = np.float32(c)
    return int(c >= np.float32(generally)) + int(c >= np.float32(fairly)) + int(c >= np.float32(highly))


def satisfaction_level(c: np.ndarray, behaviour: Behaviour) -> np.ndarray:
    """:func:`level` with the scenario's thresholds."""
    s = behaviour.satisfaction
    return level(c, s.generally_satisfied, s.fairly_satisfied, s.highly_satisfied)


@ufunc("float64(float64, float64, float64, float64, float64, float64, float64, float64, float64)")
def expectation_next(expectation, perceived_value, promised, norm, standard, experience_weight, promise_weight, market_weight, standard_weight):
    """Adaptive expectation, judged against the market: a moves toward the value b it
    experienced (adaptation), toward what the firm promises, toward the comparison level
    ``norm`` (the value the market's firms deliver to the customer's segment: what the
    alternatives deliver) and toward its own fixed ``standard`` (a normal offer at the fair
    price, times its demandingness):
    a' = a + w_e (b - a) + w_p (promised - a) + w_m (norm - a) + w_s (standard - a).
    Because only the first anchor follows the firm's own delivery, a firm that delivers more
    value than the market keeps customers whose c = b / a stays above 1."""
    return (
        expectation + experience_weight * (perceived_value - expectation) + promise_weight * (promised - expectation)
        + market_weight * (norm - expectation) + standard_weight * (standard - expectation)
    )


def update_expectation(expectation, perceived_value, promised, norm, standard, rates: StepRates) -> np.ndarray:
    return expectation_next(
        expectation, perceived_value, promised, norm, standard,
        rates.experience_weight, rates.promise_weight, rates.market_weight, rates.standard_weight,
    )


def first_weights(expectation) -> tuple[float, float]:
    """The weights of the promise and of the comparison level in a new customer's expectation
    (:func:`first_expectation`): their rates' shares of the rates of the anchors it has before
    any experience (promise, comparison level, standard); the promise alone when all are 0."""
    total = expectation.promise_rate + expectation.market_rate + expectation.standard_rate
    if total <= 0:
        return 1.0, 0.0
    return expectation.promise_rate / total, expectation.market_rate / total


@inlined
def first_expectation(log_promised, log_norm, promise_weight, market_weight):
    """The log of what a customer new to a firm expects, per unit of its demandingness: before
    any experience of the firm it has the firm's promise (the offer as advertised, valued by the
    customer: explicit service promises), what the market's firms deliver to its segment (past
    experience of the category) and its own standard (log 0) to go on, averaged in logs with the
    weights of their rates (Zeithaml, Berry and Parasuraman 1993)."""
    return promise_weight * log_promised + market_weight * log_norm


def reference_price(fair, market_level, fair_weight):
    """The price a customer judges a purchase against: the fair price and the price level it
    has adapted to, averaged in logs with ``fair_weight`` on the fair price (a price level
    people never fully get used to; Kalyanaram and Winer 1995)."""
    return np.exp(fair_weight * np.log(fair) + (1.0 - fair_weight) * np.log(market_level))


def judged_log_price(log_price, loss_aversion):
    """The price term as a customer feels it: log(price / reference), a price above the reference
    (a loss) weighted ``loss_aversion`` times (asymmetric reference-price effects; Kalyanaram and
    Winer 1995; Tversky and Kahneman 1991)."""
    return np.where(log_price > 0.0, loss_aversion * log_price, log_price)


def adapted_price_level(level, seen, weight):
    """The adaptive part of the reference price after a step: it moves ``weight`` of the way
    toward the prices the segment ``seen`` in the market (exponential smoothing of observed
    prices; Mazumdar, Raj and Sinha 2005)."""
    return level + weight * (seen - level)


@ufunc("float64(float64, float64)")
def felt_share(trust, forgiveness):
    """The share of a failure's harm a customer feels: loyal, trusting customers forgive an
    occasional failure more than new ones [seed 001: 忠诚顾客……对失误持宽容态度]."""
    return 1.0 - forgiveness * min(max(trust, 0.0), 1.0)


# --------------------------------------------------------------------------- trust and attachment


@ufunc("float64(float64, float64, boolean, float64, float64, float64, float64, float64)")
def trust_next(trust, c, failed, met_threshold, gain, loss, failure_loss, forgiveness):
    """Trust approaches 1 while expectations are met (c >= met_threshold), decays while
    they are not, and loses ``failure_loss`` of itself at an unrecovered failure, less the
    part its trust forgives (:func:`felt_share`, with the trust before the failure; the
    threshold is compared at the single precision satisfaction is stored in)."""
    new = trust + gain * (1.0 - trust) if np.float32(c) >= np.float32(met_threshold) else trust * (1.0 - loss)
    if failed:
        new *= 1.0 - failure_loss * felt_share(trust, forgiveness)
    return min(max(new, 0.0), 1.0)


def update_trust(trust, c, failed, behaviour: Behaviour, rates: StepRates) -> np.ndarray:
    t = behaviour.trust
    return trust_next(trust, c, failed, t.met_threshold, rates.trust_gain, rates.trust_loss, t.failure_loss, t.forgiveness)


@ufunc("float64(float64, float64, float64, float64, float64, float64)")
def attachment_next(attachment, trust, community_drive, trust_gain_per_year, decay_per_year, step_years):
    """dA/dt = (trust_gain * trust + community drive) (1 - A) - decay * A, per year.

    The community drive of a member is attachment_per_year * intensity, where intensity
    is 1 at full care and four events a year (co-creation adds to it)."""
    growth = (trust_gain_per_year * trust + community_drive) * (1.0 - attachment) - decay_per_year * attachment
    return min(max(attachment + growth * step_years, 0.0), 1.0)


def update_attachment(attachment, trust, community_drive, behaviour: Behaviour, rates: StepRates) -> np.ndarray:
    a = behaviour.attachment
    return attachment_next(attachment, trust, community_drive, a.trust_gain_per_year, a.decay_per_year, rates.step_years)


# --------------------------------------------------------------------------- search and choice (s.4)


@jit
def search_yearly(satisfaction_avg, curve_x, curve_p):
    """The yearly search probability the non-linear satisfaction-loyalty curve gives the
    running satisfaction: steep for the dissatisfied, flat in the middle zone, near zero for
    the delighted; linear between its points, flat beyond its ends."""
    n = curve_x.size
    if satisfaction_avg <= curve_x[0]:
        return curve_p[0]
    if satisfaction_avg >= curve_x[n - 1]:
        return curve_p[n - 1]
    k = 1
    while curve_x[k] < satisfaction_avg:
        k += 1
    x0, x1 = curve_x[k - 1], curve_x[k]
    return curve_p[k - 1] + (curve_p[k] - curve_p[k - 1]) * (satisfaction_avg - x0) / (x1 - x0) if x1 > x0 else curve_p[k]


@fastmath.composed
def per_step_of_yearly(yearly, step_years):
    """The chance within one step of something that happens within a year with probability ``yearly``."""
    return 1.0 - fastmath.power(1.0 - yearly, step_years)


@jit
def per_step_of_yearly_each(yearly, n, step_years):
    """:func:`per_step_of_yearly` of ``yearly[:n]``, in place (a loop that vectorises)."""
    for k in range(n):
        yearly[k] = per_step_of_yearly(yearly[k], step_years)


@jit
def squash_each(x, out, n):
    """out[k] = :func:`squash` (x[k]) for k < n (a loop that vectorises)."""
    for k in range(n):
        out[k] = squash(x[k])


@jit
def search_chance(satisfaction_avg, inertia, curve_x, curve_p, step_years):
    """Chance of re-evaluating the current firm in a step: the curve's yearly search
    probability (:func:`search_yearly`) converted to one step and damped by the customer's
    inertia. (The stay-or-switch kernel computes the same in two passes, so that the
    powers of a block of customers are taken together.)"""
    return per_step_of_yearly(search_yearly(satisfaction_avg, curve_x, curve_p), step_years) * (1.0 - inertia)


@jit
def _search_all(c, inertia, xs, ps, step_years):
    out = np.empty(c.size)
    for i in range(c.size):
        out[i] = search_chance(c[i], inertia[i], xs, ps, step_years)
    return out


def search_curve(behaviour: Behaviour) -> tuple[np.ndarray, np.ndarray]:
    """The search curve's satisfaction points and yearly probabilities, as arrays."""
    xs, ps = np.array(behaviour.search.curve, dtype=np.float64).T
    return np.ascontiguousarray(xs), np.ascontiguousarray(ps)


def search_probability(satisfaction_avg, inertia, behaviour: Behaviour, rates: StepRates) -> np.ndarray:
    """:func:`search_chance` over arrays."""
    xs, ps = search_curve(behaviour)
    c = np.asarray(satisfaction_avg, dtype=np.float64).ravel()
    return _search_all(c, np.broadcast_to(np.asarray(inertia, dtype=np.float64).ravel(), c.shape).copy(), xs, ps, rates.step_years)


@jit
def logit(utility, outside, scale, out):
    """Multinomial logit over firms and the outside option, written into ``out``.

    ``utility`` has one entry per firm, -inf for firms the person cannot buy from;
    ``outside`` is the utility of buying from no firm; ``out`` gets one more entry than
    ``utility``, the outside option last. (The stay-or-switch kernel calls the two halves
    itself, to take the exponentials of a block of customers at once.)"""
    logit_exponents(utility, outside, scale, out)
    for f in range(out.size):
        out[f] = fastmath.exp(out[f])  # 0 at -inf
    normalise(out, out)


@inlined
def logit_exponents(utility, outside, scale, out):
    """The logit's exponents (U - the largest U) / scale of each firm and of the outside option (last)."""
    n = utility.size
    top = outside
    for f in range(n):
        if utility[f] > top:
            top = utility[f]
    for f in range(n):
        out[f] = (utility[f] - top) / scale
    out[n] = (outside - top) / scale


@inlined
def normalise(weights, out):
    """out = weights / their sum (out may be weights)."""
    total = 0.0
    for f in range(weights.size):
        total += weights[f]
    for f in range(weights.size):
        out[f] = weights[f] / total


@jit
def pick(probabilities, u):
    """Index chosen by the uniform ``u`` (inverse transform over ``probabilities``)."""
    n = probabilities.size
    cumulative = 0.0
    for k in range(n):
        cumulative += probabilities[k]
        if u < cumulative and probabilities[k] > 0.0:
            return k
    for k in range(n - 1, -1, -1):  # rounding left u above the total: the last possible option
        if probabilities[k] > 0.0:
            return k
    return n - 1


@jit
def _logit_rows(utility, outside, scale):
    out = np.empty((utility.shape[0], utility.shape[1] + 1))
    for r in range(utility.shape[0]):
        logit(utility[r], outside[r], scale, out[r])
    return out


def choice_probabilities(utility: np.ndarray, outside_value, scale: float) -> np.ndarray:
    """:func:`logit` for every row of ``utility`` (M, F); ``outside_value`` is one value or one per row."""
    u = np.ascontiguousarray(utility, dtype=np.float64)
    outside = np.broadcast_to(np.asarray(outside_value, dtype=np.float64), (u.shape[0],)).copy()
    return _logit_rows(u, outside, float(scale))


@jit
def _pick_rows(p, u):
    out = np.empty(p.shape[0], dtype=np.int64)
    for r in range(p.shape[0]):
        out[r] = pick(p[r], u[r])
    return out


def draw_choice(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`pick` for every row, with uniforms from ``rng``."""
    p = np.ascontiguousarray(probabilities, dtype=np.float64)
    return _pick_rows(p, rng.random(p.shape[0]))


# --------------------------------------------------------------------------- word of mouth (s.7) and NPS (s.9)


@fastmath.composed
def recommend_at(satisfaction_avg, trust, attachment, satisfaction_weight, trust_weight, attachment_weight, offset):
    """:func:`recommend` inside compiled code (it vectorises)."""
    z = satisfaction_weight * fastmath.log(max(satisfaction_avg, 1e-6)) + trust_weight * (trust - 0.5) + attachment_weight * attachment + offset
    return int(np.floor(10.0 / (1.0 + fastmath.exp(-z)) + 0.5))


@ufunc("int64(float64, float64, float64, float64, float64, float64, float64)")
def recommend(satisfaction_avg, trust, attachment, satisfaction_weight, trust_weight, attachment_weight, offset):
    """Likelihood to recommend, 0-10: 10 * logistic(w_c log c + w_t (trust - 0.5) + w_a attachment + offset),
    rounded (halves up)."""
    return recommend_at(satisfaction_avg, trust, attachment, satisfaction_weight, trust_weight, attachment_weight, offset)


@jit
def recommend_each(satisfaction_avg, trust, attachment, satisfaction_weight, trust_weight, attachment_weight, offset, heard_weight, heard, out, n):
    """out[k] = :func:`recommend` of person k for k < n, its offset moved by ``heard_weight`` times
    ``heard[k]`` (the tanh of what it heard of its own firm: others' praise or criticism sways one's
    own recommendation); a loop that vectorises."""
    for k in range(n):
        out[k] = recommend_at(satisfaction_avg[k], trust[k], attachment[k], satisfaction_weight, trust_weight, attachment_weight, offset + heard_weight * heard[k])


def recommend_score(satisfaction_avg, trust, attachment, behaviour: Behaviour) -> np.ndarray:
    n = behaviour.nps
    return recommend(satisfaction_avg, trust, attachment, n.satisfaction_weight, n.trust_weight, n.attachment_weight, n.offset).astype(np.uint8)


# --------------------------------------------------------------------------- the course's decision rules (s.4, s.5, s.6)
#
# Each rule below is one customer's decision term, called by the stay-or-switch and
# acquisition kernels (sim.engine.decide, acquire) and unit-tested on its own.


@ufunc("float64(float64, float64, float64)")
def marketing_reach(contacts, reachable, response_rate):
    """Chance that a prospect is reached by a firm's marketing in a step and responds:
    ``contacts`` made at random among the ``reachable`` people of the segments the firm serves
    (customers of any firm and prospects) reach a share
    1 - exp(-contacts / reachable) of them (each contact lands on a random prospect, so
    repeated contacts are wasted: diminishing returns), of whom ``response_rate`` respond."""
    if reachable <= 0.0 or contacts <= 0.0:
        return 0.0
    return -math.expm1(-contacts / reachable) * response_rate


@ufunc("float64(float64, float64, float64)")
def points_value_share(earned_per_year, threshold, expiry_days):
    """The share of its points a customer expects to redeem rather than lose to the threshold
    and expiry (breakage): a point earned while the balance builds up to ``threshold`` at
    ``earned_per_year`` survives the x = (threshold / earned_per_year) / expiry years that
    takes with chance exp(-x * its age share); averaged over the points of one redemption,
    (1 - exp(-x)) / x. 1 when points never expire; 0 for a customer who earns none."""
    if earned_per_year <= 0.0:
        return 0.0
    if not expiry_days < np.inf:
        return 1.0
    x = threshold / earned_per_year / (expiry_days / DAYS_PER_YEAR)
    if x < 1e-9:
        return 1.0
    return -math.expm1(-x) / x


@ufunc("float64(float64, float64)")
def grudge_at_leaving(satisfaction_avg, weight):
    """Utility a customer holds against the firm it leaves: ``weight`` per unit of -log of its
    running satisfaction (none when it leaves satisfied)."""
    return weight * max(-math.log(max(satisfaction_avg, 1e-6)), 0.0)


@ufunc("float64(float64, float64, float64)")
def grudge_against(grudge, value_now, value_then):
    """The part of a grudge against a former firm that still counts: what the firm's offer has
    improved since the customer left it (in log value) is forgiven."""
    return max(grudge - max(value_now - value_then, 0.0), 0.0)


@inlined
def switching_cost(points_value, stamps_share, learning_cost, ecosystem_value, exit_fee_due, purchase_value, purchases_per_year, horizon_years, psychological_cost):
    """What leaving its firm would cost a customer, in utility [seed 001 转移成本]: the money at
    stake (points at their value to it, punch-card progress ``stamps_share`` of a free
    purchase, the learning cost of another firm's product, the ecosystem value built up, the
    exit fee still due) spread over the spend of the decision horizon, plus a psychological cost."""
    at_stake = points_value + stamps_share * purchase_value + learning_cost + ecosystem_value + exit_fee_due
    return at_stake / max(purchases_per_year * purchase_value * horizon_years, 1e-9) + psychological_cost


@inlined
def stay_utility(own_value, experience, reward_sensitivity, own_rate, trust_weight, trust, attachment_weight, attachment, word_of_mouth_weight, heard):
    """The utility of staying with one's firm: the value of its offer to this customer (with
    what tenure adds), how reliably it delivered (experience), its rewards, trust, attachment
    and what the customer heard of it."""
    return own_value + experience + reward_sensitivity * own_rate + trust_weight * trust + attachment_weight * attachment + word_of_mouth_weight * heard


#: Churn reasons, codes in the order of sim.measures.CHURN_REASONS.
LEFT_CATEGORY, DISSATISFIED, PRICE, REWARDS, VALUE = 0, 1, 2, 3, 4
_H_PRICE, _H_REWARDS, _H_REWARDS_LOST = HELD["price"], HELD["rewards"], HELD["rewards_lost"]


@inlined
def churn_reason(satisfaction_avg, generally_satisfied, held_before, to_rival, price_term, reward_term, bond_term):
    """Why a customer who chooses to leave its firm leaves [Keaveney 1995's switching causes]:
    rewards when its rewards held it before (a programme ended); else, for a move to a rival,
    the rival's advantage that weighs most when it is price or rewards (the terms of 7.14:
    price below rewards and the bond, or rewards below both); else dissatisfied (its running
    satisfaction below the generally-satisfied level); else price when its price advantage held
    it before (undercut); else value."""
    if held_before == _H_REWARDS or held_before == _H_REWARDS_LOST:
        return REWARDS
    if to_rival:
        if price_term < 0 and price_term <= reward_term and price_term <= bond_term:
            return PRICE
        if reward_term < 0 and reward_term <= bond_term:
            return REWARDS
    if satisfaction_avg < generally_satisfied:
        return DISSATISFIED
    if held_before == _H_PRICE:
        return PRICE
    return VALUE


_H_NONE, _H_NOT_LOOKING, _H_SWITCHING, _H_TRUST, _H_VALUE = HELD["none"], HELD["not_looking"], HELD["switching_cost"], HELD["trust"], HELD["value"]
_LADDER = (HELD["switching_cost"], HELD["price"], HELD["rewards"], HELD["trust"])


@inlined
def held_by(advantage, switching, price_term, reward_term, bond_term, searched, trust, attachment, trust_threshold, attachment_threshold, held_before=0):
    """What holds a customer who has an alternative [seed 001 客户忠诚的类型]: its advantage of
    staying over the best rival splits into switching cost, price, rewards and the bond (the
    firm's value and the relationship). A term is pivotal when without it the rival would be
    at least as good; loyalty is only as deep as its shallowest necessary support, so the
    first pivotal term on the course's ladder (switching cost, price, rewards, bond) holds it,
    else the largest. Held by the bond, it is trust-loyal only when its trust and attachment
    are high; else it stays for the value alone (satisfied but not loyal). With no advantage,
    it is held by inertia if it did not look this step (``rewards_lost`` when its rewards held it
    before: it stays only because it has not looked since they went), by nothing if it did."""
    if not advantage > 0:
        if searched:
            return _H_NONE
        return _H_REWARDS_LOST if held_before == _H_REWARDS or held_before == _H_REWARDS_LOST else _H_NOT_LOOKING
    pivotal, largest_k, largest = -1, 0, switching
    for k in range(4):
        term = switching if k == 0 else price_term if k == 1 else reward_term if k == 2 else bond_term
        if pivotal < 0 and term > 0 and advantage - term <= 0:
            pivotal = k
        if term > largest:
            largest_k, largest = k, term
    k = pivotal if pivotal >= 0 else largest_k
    if k == 3:
        return _H_TRUST if trust >= trust_threshold and attachment >= attachment_threshold else _H_VALUE
    return _LADDER[k]
