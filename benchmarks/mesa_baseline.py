"""The loyalty market written the usual Mesa way: one Python object per customer.

This is the baseline of the performance benchmark (``benchmarks/bench.py``). It plays
the same core rules as the engine in ``sim/`` (described in ``docs/model.md``, whose
section numbers are cited below), but as a Mesa user would write them: a
``Customer(mesa.Agent)`` keeps its state in attributes and applies the rules to itself,
one customer at a time; a ``Firm(mesa.Agent)`` keeps its offer and its books;
``BaselineModel.step`` reads like a schedule and activates the customers with
``shuffle_do``; every draw comes from the model's generator (``self.random``).

Only the scenario and the firms' offers are shared with the engine: the scenario is
read with ``sim.api.load_scenario`` and each firm's offer is taken from
``sim.offers.build_offers`` (prices, indices, rates, demand factors, lever costs:
parameters, not rules). Nothing of ``sim.rules`` or ``sim.model`` is used.

Rules covered (docs/model.md section):

* initialisation with mature relationships and their first classification (5); the
  small-world network by segment (5.4), kept as a list of neighbour agents per customer;
  the run-in of ``market.run_in_days`` before step 0, whose money is then forgotten (7.21);
* perceived value of each firm's offer, its price judged against the segment's reference
  price with loss aversion (7.2, 7.18);
  tenure value: personalisation in the value perceived, price tolerance in the utility of
  staying (7.3); each segment's adaptive reference price (7.18);
* purchases with stock-out, failure and recovery shocks (a failure felt less by a trusting
  customer), category demand at the firm's price, basket growth, falling cost to serve,
  the lever costs and guarantee claims (7.4, 7.19);
* satisfaction c = b / a and its running average (7.5); a new customer's expectation from
  the firm's promise (its offer as advertised, valued by the customer), the segment's
  comparison level, its own standard and word of mouth, then moving toward the value felt,
  the promise, the comparison level and the standard (7.6); trust,
  with failures forgiven in part (7.7); club membership and attachment, which trust builds
  only where the customer is not held by constraint (7.8);
* points (earning with tier multipliers, expiry, redemption), annual spend and tiers
  with their discounts, points valued net of breakage in choices (7.9); switching cost
  from points at stake (7.10);
* likelihood to recommend (swayed by what the customer heard of its firm) and word of
  mouth to neighbours, buzz (7.11);
* category exit, search from the satisfaction curve, inertia and bad news, and the
  logit choice among firms and the outside option with the switching cost (7.12);
* acquisition of prospects: own entry, referrals, marketing reach over all the people a
  firm can serve (7.13);
* the loyalty-type classification (7.14: what holds each customer, the rewards at risk
  counted as rewards; the next step's attachment depends on it);
* grudges against the firm a customer chose to leave, fading, in later choices (7.20);
* the firms' books: revenue, cost of goods, service, rewards, community, acquisition
  and fixed costs (7.15).

Left out, because the reference scenario does not use them: timeline events (and so
price-protection refunds) and firms entering or leaving the market, punch cards,
coalition points, profit sharing, volume discounts, lock-in (learning cost, ecosystem,
contracts and exit fees) and the retention counterfactual. Also left out: churn reasons
(beyond telling a category exit, which leaves no grudge, from a choice to leave), the
repurchase probability and every measure beyond the five below, so the baseline does
less work per step than the engine (the benchmark's ratio flatters the baseline).

Measures, per step and firm (``BaselineModel.metrics_frame``): customers, retention
rate, mean running satisfaction ``satisfaction_avg_mean`` and profit, plus revenue
(each ``Firm`` also keeps the step's cost accounts as attributes).

Scheduling. The engine applies each phase to all customers at once. Here a step opens
with the market's terms of the step (``BaselineModel.open_step``: reference prices, the
segments' comparison levels, the firms' customer counts and marketing reach),
then has two passes over the customers in random order: ``shop`` (prospects may enter and
choose; customers buy, feel, earn rewards and join the club; what everyone heard before
fades; customers talk to their neighbours)
and ``decide`` (each hears what was said to it in this step, then the settled customers
reconsider their firm, and every customer is classified as if it stays). Conversations
land in the listener's inbox (``heard``) and are taken in during ``decide``, so, as in the
engine, everyone decides on what was said by everyone in the step.
"""

from __future__ import annotations

import math

import mesa

from sim.offers import build_offers
from sim.population import TRAITS  # (segment key, attribute name) of each per-customer trait
from sim.scenario import TRAIT_RANGES, Scenario, Trait

DAYS_PER_YEAR = 365.0

#: What holds a customer who stays with its firm (7.14); the ladder's terms, shallowest first.
LADDER = ("switching_cost", "price", "rewards", "trust")
#: Relationships kept by constraint, in which trust builds no attachment (7.8).
CONSTRAINED = ("no_alternative", "switching_cost")


def per_step(rate_per_year: float, step_years: float) -> float:
    """Chance that an event with a constant yearly rate happens within one step."""
    return -math.expm1(-rate_per_year * step_years)


