"""The step kernels: each phase of the schedule as one compiled loop over customers.

A kernel visits every person of a range ``lo .. hi-1`` once, reads the state it needs
from the population's arrays, applies the rules of :mod:`sim.rules` to that one customer
and writes the new state back in place; what firms need (money, flows, counts) is summed
per firm and per chunk of :data:`sim.parallel.CHUNK` people as it goes. Nothing is
gathered into temporary arrays, so a step streams through memory a few times whatever
the size of the market, and the draws come from the counter-based generator of
:mod:`sim.rules` (one stream key per step), so results do not depend on the order of the
loop. The ranges of a step run on threads at once (:class:`sim.parallel.Split`): a kernel
writes only the state of its own range's people, except word of mouth, which is said by
ranges of speakers (:func:`speak`) and then heard by ranges of listeners (:func:`listen`).

:class:`sim.model.LoyaltyModel` calls the kernels in the order of MODEL.md section 12,
most of them grouped in passes (:data:`PASSES`): a pass runs several kernels for one range,
so a step hands work to a thread, and converts the state tuples from Python, a few times
rather than once per kernel (tens of microseconds each, which counts in a small market).
The arguments are the population's arrays (``pop``, a :class:`sim.population.State`), the
firms' offers (``off``, :class:`sim.offers.OfferArrays`), what the step derives from them
(``ctx``, :class:`Context`) and the scenario's coefficients (``par``, :class:`Params`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from sim import fastmath
from sim.measures import tally
from sim.parallel import CHUNK
from sim.population import HELD
from sim.rules import (
    DAYS_PER_YEAR,
    StepRates,
    attachment_next,
    chance,
    churn_reason,
    contract_remaining,
    expectation_next,
    felt_share,
    first_expectation,
    first_weights,
    grudge_against,
    grudge_at_leaving,
    held_by,
    jit,
    logit,
    logit_exponents,
    normal_each,
    marketing_reach as rules_reach,
    normalise,
    offer_value,
    per_step_of_yearly_each,
    person,
    pick,
    poisson,
    poisson_at,
    points_value_share,
    poisson_tables,
    purchase_outcome,
    recommend,
    recommend_each,
    satisfaction,
    search_yearly,
    squash,
    squash_each,
    stay_utility,
    switching_cost,
    price_tolerance,
    tenure_value,
    trust_next,
    uniform,
)
from sim.scenario import Scenario

NEG_INF = -np.inf

#: Customers per block of the kernels that take their transcendental functions a block at a time.
BLOCK = 256

#: The per-customer helpers take the state tuples; they are inlined into the kernels (a call
#: would pass and reference-count every array of the tuples each time).
inline = numba.njit(nogil=True, inline="always", error_model="numpy", fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})

# draw slots (see sim.rules.uniform): each decision of a customer in a step has its own
S_ENTER, S_CHOOSE, S_REACH = 0, 1, 100  # acquisition (S_REACH + 2 f, + 2 f + 1: firm f's marketing)
S_STOCK, S_FAILURE, S_RECOVERY, S_NOISE, S_JOIN = 10, 11, 12, 13, 15  # purchases
S_EXIT, S_SEARCH, S_SWITCH = 20, 21, 22  # stay-or-switch
S_TALKS, S_LISTENER = 1_000, 1_000_000  # word of mouth: conversations, and whom each is with

# codes of `choice` (what a person does in a step): a firm's index means it joins that firm;
# F and F + 1 (see decide) mean it leaves the category
STAY = -1

# churn reasons, in the order of sim.measures.CHURN_REASONS (set by sim.rules.churn_reason)
LEFT_CATEGORY = 0

H_NONE, H_NO_ALTERNATIVE, H_SWITCHING = HELD["none"], HELD["no_alternative"], HELD["switching_cost"]

# a conversation of word of mouth (see speak): listener << TALK_SHIFT | firm << 1 | good news;
# firms are int8 (at most 127), so 7 bits of firm (a shift and a mask to read: no division)
TALK_SHIFT, FIRM_BITS = 8, 127

# bits of a purchase outcome (see consume)
BOUGHT, FAILED, RECOVERED = 1, 2, 4

# per-firm money of a step (rows of the `money` table the consume kernel fills), and the
# purchase occasions and units sold
M_REVENUE, M_GOODS, M_SERVICE, M_REWARDS, M_MEMBERS, M_OCCASIONS, M_UNITS = 0, 1, 2, 3, 4, 5, 6
MONEY_ROWS = 7


class Params(NamedTuple):
    """The scenario's coefficients in force, converted to one step (plain numbers)."""

    step_years: float
    step_days: float
    steps_per_year: float
    satisfaction_weight: float
    experience_weight: float
    promise_weight: float
    market_weight: float
    standard_weight: float
    first_promise: float  # weights of the promise and the comparison level in a new customer's expectation
    first_market: float
    grudge_decay: float
    grudge_weight: float
    forgiveness: float
    trust_threshold: float
    attachment_threshold: float
    trust_gain: float
    trust_loss: float
    trust_met: float
    failure_loss: float
    trust_initial: float
    attachment_trust_gain: float
    attachment_decay: float
    spend_decay: float
    spend_weight: float
    buzz_decay: float
    log_discount: float  # log(1 + discount rate per step)
    noise: float
    word_of_mouth_effect: float  # on expectation
    word_of_mouth_weight: float  # in choice
    trust_weight: float
    attachment_weight: float
    outside_value: float
    scale: float
    psychological_cost: float
    horizon_years: float
    referral_rate: float
    positive_reach: float  # conversations per step of a promoter
    negative_reach: float  # of a detractor
    nps_satisfaction: float
    nps_trust: float
    nps_attachment: float
    nps_offset: float
    nps_word_of_mouth: float
    generally_satisfied: float
    max_years: float
    basket_growth: float
    serve_cost_decline: float
    price_tolerance: float

    @classmethod
    def of(cls, scenario: Scenario, rates: StepRates) -> Params:
        b, econ, step_days = scenario.behaviour, scenario.market.loyalty_economics, scenario.market.step_days
        years = rates.step_years
        return cls(**{name: float(v) for name, v in dict(
            step_years=years,
            step_days=step_days,
            steps_per_year=DAYS_PER_YEAR / step_days,
            satisfaction_weight=rates.satisfaction_weight,
            experience_weight=rates.experience_weight,
            promise_weight=rates.promise_weight,
            market_weight=rates.market_weight,
            standard_weight=rates.standard_weight,
            first_promise=first_weights(b.expectation)[0],
            first_market=first_weights(b.expectation)[1],
            grudge_decay=rates.grudge_decay,
            grudge_weight=b.memory.grudge_weight,
            forgiveness=b.trust.forgiveness,
            trust_threshold=b.loyalty.trust_threshold,
            attachment_threshold=b.loyalty.attachment_threshold,
            trust_gain=rates.trust_gain,
            trust_loss=rates.trust_loss,
            trust_met=b.trust.met_threshold,
            failure_loss=b.trust.failure_loss,
            trust_initial=b.trust.initial,
            attachment_trust_gain=b.attachment.trust_gain_per_year,
            attachment_decay=b.attachment.decay_per_year,
            spend_decay=rates.spend_decay,
            spend_weight=rates.spend_weight,
            buzz_decay=rates.buzz_decay,
            log_discount=math.log1p(rates.discount_per_step),
            noise=b.satisfaction.experience_noise,
            word_of_mouth_effect=b.expectation.word_of_mouth_effect,
            word_of_mouth_weight=b.choice.word_of_mouth_weight,
            trust_weight=b.choice.trust_weight,
            attachment_weight=b.choice.attachment_weight,
            outside_value=b.choice.outside_value,
            scale=b.choice.scale,
            psychological_cost=b.choice.psychological_cost,
            horizon_years=b.choice.decision_horizon_days / DAYS_PER_YEAR,
            referral_rate=b.word_of_mouth.referral_rate,
            positive_reach=b.word_of_mouth.positive_reach_per_year * years,
            negative_reach=b.word_of_mouth.negative_reach_per_year * years,
            nps_satisfaction=b.nps.satisfaction_weight,
            nps_trust=b.nps.trust_weight,
            nps_attachment=b.nps.attachment_weight,
            nps_offset=b.nps.offset,
            nps_word_of_mouth=b.nps.word_of_mouth_weight,
            generally_satisfied=b.satisfaction.generally_satisfied,
            max_years=econ.max_years,
            basket_growth=econ.basket_growth_per_year,
            serve_cost_decline=econ.serve_cost_decline_per_year,
            price_tolerance=econ.price_tolerance_per_year,
        ).items()})