def interpolate(x: float, curve: list[list[float]]) -> float:
    """Piecewise-linear curve through the points ``curve``, flat beyond its ends."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


def points_kept(earned_per_year: float, threshold: float, expiry_days: float) -> float:
    """Share of its points a customer earning ``earned_per_year`` expects to redeem rather than
    lose to expiry while its balance builds up to the redemption threshold (7.9)."""
    if earned_per_year <= 0.0:
        return 0.0
    if math.isinf(expiry_days):
        return 1.0
    x = threshold / earned_per_year / (expiry_days / DAYS_PER_YEAR)
    return 1.0 if x < 1e-9 else -math.expm1(-x) / x


def held_by(advantage: float, terms: tuple[float, float, float, float], searched: bool, trusting: bool, before: str) -> str:
    """What holds a customer with an alternative (7.14): the first pivotal term of the ladder
    (switching cost, price, rewards, bond), else the largest; held by the bond, it is ``trust``
    when ``trusting`` (trust and attachment high enough), else ``value``. With no advantage:
    ``none`` if it searched; else ``not_looking``, or ``rewards_lost`` if its rewards held it
    ``before``."""
    if not advantage > 0:
        if searched:
            return "none"
        return "rewards_lost" if before in ("rewards", "rewards_lost") else "not_looking"
    pivotal, largest_k = -1, 0
    for k, term in enumerate(terms):
        if pivotal < 0 and term > 0 and advantage - term <= 0:
            pivotal = k
        if term > terms[largest_k]:
            largest_k = k
    k = pivotal if pivotal >= 0 else largest_k
    if k == 3:
        return "trust" if trusting else "value"
    return LADDER[k]


class Options:
    """A customer's decision terms at its firm (7.10, 7.12): the utility of staying, of each
    firm (its own is the utility of staying; -inf where it cannot buy) and of buying from no
    firm, with the switching cost and the reward rates they contain."""

    __slots__ = ("stay", "utilities", "outside", "switching", "at_risk", "own_rate", "entry_rates")

    def __init__(self, stay, utilities, outside, switching, at_risk, own_rate, entry_rates):
        self.stay, self.utilities, self.outside = stay, utilities, outside
        self.switching, self.at_risk = switching, at_risk  # the switching cost, and the rewards at risk in it
        self.own_rate, self.entry_rates = own_rate, entry_rates


class Firm(mesa.Agent):
    """A firm: its offer (published at the start of a step), its books and its measures."""

    def __init__(self, model: BaselineModel, name: str, index: int):
        super().__init__(model)
        self.name = name
        self.index = index
        self.log_price: list[float] = []  # log(price / reference price) of each segment, losses weighted (7.18)
        self.reach = 0.0
        self.start_customers = 0
        self.forget_books()

    def forget_books(self) -> None:
        """No money and full retention: the measures before any step (and after the run-in)."""
        self.customers = 0
        self.retention_rate = 1.0
        self.satisfaction_avg_mean = 0.0
        self.revenue = self.cost_of_goods = self.service_cost = self.reward_cost = 0.0
        self.community_cost = self.acquisition_cost = self.fixed_cost = self.profit = 0.0

    def publish_offer(self, offers, segments) -> None:
        """Take this firm's column of the offers table as plain attributes."""
        f = self.index
        self.active = bool(offers.active[f])
        self.serves = [bool(offers.serves[s, f]) for s in range(len(segments))]
        self.price = float(offers.price[f])
        self.demand = float(offers.demand[f])
        self.log_quality = float(offers.log_quality[f])
        self.log_service = float(offers.log_service[f])
        self.log_promise = float(offers.log_promise[f])
        # image, convenience and risk terms, which are the same for everyone in a segment
        self.segment_value = [
            seg.image_weight * float(offers.log_brand[f])
            - seg.convenience_weight * 0.5 * float(offers.log_time_cost[f] + offers.log_effort_cost[f])
            - seg.risk_weight * float(offers.log_risk_cost[f])
            for seg in segments
        ]
        self.personalisation = float(offers.personalisation[f])
        self.personalisation_days = float(offers.personalisation_days[f])
        self.availability = float(offers.availability[f])
        self.failure_rate = float(offers.failure_rate[f])
        self.recovery_rate = float(offers.recovery_rate[f])
        self.log_failure_penalty = float(offers.log_failure_penalty[f])
        self.log_recovery_boost = float(offers.log_recovery_boost[f])
        self.recovery_cost = float(offers.recovery_cost[f])
        self.cost_per_purchase = float(offers.cost_per_purchase[f])
        self.lever_cost_per_purchase = float(offers.lever_cost_per_purchase[f])
        self.lever_cost_per_year = float(offers.lever_cost_per_year[f])
        self.guarantee_claim = float(offers.guarantee_claim[f])
        self.unit_cost = float(offers.unit_cost[f])
        self.fixed_per_year = float(offers.fixed_per_year[f])
        self.rewards_active = bool(offers.rewards_active[f])
        self.points_rate = float(offers.points_rate[f])
        self.point_value = float(offers.point_value[f])
        self.customer_point_value = float(offers.customer_point_value[f])
        self.redemption_threshold = float(offers.redemption_threshold[f])
        self.expiry_days = float(offers.expiry_days[f])
        self.tier_spend = [float(x) for x in offers.tier_spend[f]]
        self.tier_discount = [float(x) for x in offers.tier_discount[f]]
        self.tier_points = [float(x) for x in offers.tier_points[f]]
        self.entry_reward_rate = float(offers.entry_reward_rate[f])
        self.points_entry = float(offers.points_entry[f])  # the points' part of it, at face value
        self.community = bool(offers.community[f])
        self.join_per_year = float(offers.join_per_year[f])
        self.community_intensity = float(offers.community_intensity[f])
        self.attachment_per_year = float(offers.attachment_per_year[f])
        self.word_of_mouth_boost = float(offers.word_of_mouth_boost[f])
        self.member_cost_per_year = float(offers.member_cost_per_year[f])
        self.events_cost_per_year = float(offers.events_cost_per_year[f])
        self.marketing_per_year = float(offers.marketing_per_year[f])
        self.cost_per_contact = float(offers.cost_per_contact[f])
        self.response_rate = float(offers.response_rate[f])
        self.awareness_bonus = float(offers.awareness_bonus[f])

    # -- what customers ask of a firm

    def can_serve(self, customer: Customer) -> bool:
        return self.active and self.serves[customer.segment_index]

    def tier_of(self, annual_spend: float) -> int:
        """The highest tier whose minimum annual spend is reached (0 = no tier)."""
        return sum(1 for spend in self.tier_spend if annual_spend >= spend) - 1

    def promised_to(self, customer: Customer) -> float:
        """What the firm leads ``customer`` to expect: its offer as advertised (the believed
        part of its promise), valued by the customer, times its demandingness (7.6)."""
        credibility = self.model.behaviour.expectation.promise_credibility
        return customer.expectation_level * math.exp(customer.value_of(self) + credibility * self.log_promise)

    # -- the firm's own step

    def open_step(self, customers: list[Customer], people_served: int) -> None:
        """Start of a step: count the customers, and set the chance that the firm's marketing
        reaches a prospect it can serve and the prospect responds (its contacts land at random
        on all the ``people_served``, customers or not; 7.13)."""
        self.start_customers = len(customers)
        self.reach = 0.0
        if self.active and self.marketing_per_year > 0 and people_served > 0:
            contacts = self.marketing_per_year * self.model.step_years / self.cost_per_contact
            if contacts > 0:
                self.reach = -math.expm1(-contacts / people_served) * self.response_rate

    def close_books(self, buyers: list[Customer]) -> None:
        """Book the step's money from the customers who bought from the firm in this step
        (the club's members among them as they were after the club phase, leavers included),
        and count those of them who left (7.15)."""
        years = self.model.step_years
        self.revenue = sum(c.gross for c in buyers)
        self.cost_of_goods = sum(c.cost_of_goods for c in buyers)
        self.service_cost = sum(c.service_cost for c in buyers)
        self.reward_cost = sum(c.reward_cost for c in buyers)
        members = sum(1 for c in buyers if c.club_member)
        on = 1.0 if self.active else 0.0
        self.community_cost = on * (members * self.member_cost_per_year * years + self.events_cost_per_year * years)
        self.acquisition_cost = on * self.marketing_per_year * years
        self.fixed_cost = on * self.fixed_per_year * years
        self.profit = self.revenue - (
            self.cost_of_goods + self.service_cost + self.reward_cost + self.community_cost + self.acquisition_cost + self.fixed_cost
        )
        churned = sum(1 for c in buyers if c.firm is not self)
        self.retention_rate = 1.0 - churned / self.start_customers if self.start_customers else 1.0

    def take_stock(self, customers: list[Customer]) -> None:
        """End of a step: the firm's customers and their mean running satisfaction."""
        self.customers = len(customers)
        self.satisfaction_avg_mean = sum(c.satisfaction_avg for c in customers) / len(customers) if customers else 0.0