class Context(NamedTuple):
    """What a step derives from the offers, per firm (F,) or per segment and firm (S, F)."""

    typical: np.ndarray  # log value of each firm's offer to its typical customer (what it advertises)
    promise_term: np.ndarray  # believed part of each firm's promise: credibility * log promise
    promised: np.ndarray  # value each firm leads its typical customer to expect: exp(typical + promise_term)
    norm: np.ndarray  # (S,) comparison level: the value the market's firms deliver to the segment, times demandingness
    log_price: np.ndarray  # (S, F) log(price / the segment's reference price), a price above it weighted by loss aversion
    entry_rate: np.ndarray  # reward value per unit of spend a new customer can expect (profit share included)
    profit_share_rate: np.ndarray
    points_keep: np.ndarray  # share of points still valid after a step (expiry)
    segment_terms: np.ndarray  # (S, F) image, convenience and risk value
    available: np.ndarray  # (S, F) bool: the firm is active and serves the segment
    segment_entry: np.ndarray  # (S,) 1/year
    exit_chance: np.ndarray  # (S,) chance of leaving the category in a step
    curve_x: np.ndarray  # search curve: satisfaction points
    curve_p: np.ndarray  # and yearly search probabilities
    discount: np.ndarray  # (T,) discount factor of a margin earned after t steps of tenure, exp(-t log(1 + rate per step))


# --------------------------------------------------------------------------- small rules of the engine
#
# The kernels below index the state tuples directly and call rules on plain numbers: a
# compiled call that takes a whole state tuple reference-counts every array in it, which
# would cost more than the work of a customer. Only the rare paths (a customer leaving)
# call a helper with a tuple.


@inline
def bracket(spend_table, f, annual_spend):
    """Index of the highest row of ``spend_table[f]`` (tier or volume bracket; 0 = none)
    whose minimum annual spend ``annual_spend`` reaches."""
    k, top = 0, spend_table.shape[1] - 1
    while k < top and annual_spend >= spend_table[f, k + 1]:  # rows ascend (+inf padding)
        k += 1
    return k


@inline
def decompose(price_sensitivity, tolerance, log_price_own, log_price_other, reward_sensitivity, own_rate, entry_rate_other, stay, other_total):
    """Split the advantage of staying (utility ``stay``) over joining another firm (utility
    ``other_total`` before switching cost) into its terms (price, rewards, trust).

    price: the price part of perceived value (own firm at the customer's tolerance);
    rewards: reward value of staying minus that of joining; bond: everything else that is
    not switching cost (quality, service and experience, trust, attachment, word of mouth,
    the other firm's promise, a grudge held against it)."""
    price = -price_sensitivity * (1.0 - tolerance) * log_price_own + price_sensitivity * log_price_other
    reward = reward_sensitivity * (own_rate - entry_rate_other)
    return price, reward, stay - other_total - price - reward


@inline
def firm_value(pop, off, ctx, i, seg, f):
    """Log value of firm ``f``'s offer to customer ``i`` of segment ``seg`` (:func:`offer_value`)."""
    return offer_value(
        pop.quality_sensitivity[i], pop.service_sensitivity[i], pop.price_sensitivity[i],
        off.log_quality[f], off.log_service[f], ctx.log_price[seg, f], ctx.segment_terms[seg, f],
    )


@inline
def own_value(pop, off, ctx, par, i, f):
    """Log value of its firm ``f``'s offer to customer ``i``, with what its tenure adds (the fit
    of personalisation): the value it perceives, before the purchase's shock."""
    return firm_value(pop, off, ctx, i, pop.segment[i], f) + tenure_value(
        pop.tenure[i] * par.step_days, pop.quality_sensitivity[i], off.personalisation[f], off.personalisation_days[f],
    )


@inline
def remember(pop, off, ctx, par, i):
    """Person ``i`` leaves its firm by its own choice: it remembers the firm, how satisfied it
    left (a grudge, :func:`sim.rules.grudge_at_leaving`) and the value the firm's offer had
    for it then (an improvement since is forgiven, :func:`sim.rules.grudge_against`)."""
    f = pop.firm[i]
    pop.former_firm[i] = f
    pop.grudge[i] = grudge_at_leaving(pop.satisfaction_avg[i], par.grudge_weight)
    pop.former_value[i] = firm_value(pop, off, ctx, i, pop.segment[i], f)


@inline
def held_against(former_firm, grudge, former_value, g, value):
    """The grudge a person still holds against firm ``g`` whose offer is now worth ``value`` to it
    (plain numbers: a helper that took the state tuples would reference-count every array)."""
    return grudge_against(grudge, value, former_value) if g == former_firm and grudge > 0.0 else 0.0


@inline
def entry_rate(rate, points_entry, spend_per_year, points_rate, threshold, expiry_days):
    """The reward rate (a fraction of spend) a person expects as a new customer of a firm: its
    entry ``rate`` with the points valued net of the breakage this person would suffer at its
    ``spend_per_year`` there (:func:`sim.rules.points_value_share`)."""
    if points_entry > 0:
        rate -= points_entry * (1.0 - points_value_share(spend_per_year * points_rate, threshold, expiry_days))
    return rate


@inline
def end_relationship(pop, i):
    """Person ``i`` stops buying from its firm and becomes a prospect."""
    pop.firm[i] = -1
    pop.tenure[i] = 0
    pop.member[i] = False
    pop.points[i] = 0.0
    pop.stamps[i] = 0.0
    pop.tier[i] = 0
    pop.held_by[i] = H_NONE
    pop.switching_cost[i] = 0.0
    pop.repurchase[i] = 0.0
    pop.recommend[i] = 0


# --------------------------------------------------------------------------- the phases


@jit
def offer_sums(pop, off, ctx, servable, sums, counts, lo, hi):
    """Sum per chunk, segment and firm (``sums`` and ``counts``, (chunks, S, F)) the log value of
    each firm's offer to the people ``lo .. hi-1`` it concerns: its own customers, or, for the
    firms flagged in ``servable``, everyone it can serve (see :meth:`sim.model.LoyaltyModel._set_typical_values`)."""
    n_firms = servable.size
    own = True
    for f in range(n_firms):
        own = own and not servable[f]
    for p in range(lo, hi):
        i = person(p)
        c, seg = i // CHUNK, pop.segment[i]
        if own:
            f = pop.firm[i]
            if f >= 0:
                sums[c, seg, f] += firm_value(pop, off, ctx, i, seg, f)
                counts[c, seg, f] += 1
            continue
        for f in range(n_firms):
            if servable[f] and ctx.available[seg, f]:
                sums[c, seg, f] += firm_value(pop, off, ctx, i, seg, f)
                counts[c, seg, f] += 1


@jit
def marketing_reach(off, ctx, par, people):
    """(F,) chance that a prospect a firm can serve is reached by its marketing this step and
    responds (:func:`sim.rules.marketing_reach`). The contacts the budget buys land on people
    of the segments the firm serves (``people`` per segment), customers of any firm as well as
    prospects; only prospects respond."""
    n_firms, n_segments = off.price.size, people.size
    reach = np.zeros(n_firms)
    for f in range(n_firms):
        if off.active[f] and off.marketing_per_year[f] > 0:
            reachable = 0.0
            for s in range(n_segments):
                if ctx.available[s, f]:
                    reachable += people[s]
            reach[f] = rules_reach(off.marketing_per_year[f] * par.step_years / off.cost_per_contact[f], reachable, off.response_rate[f])
    return reach