class Customer(mesa.Agent):
    """A person: a customer of one firm, or a prospect (``firm is None``)."""

    def __init__(self, model: BaselineModel, segment_index: int):
        super().__init__(model)
        segment = model.spec.segments[segment_index]
        self.segment_index = segment_index
        self.segment = segment
        for key, attribute in TRAITS:
            setattr(self, attribute, self.draw_trait(getattr(segment, key), key))
        self.friends: list[Customer] = []  # whom it talks to (set when the network is built)
        # relationship state
        self.firm: Firm | None = None
        self.tenure = 0  # steps with the current firm
        self.expectation = self.expectation_level
        self.perceived_value = 1.0
        self.satisfaction = 1.0
        self.satisfaction_avg = 1.0
        self.experience = 0.0
        self.trust = 0.0
        self.attachment = 0.0
        self.points = 0.0
        self.annual_spend = 0.0
        self.tier = 0
        self.member = False
        self.recommend = 0
        self.held_by = "none"  # what held it at its last classification (7.14)
        # memory of the firm it last chose to leave (7.20)
        self.former_firm: Firm | None = None
        self.grudge = 0.0
        self.former_value = 0.0
        n_firms = len(model.firms)
        self.buzz = [0.0] * n_firms  # net word of mouth heard about each firm, fading
        self.heard = [0] * n_firms  # what was said to it in this step (its inbox)
        # this step's purchase
        self.bought_from: Firm | None = None
        self.club_member = False  # a member of its firm's club after this step's purchases (counted in the books)
        self.gross = self.discount = self.cost_of_goods = self.service_cost = self.reward_cost = 0.0

    def draw_trait(self, value: float | Trait, key: str) -> float:
        lo, hi = TRAIT_RANGES[key]
        if isinstance(value, Trait):
            value = self.random.gauss(value.mean, value.sd) if value.sd > 0 else value.mean
        return min(max(value, lo), hi)

    # -- what the customer thinks of firms

    def value_of(self, firm: Firm) -> float:
        """Log perceived value of ``firm``'s standard offer, its price judged against the
        segment's reference price (7.2)."""
        return (
            self.quality_sensitivity * firm.log_quality
            + self.service_sensitivity * firm.log_service
            - self.price_sensitivity * firm.log_price[self.segment_index]
            + firm.segment_value[self.segment_index]
        )

    def tenure_value(self, firm: Firm) -> float:
        """Extra value of its own firm through tenure: the fit personalisation gives (7.3)."""
        if firm.personalisation <= 0:
            return 0.0
        days = self.tenure * self.model.step_days
        return self.quality_sensitivity * math.log1p(firm.personalisation * min(days / firm.personalisation_days, 1.0))

    def own_value(self) -> float:
        """Log value of its own firm's offer as it perceives it, with what tenure adds (7.3)."""
        return self.value_of(self.firm) + self.tenure_value(self.firm)

    def price_tolerance(self) -> float:
        """Share of the price term of staying that its tenure gives back (7.3): a loyalty effect
        in the utility of staying, not in the value it perceives."""
        economics = self.model.spec.market.loyalty_economics
        years = self.tenure * self.model.step_days / DAYS_PER_YEAR
        return min(min(years, economics.max_years) * economics.price_tolerance_per_year, 1.0)

    def recommend_score(self) -> int:
        """Likelihood to recommend, 0-10, swayed by what it heard others say of its firm (7.11)."""
        nps = self.model.behaviour.nps
        heard = math.tanh(self.buzz[self.firm.index]) if self.firm is not None else 0.0
        z = (
            nps.satisfaction_weight * math.log(max(self.satisfaction_avg, 1e-6))
            + nps.trust_weight * (self.trust - 0.5)
            + nps.attachment_weight * self.attachment
            + nps.offset
            + nps.word_of_mouth_weight * heard
        )
        return math.floor(10.0 / (1.0 + math.exp(-z)) + 0.5)

    def yearly_spend_at(self, firm: Firm) -> float:
        """What it would spend a year at ``firm``: its purchases at the firm's price and category demand."""
        return self.purchases_per_year * firm.demand * self.basket * firm.price

    def rewards_at_risk(self) -> float:
        """The points at stake over the decision horizon's spend: the part of the switching cost
        that its rewards programme holds (7.10, 7.14)."""
        firm, choice = self.firm, self.model.behaviour.choice
        money = self.points * firm.customer_point_value if firm.rewards_active else 0.0
        horizon_spend = self.yearly_spend_at(firm) * choice.decision_horizon_days / DAYS_PER_YEAR
        return money / max(horizon_spend, 1e-9)

    def switching_cost(self) -> float:
        """Utility given up by leaving the firm: the rewards at risk and a psychological cost (7.10)."""
        return self.rewards_at_risk() + self.model.behaviour.choice.psychological_cost

    def own_reward_rate(self) -> float:
        """Reward value per unit of spend from its own firm: points at its tier's multiplier,
        net of the breakage it expects, and the tier discount (7.9)."""
        firm = self.firm
        rate = firm.points_rate * firm.tier_points[self.tier]
        points = 0.0
        if rate > 0:
            kept = points_kept(self.yearly_spend_at(firm) * rate, firm.redemption_threshold, firm.expiry_days)
            points = rate * firm.customer_point_value * kept
        return points + firm.tier_discount[self.tier]

    def entry_reward_rate(self, firm: Firm) -> float:
        """Reward value per unit of spend it expects as a new customer of ``firm``, the points
        valued net of the breakage it would suffer there (7.9)."""
        rate = firm.entry_reward_rate
        if firm.points_entry > 0:
            kept = points_kept(self.yearly_spend_at(firm) * firm.points_rate, firm.redemption_threshold, firm.expiry_days)
            rate -= firm.points_entry * (1.0 - kept)
        return rate

    def grudge_against(self, firm: Firm, value: float) -> float:
        """What it still holds against ``firm``, whose offer is now worth ``value`` to it: its
        grudge less what the offer has improved since it left (7.20)."""
        if firm is not self.former_firm or self.grudge <= 0.0:
            return 0.0
        return max(self.grudge - max(value - self.former_value, 0.0), 0.0)

    def choose(self, utilities: list[float], outside: float):
        """Index of the option chosen by the logit rule (the last one is buying from no firm)."""
        scale = self.model.behaviour.choice.scale
        options = [*utilities, outside]
        top = max(options)
        weights = [math.exp((u - top) / scale) for u in options]
        u = self.random.random() * sum(weights)
        cumulative = 0.0
        for k, w in enumerate(weights):
            cumulative += w
            if u < cumulative:
                return k
        return len(options) - 1

    # -- starting and ending a relationship

    def start_relationship(self, firm: Firm) -> None:
        """Become a customer of ``firm``, expecting what it has to go on before any experience
        of the firm: its promise, what the market's firms deliver to its segment and its own
        standard, averaged in logs with the weights of their rates, and what it heard (7.6, 7.13)."""
        b = self.model.behaviour
        e = b.expectation
        self.firm = firm
        self.tenure = 0
        anchors = e.promise_rate + e.market_rate + e.standard_rate
        w_p, w_m = (e.promise_rate / anchors, e.market_rate / anchors) if anchors > 0 else (1.0, 0.0)
        promised = self.value_of(firm) + e.promise_credibility * firm.log_promise
        expected = w_p * promised + w_m * math.log(self.model.norm[self.segment_index])  # the standard's log is 0
        heard = e.word_of_mouth_effect * math.tanh(self.buzz[firm.index])
        self.expectation = self.expectation_level * math.exp(expected + heard)
        self.perceived_value = self.expectation
        self.satisfaction = self.satisfaction_avg = 1.0
        self.experience = 0.0
        self.trust = b.trust.initial
        self.attachment = 0.0
        self.points = 0.0
        self.annual_spend = 0.0
        self.tier = firm.tier_of(0.0)
        self.member = False
        self.held_by = "none"
        self.recommend = self.recommend_score()

    def end_relationship(self) -> None:
        self.firm = None
        self.tenure = 0
        self.member = False
        self.points = 0.0
        self.tier = 0
        self.held_by = "none"
        self.recommend = 0

    def remember(self) -> None:
        """It chose to leave its firm: it remembers the firm, a grudge from how dissatisfied it
        left, and what the firm's offer was worth to it then (7.20)."""
        self.former_firm = self.firm
        self.grudge = self.model.behaviour.memory.grudge_weight * max(-math.log(max(self.satisfaction_avg, 1e-6)), 0.0)
        self.former_value = self.value_of(self.firm)

    def mature(self, firm: Firm) -> None:
        """Give an initial customer the state of a relationship that has run for a while (5.6-5.7)."""
        model, b = self.model, self.model.behaviour
        mean_steps = model.spec.market.initial_tenure_days / model.step_days
        p = 1.0 / max(mean_steps, 1.0)
        u = self.random.random()
        self.tenure = 1 if p >= 1 else 1 + int(math.log(1.0 - u) / math.log(1.0 - p))
        years = self.tenure * model.step_days / DAYS_PER_YEAR
        self.trust = 1.0 - (1.0 - b.trust.initial) * math.exp(-0.5 * b.trust.gain_per_year * years)
        drive = b.attachment.trust_gain_per_year * self.trust
        rate = drive + b.attachment.decay_per_year
        self.attachment = drive / (rate + 1e-12) * -math.expm1(-rate * years)
        self.perceived_value = math.exp(self.own_value())
        # the fixed point of the expectation update, without noise
        e, level = b.expectation, self.expectation_level
        anchors = (
            e.experience_rate * self.perceived_value + e.promise_rate * firm.promised_to(self)
            + e.market_rate * level * model.norm[self.segment_index] + e.standard_rate * level
        )
        weights = e.experience_rate + e.promise_rate + e.market_rate + e.standard_rate
        self.expectation = anchors / weights if weights > 0 else firm.promised_to(self)
        self.satisfaction = self.satisfaction_avg = self.perceived_value / self.expectation
        self.annual_spend = self.purchases_per_year * self.basket * firm.price * -math.expm1(-years)
        self.tier = firm.tier_of(self.annual_spend)
        self.points = self.random.random() * firm.redemption_threshold if firm.rewards_active else 0.0
        joined = -math.expm1(-firm.join_per_year * self.community_propensity * years)
        self.member = firm.community and self.random.random() < joined
        self.recommend = self.recommend_score()

    # -- the customer's step, first pass

    def shop(self) -> None:
        """Prospects may enter the market; customers buy, feel, earn and take part; what it heard
        before fades; customers talk."""
        self.bought_from, self.club_member = None, False
        if self.firm is None:
            self.look_for_a_firm()
        if self.firm is not None:
            self.buy()
            self.collect_rewards()
            self.take_part_in_club()
        decay = self.model.buzz_decay
        self.buzz = [x * decay for x in self.buzz]
        if self.firm is not None:
            self.talk()

    def look_for_a_firm(self) -> None:
        """A prospect starts shopping on its own, after good news, or reached by marketing,
        and then chooses a firm or none (7.13)."""
        model, b, rnd = self.model, self.model.behaviour, self.random
        good_news = sum(max(x, 0.0) for x in self.buzz)
        entry = self.segment.category_entry_per_year + b.word_of_mouth.referral_rate * good_news
        shopping = rnd.random() < per_step(entry, model.step_years)
        aware = [firm.reach > 0 and firm.can_serve(self) and rnd.random() < firm.reach for firm in model.firms]
        if not (shopping or any(aware)):
            return
        credibility, word = b.expectation.promise_credibility, b.choice.word_of_mouth_weight
        utilities = []
        for firm in model.firms:
            if not firm.can_serve(self):
                utilities.append(-math.inf)
                continue
            value = self.value_of(firm)
            utilities.append(
                value
                + credibility * firm.log_promise
                + self.reward_sensitivity * self.entry_reward_rate(firm)
                + word * math.tanh(self.buzz[firm.index])
                + (firm.awareness_bonus if aware[firm.index] else 0.0)
                - self.grudge_against(firm, value)
            )
        k = self.choose(utilities, b.choice.outside_value)
        if k < len(model.firms):
            self.start_relationship(model.firms[k])

    def buy(self) -> None:
        """This step's purchases, and how they felt (7.4-7.7, 7.19)."""
        firm, model, b, rnd = self.firm, self.model, self.model.behaviour, self.random
        economics = model.spec.market.loyalty_economics
        self.bought_from = firm
        # what happened: a stock-out, a service failure, its recovery
        stockout = rnd.random() >= firm.availability
        failure = rnd.random() < firm.failure_rate
        recovered = failure and not stockout and rnd.random() < firm.recovery_rate
        unrecovered = stockout or (failure and not recovered)
        felt = 1.0 - b.trust.forgiveness * min(max(self.trust, 0.0), 1.0)  # trust forgives part of a failure
        noise = b.satisfaction.experience_noise
        shock = rnd.gauss(0.0, noise) if noise > 0 else 0.0
        if unrecovered:
            shock += felt * firm.log_failure_penalty
        elif recovered:
            shock += firm.log_recovery_boost
        # the money
        years_in = min(self.tenure * model.step_days / DAYS_PER_YEAR, economics.max_years)
        occasions = 0.0 if stockout else self.purchases_per_year * model.step_years * firm.demand
        units = occasions * self.basket * (1.0 + economics.basket_growth_per_year * years_in)
        self.gross = units * firm.price
        self.discount = self.gross * firm.tier_discount[self.tier]
        self.cost_of_goods = units * firm.unit_cost
        base = firm.cost_per_purchase * max(1.0 - economics.serve_cost_decline_per_year * years_in, 0.0)
        per_occasion = base + firm.lever_cost_per_purchase
        self.service_cost = occasions * max(per_occasion, 0.0) + firm.lever_cost_per_year * model.step_years
        if recovered:
            self.service_cost += firm.recovery_cost
        if unrecovered:
            self.service_cost += firm.guarantee_claim * self.gross
        # perceived value b, satisfaction c = b / a, and what the customer learns
        self.perceived_value = math.exp(self.own_value() + shock)
        self.satisfaction = self.perceived_value / self.expectation
        w = model.satisfaction_weight
        self.satisfaction_avg += w * (self.satisfaction - self.satisfaction_avg)
        self.experience += w * (shock - self.experience)
        self.update_expectation()
        self.update_trust(unrecovered, felt)

    def update_expectation(self) -> None:
        """a moves toward the value felt, the firm's promise, the segment's comparison level
        and the customer's own standard (7.6)."""
        model, level = self.model, self.expectation_level
        a = self.expectation
        self.expectation = (
            a
            + model.experience_weight * (self.perceived_value - a)
            + model.promise_weight * (self.firm.promised_to(self) - a)
            + model.market_weight * (level * model.norm[self.segment_index] - a)
            + model.standard_weight * (level - a)
        )

    def update_trust(self, failed: bool, felt: float) -> None:
        """Trust grows while expectations are met, decays while not, and drops at a failure by
        the share of it the customer feels (7.7)."""
        rules, model = self.model.behaviour.trust, self.model
        if self.satisfaction >= rules.met_threshold:
            trust = self.trust + model.trust_gain * (1.0 - self.trust)
        else:
            trust = self.trust * (1.0 - model.trust_loss)
        if failed:
            trust *= 1.0 - rules.failure_loss * felt
        self.trust = min(max(trust, 0.0), 1.0)

    def collect_rewards(self) -> None:
        """Points earned, faded and redeemed; annual spend and tier (7.9)."""
        firm, model = self.firm, self.model
        spend = self.gross - self.discount
        earned = spend * firm.points_rate * firm.tier_points[self.tier]
        points = self.points * math.exp(-model.step_days / firm.expiry_days) + earned
        threshold = firm.redemption_threshold
        redeemed = math.floor(points / threshold) * threshold if firm.rewards_active else points
        self.points = points - redeemed
        self.reward_cost = self.discount + redeemed * firm.point_value
        self.annual_spend = self.annual_spend * model.spend_decay + spend * model.spend_weight
        self.tier = firm.tier_of(self.annual_spend)

    def take_part_in_club(self) -> None:
        """Join the firm's club when inclined; members' attachment is driven by club life, and
        trust builds attachment unless the customer was last held by constraint (7.8)."""
        firm, model = self.firm, self.model
        joins = self.random.random() < per_step(firm.join_per_year * self.community_propensity, model.step_years)
        self.member = self.club_member = firm.community and (self.member or joins)
        drive = firm.attachment_per_year * firm.community_intensity if self.member else 0.0
        rules = model.behaviour.attachment
        bonded = 0.0 if self.held_by in CONSTRAINED else rules.trust_gain_per_year
        growth = (bonded * self.trust + drive) * (1.0 - self.attachment) - rules.decay_per_year * self.attachment
        self.attachment = min(max(self.attachment + growth * model.step_years, 0.0), 1.0)

    def talk(self) -> None:
        """Promoters tell their neighbours good things about their firm, detractors bad things (7.11)."""
        wom, years = self.model.behaviour.word_of_mouth, self.model.step_years
        self.recommend = self.recommend_score()
        if self.recommend >= 9:
            rate, sign = wom.positive_reach_per_year * years * (1.0 + self.firm.word_of_mouth_boost * self.member), 1
        elif self.recommend <= 6:
            rate, sign = wom.negative_reach_per_year * years, -1
        else:
            return
        if not self.friends:
            return
        about = self.firm.index
        for _ in range(self.poisson(rate)):
            self.random.choice(self.friends).heard[about] += sign

    def poisson(self, rate: float) -> int:
        """A Poisson draw (Knuth's method: fine for the small rates of conversations per step)."""
        limit, k, p = math.exp(-rate), 0, self.random.random()
        while p > limit:
            k += 1
            p *= self.random.random()
        return k

    # -- the customer's step, second pass

    def decide(self) -> None:
        """Take in what was heard; settled customers reconsider their firm; every customer is
        classified as if it stays (movers at their new firm); tenure grows, grudges fade."""
        self.listen()
        if self.firm is not None:
            firm, options = self.firm, self.weigh_options()
            # customers acquired in this step do not re-evaluate yet
            searched = self.reconsider(options) if self.tenure > 0 else False
            if self.firm is firm:
                self.classify(options, searched)
            elif self.firm is not None:  # a mover, at its new firm
                self.classify(self.weigh_options(), False)
        if self.firm is not None:
            self.tenure += 1
        self.grudge *= self.model.grudge_decay

    def listen(self) -> None:
        """Buzz takes in this step's conversations (7.11)."""
        self.buzz = [x + h for x, h in zip(self.buzz, self.heard)]
        self.heard = [0] * len(self.heard)

    def weigh_options(self) -> Options:
        """The utilities of staying (with the price tolerance its tenure brings), of every other
        firm it can buy from (less the switching cost and any grudge) and of buying from no firm
        (7.3, 7.10, 7.12, 7.20)."""
        model, b, firm = self.model, self.model.behaviour, self.firm
        at_risk = self.rewards_at_risk()
        switching = at_risk + b.choice.psychological_cost
        own_rate = self.own_reward_rate()
        credibility, word = b.expectation.promise_credibility, b.choice.word_of_mouth_weight
        utilities, entry_rates = [], []
        for other in model.firms:
            if other is firm or not other.can_serve(self):
                utilities.append(-math.inf)
                entry_rates.append(0.0)
                continue
            value = self.value_of(other)
            rate = self.entry_reward_rate(other)
            utilities.append(
                value
                + credibility * other.log_promise
                + self.reward_sensitivity * rate
                + word * math.tanh(self.buzz[other.index])
                - switching
                - self.grudge_against(other, value)
            )
            entry_rates.append(rate)
        tolerated = self.price_sensitivity * self.price_tolerance() * firm.log_price[self.segment_index]
        stay = (
            self.own_value()
            + tolerated
            + self.experience
            + self.reward_sensitivity * own_rate
            + b.choice.trust_weight * self.trust
            + b.choice.attachment_weight * self.attachment
            + word * math.tanh(self.buzz[firm.index])
        )
        utilities[firm.index] = stay if firm.active else -math.inf
        return Options(stay, utilities, b.choice.outside_value - switching, switching, at_risk, own_rate, entry_rates)

    def reconsider(self, options: Options) -> bool:
        """Leave the category, or look around (satisfaction curve, inertia, bad news) and
        choose (7.12); a customer who chooses to leave remembers its firm (7.20). Returns
        whether it looked around."""
        model, b, rnd, firm = self.model, self.model.behaviour, self.random, self.firm
        if rnd.random() < per_step(self.segment.category_exit_per_year, model.step_years):
            self.end_relationship()  # for reasons no firm controls: no grudge
            return False
        if firm.active:
            yearly = interpolate(self.satisfaction_avg, b.search.curve)
            search = (1.0 - (1.0 - yearly) ** model.step_years) * (1.0 - self.inertia)
            bad_news = max(-self.buzz[firm.index], 0.0)
            search = 1.0 - (1.0 - search) * (1.0 - per_step(b.word_of_mouth.referral_rate * bad_news, model.step_years))
        else:
            search = 1.0
        if rnd.random() >= search:
            return False
        k = self.choose(options.utilities, options.outside)
        if k == len(model.firms):
            self.remember()
            self.end_relationship()
        elif model.firms[k] is not firm:
            self.remember()
            self.start_relationship(model.firms[k])
        return True

    def classify(self, options: Options, searched: bool) -> None:
        """What holds it to its firm, from the advantage of staying over the best other firm
        split into switching cost, price, rewards and the bond; the rewards at risk count as
        rewards, not as switching cost (7.14)."""
        firm, utilities = self.firm, options.utilities
        best = None
        for other in self.model.firms:
            if other is not firm and (best is None or utilities[other.index] > utilities[best.index]):
                best = other
        if best is None or utilities[best.index] == -math.inf:
            self.held_by = "no_alternative"
            return
        best_utility = utilities[best.index]
        advantage = options.stay - best_utility
        seg, ps = self.segment_index, self.price_sensitivity
        price = -ps * (1.0 - self.price_tolerance()) * firm.log_price[seg] + ps * best.log_price[seg]
        rewards = self.reward_sensitivity * (options.own_rate - options.entry_rates[best.index])
        bond = options.stay - (best_utility + options.switching) - price - rewards
        loyalty = self.model.behaviour.loyalty
        trusting = self.trust >= loyalty.trust_threshold and self.attachment >= loyalty.attachment_threshold
        terms = (options.switching - options.at_risk, price, rewards + options.at_risk, bond)
        self.held_by = held_by(advantage, terms, searched, trusting, self.held_by)