@jit
def acquire(pop, off, ctx, par, key, reach, choice, acquired, lo, hi):
    """Prospects ``lo .. hi-1`` start shopping (on their own, through referrals, or reached by
    marketing, with the chance ``reach`` of :func:`marketing_reach`) and choose a firm or none;
    those who chose one join it (:func:`join`). ``choice`` gets the firm each new customer
    chose (STAY for everyone else); ``acquired`` (chunks, F) counts them."""
    n_firms = reach.size
    score = first_score(par)
    aware = np.zeros(n_firms, dtype=np.bool_)
    utility = np.empty(n_firms)
    probabilities = np.empty(n_firms + 1)
    for p in range(lo, hi):
        i = person(p)
        choice[i] = STAY
        if pop.firm[i] >= 0:
            continue
        seg = pop.segment[i]
        former, grudge, former_value = pop.former_firm[i], pop.grudge[i], pop.former_value[i]
        good_news = 0.0
        for f in range(n_firms):
            good_news += max(pop.buzz[i, f], 0.0)
        enter = uniform(key, i, S_ENTER) < chance(ctx.segment_entry[seg] + par.referral_rate * good_news, par.step_years)
        for f in range(n_firms):
            aware[f] = reach[f] > 0 and ctx.available[seg, f] and uniform(key, i, S_REACH + 2 * f) < reach[f]
            enter = enter or aware[f]
        if not enter:
            continue
        for f in range(n_firms):
            if ctx.available[seg, f]:
                value = firm_value(pop, off, ctx, i, seg, f)
                rate = entry_rate(
                    ctx.entry_rate[f], off.points_entry[f], pop.purchases_per_year[i] * off.demand[f] * pop.basket[i] * off.price[f],
                    off.points_rate[f], off.redemption_threshold[f], off.expiry_days[f],
                )
                utility[f] = (
                    value + ctx.promise_term[f] + pop.reward_sensitivity[i] * rate
                    + par.word_of_mouth_weight * squash(pop.buzz[i, f]) + (off.awareness_bonus[f] if aware[f] else 0.0)
                    - held_against(former, grudge, former_value, f, value)
                )
            else:
                utility[f] = NEG_INF
        logit(utility, par.outside_value, par.scale, probabilities)
        g = pick(probabilities, uniform(key, i, S_CHOOSE))
        if g < n_firms:
            choice[i] = g
            acquired[i // CHUNK, g] += 1
            join(pop, off, ctx, par, i, g, score)


@jit
def start(pop, off, ctx, par, choice, lo, hi):
    """Everyone of ``lo .. hi-1`` with a firm in ``choice`` becomes a new customer of it (:func:`join`)."""
    n_firms = off.price.size
    score = first_score(par)
    for p in range(lo, hi):
        i = person(p)
        f = choice[i]
        if 0 <= f < n_firms:
            join(pop, off, ctx, par, i, f, score)


@inline
def first_score(par):
    """The likelihood to recommend of a new customer."""
    return recommend(1.0, par.trust_initial, 0.0, par.nps_satisfaction, par.nps_trust, par.nps_attachment, par.nps_offset)


@inline
def join(pop, off, ctx, par, i, f, score):
    """Person ``i`` becomes a new customer of firm ``f``.

    A new customer expects what it has to go on before any experience of the firm
    (:func:`sim.rules.first_expectation`): the firm's (partly believed) promise, what the
    market's firms deliver to its segment and its own standard, scaled by its demandingness
    and shifted by what it heard about the firm; from its first purchase on, its experience
    moves the expectation too.
    Its satisfaction starts at 1 (no purchase yet), its trust at the initial trust, and
    points, stamps, spend, attachment and club membership at zero; ``score`` is its
    likelihood to recommend (:func:`first_score`)."""
    heard = squash(pop.buzz[i, f]) * par.word_of_mouth_effect
    seg = pop.segment[i]
    expected = first_expectation(firm_value(pop, off, ctx, i, seg, f) + ctx.promise_term[f], math.log(ctx.norm[seg]), par.first_promise, par.first_market)
    expectation = pop.expectation_level[i] * fastmath.exp(expected + heard)
    pop.firm[i] = f
    pop.tenure[i] = 0
    pop.expectation[i] = expectation
    pop.perceived_value[i] = expectation  # no purchase yet: neither delighted nor disappointed
    pop.satisfaction[i] = 1.0
    pop.satisfaction_avg[i] = 1.0
    pop.experience[i] = 0.0
    pop.trust[i] = par.trust_initial
    pop.attachment[i] = 0.0
    pop.points[i] = 0.0
    pop.stamps[i] = 0.0
    pop.annual_spend[i] = 0.0
    pop.tier[i] = bracket(off.tier_spend, f, 0.0)
    pop.member[i] = False
    pop.held_by[i] = H_NONE
    pop.switching_cost[i] = 0.0
    pop.repurchase[i] = 0.0
    pop.recommend[i] = score
    pop.value_to_date[i] = 0.0


@jit
def consume(pop, off, ctx, par, key, money, margin, lo, hi):
    """Purchases, experience, rewards and community for every customer.

    Purchases: occasions, units (the basket grows with tenure), money, discounts, costs
    (cost to serve falls with tenure), stock-outs, failures and recoveries. Experience:
    perceived value b, satisfaction c = b / a and the updates of a, trust and the running
    averages. Rewards: points earned, expired and redeemed (every outstanding point is
    honoured when a programme ends), punch-card stamps, annual spend and tiers.
    Community: inclined customers join their firm's club; attachment follows trust and
    the club's care; for customers ``lo .. hi-1``. ``money`` (chunks, MONEY_ROWS, F) gets each
    firm's revenue and costs, ``margin`` each customer's margin, discounted to the start of its
    relationship (:func:`age` adds it to the value to date of those who stay)."""
    noise = np.zeros(BLOCK)  # each customer's normal draw of purchase noise
    shock = np.empty(BLOCK)  # log shock to perceived value
    outcome = np.empty(BLOCK, dtype=np.int8)  # what happened (see below)
    perceived = np.empty(BLOCK)  # log perceived value, then perceived value
    promised = np.empty(BLOCK)  # log of the value the firm's promise leads the customer to expect, then that value
    for b0 in range(lo, hi, BLOCK):
        m = min(BLOCK, hi - b0)
        books = money[b0 // CHUNK]
        if par.noise > 0:
            normal_each(key, b0, S_NOISE, noise, m)
        # the purchases and the value they give (exponentials taken for the block at once)
        for k in range(m):
            i = person(b0 + k)
            f = pop.firm[i]
            if f < 0:
                perceived[k] = promised[k] = 0.0
                continue
            value = firm_value(pop, off, ctx, i, pop.segment[i], f)
            promised[k] = value + ctx.promise_term[f]  # what the firm's (partly believed) promise makes its offer worth to it
            shock[k], bought, failed, recovered = purchase_outcome(
                uniform(key, i, S_STOCK), uniform(key, i, S_FAILURE), uniform(key, i, S_RECOVERY), noise[k],
                off.availability[f], off.failure_rate[f], off.recovery_rate[f], par.noise,
                off.log_failure_penalty[f] * felt_share(pop.trust[i], par.forgiveness), off.log_recovery_boost[f],
            )
            outcome[k] = BOUGHT * bought + FAILED * failed + RECOVERED * recovered
            perceived[k] = value + tenure_value(
                pop.tenure[i] * par.step_days, pop.quality_sensitivity[i], off.personalisation[f], off.personalisation_days[f],
            ) + shock[k]  # own_value, with the value just computed
        fastmath.exp_each(perceived, m)
        fastmath.exp_each(promised, m)
        for k in range(m):
            i = person(b0 + k)
            f = pop.firm[i]
            if f < 0:
                continue
            bought, failed, recovered = outcome[k] & BOUGHT != 0, outcome[k] & FAILED != 0, outcome[k] & RECOVERED != 0
            tenure_days = pop.tenure[i] * par.step_days
            years_in = min(tenure_days / DAYS_PER_YEAR, par.max_years)
            occasions = pop.purchases_per_year[i] * par.step_years * off.demand[f] if bought else 0.0
            units = occasions * pop.basket[i] * (1.0 + par.basket_growth * years_in)
            gross = units * off.price[f]
            t = pop.tier[i]
            keep = (1.0 - off.tier_discount[f, t]) * (1.0 - off.volume_discount[f, bracket(off.volume_spend, f, pop.annual_spend[i])])
            discount = gross * (1.0 - keep)
            goods = units * off.unit_cost[f]
            # cost to serve: the base cost per occasion (falling with tenure) and what the value
            # levers add to it, the levers' yearly cost per customer, recoveries, guarantee claims
            per_occasion = off.cost_per_purchase[f] * max(1.0 - par.serve_cost_decline * years_in, 0.0) + off.lever_cost_per_purchase[f]
            service = occasions * max(per_occasion, 0.0) + off.lever_cost_per_year[f] * par.step_years
            if recovered:
                service += off.recovery_cost[f]
            if failed:
                service += off.guarantee_claim[f] * gross
            # experience
            c = satisfaction(perceived[k], pop.expectation[i])
            pop.perceived_value[i] = perceived[k]
            pop.satisfaction[i] = c
            pop.satisfaction_avg[i] += par.satisfaction_weight * (c - pop.satisfaction_avg[i])
            pop.experience[i] += par.satisfaction_weight * (shock[k] - pop.experience[i])
            level = pop.expectation_level[i]
            pop.expectation[i] = expectation_next(
                pop.expectation[i], perceived[k], level * promised[k], level * ctx.norm[pop.segment[i]], level,
                par.experience_weight, par.promise_weight, par.market_weight, par.standard_weight,
            )
            trust = trust_next(pop.trust[i], c, failed, par.trust_met, par.trust_gain, par.trust_loss, par.failure_loss, par.forgiveness)
            pop.trust[i] = trust
            # rewards
            spend = gross - discount
            earned = spend * off.points_rate[f] * off.tier_points[f, t]
            points = pop.points[i] * ctx.points_keep[f] + earned
            threshold = off.redemption_threshold[f]
            redeemed = math.floor(points / threshold) * threshold if off.rewards_active[f] else points
            pop.points[i] = points - redeemed
            free = 0.0
            if off.punch_stamps[f] > 0:
                stamps = pop.stamps[i] + occasions
                free = math.floor(stamps / off.punch_stamps[f])
                pop.stamps[i] = stamps - free * off.punch_stamps[f]
            else:
                pop.stamps[i] = 0.0
            purchase_value = gross / max(occasions, 1e-12)
            reward_cost = discount + redeemed * off.point_value[f] + earned * off.coalition_fee[f] + free * purchase_value
            annual_spend = pop.annual_spend[i] * par.spend_decay + spend * par.spend_weight
            pop.annual_spend[i] = annual_spend
            pop.tier[i] = bracket(off.tier_spend, f, annual_spend)
            # community
            member = False
            if off.community[f]:
                member = pop.member[i] or uniform(key, i, S_JOIN) < chance(off.join_per_year[f] * pop.community_propensity[i], par.step_years)
            pop.member[i] = member
            drive = off.attachment_per_year[f] * off.community_intensity[f] if member else 0.0
            # trust builds attachment only in a relationship the customer keeps by choice: one held
            # by having no alternative or by its switching cost is constraint-based (Bendapudi and Berry 1997)
            held = pop.held_by[i]
            bonded = par.attachment_trust_gain if held != H_NO_ALTERNATIVE and held != H_SWITCHING else 0.0
            pop.attachment[i] = attachment_next(pop.attachment[i], trust, drive, bonded, par.attachment_decay, par.step_years)
            # books
            books[M_REVENUE, f] += gross
            books[M_GOODS, f] += goods
            books[M_SERVICE, f] += service
            books[M_REWARDS, f] += reward_cost
            books[M_OCCASIONS, f] += occasions
            books[M_UNITS, f] += units
            if member:
                books[M_MEMBERS, f] += 1.0
            tenure = pop.tenure[i]
            discount = ctx.discount[tenure] if tenure < ctx.discount.size else math.exp(-tenure * par.log_discount)
            margin[i] = (gross - goods - service - reward_cost) * discount


@jit
def speak(pop, off, par, key, ties, said, lo, hi):
    """Word of mouth, said: promoters and detractors among ``lo .. hi-1`` talk to their ties.

    Their buzz (net word of mouth heard about each firm) fades first; each customer's
    likelihood to recommend is scored; a promoter (9-10) has Poisson(positive reach, more
    for club members) conversations this step, a detractor (0-6) Poisson(negative reach),
    each with one of its ties drawn at random. Returns the conversations in the order of the
    speakers, each as ``listener << TALK_SHIFT | firm << 1 | (1 if good news else 0)``, for
    :func:`listen`; ``said`` (chunks, 2, F) counts them by firm, good news then bad."""
    n_firms = pop.buzz.shape[1]
    degree = ties.shape[1]
    decay = np.float32(par.buzz_decay)
    for p in range(lo, hi):
        i = person(p)
        for f in range(n_firms):
            pop.buzz[i, f] *= decay
    # the rates of the Poisson counts of conversations, and exp(-rate): a promoter who is not a
    # club member (row 0), one who is, of each firm (1 .. F), and a detractor (F + 1); their
    # cumulative probabilities where every rate is at most 30 (else each count is drawn alone)
    rates = np.empty(n_firms + 2)
    rates[0], rates[1:n_firms + 1], rates[n_firms + 1] = par.positive_reach, par.positive_reach * (1.0 + off.word_of_mouth_boost), par.negative_reach
    limits = np.exp(-rates)
    tabled = rates.max() <= 30.0
    tables, most = poisson_tables(rates, limits) if tabled else (np.zeros((1, 1)), np.zeros(1))
    scores = np.empty(BLOCK, dtype=np.int64)
    news = np.zeros(BLOCK)  # what each heard of its own firm, then its tanh
    heard = np.zeros(BLOCK)
    talked = np.empty(max(64, (hi - lo) // 8), dtype=np.int64)
    count = 0
    for p in range(lo, hi):
        i = person(p)
        k = (i - lo) % BLOCK
        if k == 0:  # the likelihood to recommend of the next block of people
            m = min(BLOCK, hi - i)
            for b in range(m):
                g = pop.firm[i + b]
                news[b] = pop.buzz[i + b, g] if g >= 0 else 0.0
            squash_each(news, heard, m)
            recommend_each(
                pop.satisfaction_avg[i:], pop.trust[i:], pop.attachment[i:],
                par.nps_satisfaction, par.nps_trust, par.nps_attachment, par.nps_offset, par.nps_word_of_mouth, heard, scores, m,
            )
        f = pop.firm[i]
        if f < 0:
            continue
        score = scores[k]
        pop.recommend[i] = score
        if score >= 9:
            row, good = (1 + f if pop.member[i] else 0), 1
        elif score <= 6:
            row, good = n_firms + 1, 0
        else:
            continue
        if degree == 0 or rates[row] <= 0.0:
            continue
        if tabled:
            talks = poisson_at(tables[row], most[row], uniform(key, i, S_TALKS))
        else:
            talks = poisson(rates[row], key, i, S_TALKS, limits[row])
        if count + talks > talked.size:
            more = np.empty(max(2 * talked.size, count + talks), dtype=np.int64)
            more[:count] = talked[:count]
            talked = more
        for k in range(talks):
            j = ties[i, min(int(uniform(key, i, S_LISTENER + k) * degree), degree - 1)]
            talked[count] = (np.int64(j) << TALK_SHIFT) | (f << 1) | good
            count += 1
        said[i // CHUNK, 1 - good, f] += talks
    return talked[:count]


@jit
def listen(buzz, talked, lo, hi):
    """Word of mouth, heard by people ``lo .. hi-1``: each listener's buzz about the speaker's
    firm moves by +1 or -1 (conversations ``talked`` of :func:`speak`, in order: a listener
    hears its conversations in the order of their speakers, whichever thread takes it). What a
    customer hears of its own firm sways its attitude (its utility of staying and, bad news, its
    search; :func:`decide`), not its expectation of a firm it already knows from experience."""
    for k in range(talked.size):
        code = talked[k]
        j = code >> TALK_SHIFT
        if j < lo or j >= hi:
            continue
        j, f = person(j), (code >> 1) & FIRM_BITS
        buzz[j, f] += np.float32(1.0) if code & 1 else np.float32(-1.0)


@jit
def decide(pop, off, ctx, par, key, choice, reason, draw, lo, hi):
    """The stay-or-switch decision of customers, and the loyalty type it gives them.

    Decision terms: the utility of staying (own value with what tenure adds, experience,
    own rewards, trust, attachment, word of mouth), of every other firm the customer can
    buy from (its value, believed promise, entry rewards and word of mouth, less the
    switching cost) and of leaving the category (less the switching cost), with logit
    choice probabilities; the chance of leaving the category (its natural exit rate) and of
    searching (the satisfaction curve, raised by bad news heard, damped by inertia).

    With ``draw``, every customer of ``lo .. hi-1`` is visited: customers who joined this step only get their
    terms; the others may leave the category, else search, and a searcher chooses. ``choice``
    gets STAY, a rival's index, F (leave the category by choice) or F + 1 (leave it for reasons
    no firm controls), and ``reason`` why a leaver leaves: no firm's doing (left the
    category), dissatisfaction, or the term that most favoured the rival it chose (price,
    rewards, else value). Without ``draw``, only customers whose ``choice`` is a firm (those who
    just joined it) get their terms, and nothing is drawn.

    Loyalty type (every visited customer, as if it stays): the advantage of staying over
    the best alternative firm is split into price, rewards, trust and switching cost. A
    term is pivotal when without it the alternative would win. Loyalty is only as deep as
    its shallowest necessary support, so the type is the first pivotal term on the
    course's ladder (switching cost, price, rewards, trust); a customer held by several
    terms none of which is pivotal is named after the largest. No alternative firm:
    monopoly. No advantage: inertia if it did not look this step, none (a switcher in
    waiting) if it did. Also stores the switching cost and the yearly repurchase probability.

    Customers are taken in blocks of ``BLOCK``: the exponentials, logarithms and powers of a
    block (word of mouth's tanh, the logit's weights, the search and repurchase chances) are
    computed in loops of their own, which run several customers at a time in SIMD registers;
    the rest is one customer at a time."""
    n_firms = pop.buzz.shape[1]
    width = n_firms + 1  # the firms and the outside option
    # who is visited: everyone (with draws), else those who just joined a firm
    joined = np.empty(0, dtype=np.int64) if draw else lo + np.flatnonzero((choice[lo:hi] >= 0) & (choice[lo:hi] < n_firms))
    count = hi - lo if draw else joined.size
    buzz = np.empty(BLOCK * n_firms)  # the buzz about each firm,
    heard = np.empty(BLOCK * n_firms)  # and its tanh
    utility = np.empty(BLOCK * width)  # each option's utility, less the switching cost for a rival
    weight = np.empty(BLOCK * width)  # the logit's weight of each option
    switching = np.empty(BLOCK)
    at_stake = np.empty(BLOCK)  # the part of the switching cost that is rewards at risk
    own_rate = np.empty(BLOCK)
    rates = np.empty(BLOCK * n_firms)  # the entry reward rate of each other firm to the customer
    stay = np.empty(BLOCK)
    search = np.empty(BLOCK)  # the yearly search probability, then the step's search chance
    bad_news = np.empty(BLOCK)  # exp(-the rate of searching because of bad news * a step)
    stay_step = np.empty(BLOCK)  # chance of still buying from the firm after one step, then after a year
    visit = np.zeros(BLOCK, dtype=np.bool_)
    probabilities = np.empty(width)
    for b0 in range(0, count, BLOCK):
        m = min(BLOCK, count - b0)
        for k in range(m):
            i = person(lo + b0 + k if draw else joined[b0 + k])
            for g in range(n_firms):
                buzz[k * n_firms + g] = pop.buzz[i, g]
        squash_each(buzz, heard, m * n_firms)
        # each customer's terms
        for k in range(m):
            i = person(lo + b0 + k if draw else joined[b0 + k])
            f = pop.firm[i]
            if draw:
                choice[i] = STAY
            visit[k] = f >= 0
            if not visit[k]:
                for g in range(width):
                    weight[k * width + g] = NEG_INF
                search[k] = bad_news[k] = stay_step[k] = 0.0
                continue
            seg = pop.segment[i]
            tenure_days = pop.tenure[i] * par.step_days
            # switching cost (sim.rules.switching_cost): points at their value to the customer,
            # punch-card progress, learning cost, ecosystem value growing with tenure, the exit
            # fee for the part of the contract period still to run
            purchase_value = pop.basket[i] * off.price[f]
            points_at_stake = pop.points[i] * off.customer_point_value[f] * off.rewards_active[f]
            stamps_at_stake = pop.stamps[i] / off.punch_stamps[f] if off.punch_stamps[f] > 0 else 0.0
            per_year = pop.purchases_per_year[i] * off.demand[f]
            cost = switching_cost(
                points_at_stake, stamps_at_stake,
                off.learning_cost[f], off.ecosystem_per_year[f] * tenure_days / DAYS_PER_YEAR,
                off.exit_fee[f] * contract_remaining(tenure_days, off.contract_days[f]) if off.exit_fee[f] > 0 else 0.0,
                purchase_value, per_year, par.horizon_years, par.psychological_cost,
            )
            switching[k] = cost
            # the rewards at risk (points, punch-card progress): part of the switching cost, but what
            # holds a customer through them is its rewards programme (incentive loyalty, 7.14)
            at_stake[k] = switching_cost(points_at_stake, stamps_at_stake, 0.0, 0.0, 0.0, purchase_value, per_year, par.horizon_years, 0.0)
            # own reward rate: points at the tier's multiplier (net of the breakage this customer
            # expects), punch card, tier and volume discounts, profit share
            t = pop.tier[i]
            points_rate = off.points_rate[f] * off.tier_points[f, t]
            points = 0.0
            if points_rate > 0:
                earned = pop.purchases_per_year[i] * off.demand[f] * purchase_value * points_rate
                points = points_rate * off.customer_point_value[f] * points_value_share(earned, off.redemption_threshold[f], off.expiry_days[f])
            rate = (
                points + off.tier_discount[f, t]
                + off.volume_discount[f, bracket(off.volume_spend, f, pop.annual_spend[i])] + ctx.profit_share_rate[f]
            )
            if off.punch_stamps[f] > 0:
                rate += 1.0 / (off.punch_stamps[f] + 1.0)
            own_rate[k] = rate
            u = utility[k * width:(k + 1) * width]
            spend = pop.purchases_per_year[i] * pop.basket[i]  # units a year at a demand of 1
            former, grudge, former_value = pop.former_firm[i], pop.grudge[i], pop.former_value[i]
            for g in range(n_firms):  # the own firm's entry is replaced below
                if ctx.available[seg, g] and g != f:
                    value = firm_value(pop, off, ctx, i, seg, g)
                    rates[k * n_firms + g] = entry_rate(
                        ctx.entry_rate[g], off.points_entry[g], spend * off.demand[g] * off.price[g],
                        off.points_rate[g], off.redemption_threshold[g], off.expiry_days[g],
                    )
                    u[g] = (
                        value + ctx.promise_term[g] + pop.reward_sensitivity[i] * rates[k * n_firms + g]
                        + par.word_of_mouth_weight * heard[k * n_firms + g] - cost - held_against(former, grudge, former_value, g, value)
                    )
                else:
                    u[g] = NEG_INF
            tolerated = price_tolerance(tenure_days, pop.price_sensitivity[i], ctx.log_price[seg, f], par.max_years, par.price_tolerance)
            stay[k] = stay_utility(
                own_value(pop, off, ctx, par, i, f) + tolerated, pop.experience[i], pop.reward_sensitivity[i], rate,
                par.trust_weight, pop.trust[i], par.attachment_weight, pop.attachment[i],
                par.word_of_mouth_weight, heard[k * n_firms + f],
            )
            u[f] = stay[k] if off.active[f] else NEG_INF
            u[n_firms] = par.outside_value - cost
            # the logit's weights: exponents here, their exponentials below for the whole block
            logit_exponents(u[:n_firms], u[n_firms], par.scale, weight[k * width:(k + 1) * width])
            search[k] = search_yearly(pop.satisfaction_avg[i], ctx.curve_x, ctx.curve_p)
            news = pop.buzz[i, f]
            bad_news[k] = par.referral_rate * news * par.step_years if news < 0 else 0.0  # minus the rate times a step
        fastmath.exp_each(weight, m * width)
        per_step_of_yearly_each(search, m, par.step_years)
        fastmath.exp_each(bad_news, m)  # 1 - this below
        # the draws and the loyalty type
        for k in range(m):
            if not visit[k]:
                continue
            i = person(lo + b0 + k if draw else joined[b0 + k])
            f = pop.firm[i]
            seg = pop.segment[i]
            u = utility[k * width:(k + 1) * width]
            normalise(weight[k * width:(k + 1) * width], probabilities)
            cost = switching[k]
            exit_p = ctx.exit_chance[seg]
            if off.active[f]:
                search_p = search[k] * (1.0 - pop.inertia[i])
                if pop.buzz[i, f] < 0:  # bad news heard about the firm
                    search_p = 1.0 - (1.0 - search_p) * bad_news[k]
            else:
                search_p = 1.0  # a firm that left the market loses everyone
            tolerance = min(min(pop.tenure[i] * par.step_days / DAYS_PER_YEAR, par.max_years) * par.price_tolerance, 1.0)
            searched = False
            if draw and pop.tenure[i] > 0:
                if uniform(key, i, S_EXIT) < exit_p:
                    choice[i] = n_firms + 1
                    reason[i] = LEFT_CATEGORY
                elif uniform(key, i, S_SEARCH) < search_p:
                    searched = True
                    g = pick(probabilities, uniform(key, i, S_SWITCH))
                    if g != f:
                        choice[i] = g
                        price, reward, bond = 0.0, 0.0, 0.0
                        if g < n_firms:
                            price, reward, bond = decompose(
                                pop.price_sensitivity[i], tolerance, ctx.log_price[seg, f], ctx.log_price[seg, g],
                                pop.reward_sensitivity[i], own_rate[k], rates[k * n_firms + g], stay[k], u[g] + cost,
                            )
                        reason[i] = churn_reason(pop.satisfaction_avg[i], par.generally_satisfied, pop.held_by[i], g < n_firms, price, reward, bond)
            # the loyalty type (sim.rules.held_by)
            best, best_utility = -1, NEG_INF  # the first best other firm
            for g in range(n_firms):
                better = g != f and (best < 0 or u[g] > best_utility)
                best = g if better else best
                best_utility = u[g] if better else best_utility
            if best < 0 or not best_utility > NEG_INF:
                held = H_NO_ALTERNATIVE
            else:
                advantage = stay[k] - best_utility
                price, reward, bond = decompose(
                    pop.price_sensitivity[i], tolerance, ctx.log_price[seg, f], ctx.log_price[seg, best],
                    pop.reward_sensitivity[i], own_rate[k], rates[k * n_firms + best], stay[k], best_utility + cost,
                )
                held = held_by(
                    advantage, cost - at_stake[k], price, reward + at_stake[k], bond, searched,
                    pop.trust[i], pop.attachment[i], par.trust_threshold, par.attachment_threshold, pop.held_by[i],
                )
            pop.held_by[i] = held
            pop.switching_cost[i] = cost
            stay_step[k] = (1.0 - exit_p) * (1.0 - search_p * (1.0 - probabilities[f]))
        # the yearly repurchase probability: the chance of staying a step, to the power of a year's steps
        fastmath.power_each(stay_step, par.steps_per_year, m)
        for k in range(m):
            if visit[k]:
                pop.repurchase[person(lo + b0 + k if draw else joined[b0 + k])] = stay_step[k]


@jit
def settle(pop, off, ctx, par, choice, reason, margin, churn, lost, won, lo, hi):
    """Count the step's leavers among ``lo .. hi-1`` per chunk, by reason and firm (``churn``,
    (chunks, reasons, F)), and the moves between firms (``lost``, ``won``, (chunks, F)); those
    who leave the category become prospects, movers join their new firm (:func:`join`) and
    keep it in ``choice`` (everyone else gets STAY) for :func:`decide`. Those who chose to leave
    remember the firm they left (:func:`remember`). A leaver's margin of the step does not count
    toward the value of a relationship it ended."""
    n_firms = lost.shape[1]
    score = first_score(par)
    for p in range(lo, hi):
        i = person(p)
        g = choice[i]
        if g == STAY:
            continue
        f = pop.firm[i]
        c = i // CHUNK
        churn[c, reason[i], f] += 1
        margin[i] = 0.0
        if reason[i] != LEFT_CATEGORY:
            remember(pop, off, ctx, par, i)
        if g < n_firms:
            lost[c, f] += 1
            won[c, g] += 1
            join(pop, off, ctx, par, i, g, score)
        else:
            end_relationship(pop, i)
            choice[i] = STAY


@jit
def age(firm, tenure, value_to_date, margin, grudge, grudge_decay, lo, hi):
    """Everyone of ``lo .. hi-1`` who is a customer at the end of a step adds its margin of
    the step to the value of its relationship, and a step of tenure; grudges fade."""
    for p in range(lo, hi):
        i = person(p)
        if firm[i] >= 0:
            value_to_date[i] += margin[i]
            tenure[i] += 1
        grudge[i] *= np.float32(grudge_decay)


#: Chunks :func:`close` settles before the movers among them get their terms: few enough that
#: the state :func:`join` wrote for them is still in the cache (about 100 movers a stretch),
#: many enough that :func:`decide`'s own set-up is paid rarely.
SETTLE_CHUNKS = 16


@jit
def buy(pop, off, ctx, par, key, reach, choice, acquired, money, margin, ties, said, lo, hi):
    """Phases 2-7 for ``lo .. hi-1``, said: :func:`acquire`, :func:`consume`, :func:`speak` (its conversations returned)."""
    acquire(pop, off, ctx, par, key, reach, choice, acquired, lo, hi)
    consume(pop, off, ctx, par, key, money, margin, lo, hi)
    return speak(pop, off, par, key, ties, said, lo, hi)


@jit
def hear_and_decide(pop, off, ctx, par, key, talked, choice, reason, lo, hi):
    """Phases 7-9 for ``lo .. hi-1``: :func:`listen`, :func:`decide` with draws."""
    listen(pop.buzz, talked, lo, hi)
    decide(pop, off, ctx, par, key, choice, reason, True, lo, hi)


@jit
def close(pop, off, ctx, par, choice, reason, margin, churn, lost, won, levels, window, sums, counts, lo, hi):
    """The end of a step for ``lo .. hi-1``: :func:`settle`, :func:`decide` for those who joined,
    :func:`age`, and the measures' :func:`sim.measures.tally` of the state the step leaves
    (``levels``, ``window``, ``sums`` and ``counts`` as it takes them)."""
    for a in range(lo, hi, SETTLE_CHUNKS * CHUNK):  # movers still in the cache when they get their terms
        b = min(a + SETTLE_CHUNKS * CHUNK, hi)
        settle(pop, off, ctx, par, choice, reason, margin, churn, lost, won, a, b)
        decide(pop, off, ctx, par, np.uint64(0), choice, reason, False, a, b)
    age(pop.firm, pop.tenure, pop.value_to_date, margin, pop.grudge, par.grudge_decay, lo, hi)
    tally(
        pop.firm, pop.tenure, pop.satisfaction, pop.satisfaction_avg, pop.recommend, pop.expectation, pop.perceived_value,
        pop.trust, pop.attachment, pop.switching_cost, pop.held_by, pop.repurchase, pop.member, pop.points,
        levels, window, sums, counts, lo, hi,
    )


#: The passes of a step: each runs several kernels, in order, for one range of customers
#: (one call, so one hand-over to a thread and one conversion of the state tuples, per range).
PASSES = (buy, hear_and_decide, close)


@jit
def orphan(pop, active, closed, lo, hi):
    """Customers among ``lo .. hi-1`` of firms that left the market lose them (churn reason
    ``firm_closed``, counted per chunk in ``closed``, (chunks, F))."""
    for p in range(lo, hi):
        i = person(p)
        f = pop.firm[i]
        if f >= 0 and not active[f]:
            closed[i // CHUNK, f] += 1
            end_relationship(pop, i)


@jit
def own_values(pop, off, ctx, par, idx):
    """Own-firm value (with what tenure adds) and promised value of customers ``idx``."""
    own = np.empty(idx.size)
    promise = np.empty(idx.size)
    for k in range(idx.size):
        i = idx[k]
        f = pop.firm[i]
        own[k] = own_value(pop, off, ctx, par, i, f)
        promise[k] = pop.expectation_level[i] * np.exp(firm_value(pop, off, ctx, i, pop.segment[i], f) + ctx.promise_term[f])
    return own, promise


@jit
def brackets(spend_table, firm, annual_spend):
    """:func:`bracket` (tier or volume bracket) of each customer of ``firm`` with this annual spend."""
    out = np.empty(firm.size, dtype=np.int8)
    for k in range(firm.size):
        out[k] = bracket(spend_table, firm[k], annual_spend[k])
    return out