# --------------------------------------------------------------------------- measures


def firm_customers(firm: Firm) -> int:
    return firm.customers


def firm_retention_rate(firm: Firm) -> float:
    return firm.retention_rate


def firm_satisfaction(firm: Firm) -> float:
    return firm.satisfaction_avg_mean


def firm_profit(firm: Firm) -> float:
    return firm.profit


def firm_revenue(firm: Firm) -> float:
    return firm.revenue


FIRM_REPORTERS = {
    "customers": firm_customers,
    "retention_rate": firm_retention_rate,
    "satisfaction_avg_mean": firm_satisfaction,
    "profit": firm_profit,
    "revenue": firm_revenue,
}


class BaselineModel(mesa.Model):
    """The market of the scenario, with one agent per customer."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None):
        seed = scenario.market.seed if seed is None else seed
        super().__init__(rng=seed)
        self.seed = seed
        self.spec = scenario
        self.behaviour = scenario.behaviour
        self.n_steps = scenario.market.steps
        self.set_step_rates()
        market = scenario.market
        active = [f.price.list * (1 - f.price.discount) for f in scenario.firms.values() if f.active]
        self.fair_price = market.reference_price or (sum(active) / len(active) if active else 10.0)
        n_segments = len(scenario.segments)
        self.price_level = [self.fair_price] * n_segments  # the adaptive part of each segment's reference price (7.18)
        self.norm = [1.0] * n_segments  # each segment's comparison level, at demandingness 1 (7.6)
        self.firms = [Firm(self, name, i) for i, name in enumerate(scenario.firms)]
        self.segment_customers = [[0] * len(self.firms) for _ in range(n_segments)]  # at the last opening
        offers = build_offers(scenario, 0, self.fair_price)
        for firm in self.firms:
            firm.publish_offer(offers, scenario.segments)
        people = self.create_customers()
        self.build_network(people)
        self.hand_out_initial_customers(people)
        self.run_in(round(market.run_in_days / market.step_days))
        self.datacollector = mesa.DataCollector(agenttype_reporters={Firm: FIRM_REPORTERS})
        self.record()

    def set_step_rates(self) -> None:
        """Yearly rates turned into per-step weights (docs/model.md, table at the top)."""
        b, days = self.behaviour, self.spec.market.step_days
        self.step_days = days
        self.step_years = years = days / DAYS_PER_YEAR
        self.satisfaction_weight = -math.expm1(-days / b.satisfaction.memory_days)
        self.experience_weight = per_step(b.expectation.experience_rate, years)
        self.promise_weight = per_step(b.expectation.promise_rate, years)
        self.market_weight = per_step(b.expectation.market_rate, years)
        self.standard_weight = per_step(b.expectation.standard_rate, years)
        self.reference_weight = per_step(b.reference_price.adaptation_per_year, years)
        self.grudge_decay = math.exp(-days / b.memory.memory_days)
        self.trust_gain = per_step(b.trust.gain_per_year, years)
        self.trust_loss = per_step(b.trust.loss_per_year, years)
        self.spend_decay = math.exp(-years)
        self.spend_weight = -math.expm1(-years) / years
        self.buzz_decay = math.exp(-days / b.word_of_mouth.memory_days)

    def create_customers(self) -> list[Customer]:
        """Everyone starts as a prospect; segments in proportion to their shares (largest remainders)."""
        n = self.spec.market.population
        shares = [s.share * n for s in self.spec.segments]
        counts = [math.floor(x) for x in shares]
        by_remainder = sorted(range(len(counts)), key=lambda k: -(shares[k] - counts[k]))
        for k in by_remainder[: n - sum(counts)]:
            counts[k] += 1
        self.segment_sizes = counts
        labels = [k for k, count in enumerate(counts) for _ in range(count)]
        self.random.shuffle(labels)
        return [Customer(self, k) for k in labels]

    def build_network(self, people: list[Customer]) -> None:
        """Small world with homophily: on a ring ordered by segment, each person's ties are the
        people at offsets +1, -1, +2, -2, ...; each tie is rewired to a random other person."""
        network = self.spec.market.network
        n = len(people)
        degree = min(round(network.mean_degree), max(n - 1, 0))
        ring = sorted(people, key=lambda c: c.segment_index)  # people are in random order already
        offsets = [(k // 2 + 1) * (1 if k % 2 == 0 else -1) for k in range(degree)]
        for position, person in enumerate(ring):
            for offset in offsets:
                if self.random.random() < network.rewiring:
                    friend = self.random.choice(people)
                    while friend is person:
                        friend = self.random.choice(people)
                else:
                    friend = ring[(position + offset) % n]
                person.friends.append(friend)

    def hand_out_initial_customers(self, people: list[Customer]) -> None:
        """Each active firm, in order, gets its initial share of the prospects it can serve;
        their relationships are given a tenure and a mature state, and each is classified as
        if it stayed without searching (docs/model.md section 5)."""
        self.open_step(people)  # prices judged against the fair price (no firm has customers yet)
        for firm, config in zip(self.firms, self.spec.firms.values()):
            if not config.active:
                continue
            free = [c for c in people if c.firm is None and firm.can_serve(c)]
            take = min(len(free), round(config.initial_share * len(people)))
            for customer in self.random.sample(free, take):
                customer.start_relationship(firm)
        self.open_step(people)  # comparison levels over the initial customers
        customers = [c for c in people if c.firm is not None]
        for c in customers:
            c.mature(c.firm)
        for c in customers:
            c.classify(c.weigh_options(), False)

    def run_in(self, steps: int) -> None:
        """Play ``steps`` steps before step 0, then forget their money and measures (7.21)."""
        for _ in range(steps):
            self.play_step()
        for firm in self.firms:
            firm.forget_books()

    # -- the market's terms of a step

    def adapt_reference_prices(self) -> None:
        """Each segment's price level moves toward the prices its people saw last step: its
        firms' prices weighted by their customers in the segment (at the last opening), or the
        plain mean of the firms that serve it when it had none (7.18)."""
        for s, counts in enumerate(self.segment_customers):
            buyers = sum(counts)
            serving = [firm.price for firm in self.firms if firm.active and firm.serves[s]]
            if buyers > 0:
                seen = sum(n * firm.price for n, firm in zip(counts, self.firms)) / buyers
            elif serving:
                seen = sum(serving) / len(serving)
            else:
                continue
            self.price_level[s] += self.reference_weight * (seen - self.price_level[s])

    def judge_prices(self) -> None:
        """Each segment's reference price, the fair price and its adapted price level averaged in
        logs, and each firm's price against it, a price above it (a loss) weighing
        ``loss_aversion`` times as much (7.18)."""
        rules = self.behaviour.reference_price
        weight, loss_aversion = rules.fair_weight, rules.loss_aversion
        references = [math.exp(weight * math.log(self.fair_price) + (1.0 - weight) * math.log(level)) for level in self.price_level]
        for firm in self.firms:
            judged = [math.log(firm.price / reference) for reference in references]
            firm.log_price = [loss_aversion * x if x > 0.0 else x for x in judged]

    def set_comparison_levels(self, people, by_firm) -> None:
        """Each segment's comparison level: exp of the mean, over its customers, of the value of
        their firm's offer (over the firms that serve it, of their mean value to its people,
        when it has no customers; 7.6)."""
        n_segments = len(self.spec.segments)
        totals, counts = [0.0] * n_segments, [0] * n_segments
        self.segment_customers = [[0] * len(self.firms) for _ in range(n_segments)]
        for firm in self.firms:
            for c in by_firm.get(firm, []):
                s = c.segment_index
                totals[s] += c.value_of(firm)
                counts[s] += 1
                self.segment_customers[s][firm.index] += 1
        for s in range(n_segments):
            if counts[s] == 0:
                segment_people = [c for c in people if c.segment_index == s]
                means = [sum(c.value_of(f) for c in segment_people) / len(segment_people)
                         for f in self.firms if f.active and f.serves[s] and segment_people]
                totals[s], counts[s] = (sum(means) / len(means) if means else 0.0), 1
            self.norm[s] = math.exp(totals[s] / counts[s])

    def open_step(self, people, adapt: bool = False) -> None:
        """1. The step's terms: reference prices (adapted once a step), each firm's customer
        count and marketing reach, each segment's comparison level."""
        if adapt:
            self.adapt_reference_prices()
        self.judge_prices()
        by_firm: dict[Firm | None, list[Customer]] = {}
        for person in people:
            by_firm.setdefault(person.firm, []).append(person)
        for firm in self.firms:
            customers = by_firm.get(firm, [])
            served = sum(n for s, n in enumerate(self.segment_sizes) if firm.active and firm.serves[s])
            firm.open_step(customers, served)
        self.set_comparison_levels(people, by_firm)

    # -- the schedule

    def play_step(self) -> None:
        """One month: firms open, customers shop, then decide; firms close their books."""
        customers = self.agents_by_type[Customer]
        self.open_step(customers, adapt=True)  # 1. reference prices, comparison levels, customer counts, reach
        customers.shuffle_do("shop")  # 2-7. acquisition, purchases, rewards, club, word of mouth
        customers.shuffle_do("decide")  # 7-9. hear, reconsider: exit, search, choice; classification
        buyers = customers.groupby("bought_from", result_type="list").groups
        for firm in self.firms:  # 10. the books
            firm.close_books(buyers.get(firm, []))

    def step(self) -> None:
        """A step of the run, and its measures."""
        self.play_step()
        self.record()
        if self.steps >= self.n_steps:
            self.running = False

    def record(self) -> None:
        """The measures of the step: each firm takes stock of its customers; the collector stores them."""
        by_firm = self.agents_by_type[Customer].groupby("firm", result_type="list").groups
        for firm in self.firms:
            firm.take_stock(by_firm.get(firm, []))
        self.datacollector.collect(self)

    def run(self) -> BaselineModel:
        while self.running and self.steps < self.n_steps:
            self.step()
        return self

    def metrics_frame(self):
        """Per-step measures, one row per step and firm: step, firm, customers, retention_rate,
        satisfaction_avg_mean, profit, revenue."""
        frame = self.datacollector.get_agenttype_vars_dataframe(Firm).reset_index()
        names = {firm.unique_id: firm.name for firm in self.firms}
        frame["firm"] = frame["AgentID"].map(names)
        frame["step"] = frame["Step"].round().astype(int)
        return frame[["step", "firm", *FIRM_REPORTERS]]
