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
``sim.offers.build_offers`` (prices, indices, rates: parameters, not rules). Nothing
of ``sim.rules`` or ``sim.model`` is used.

Rules covered (docs/model.md section):

* initialisation with mature relationships (5); the small-world network by segment
  (5.4), kept as a list of neighbour agents per customer;
* perceived value of each firm's offer (7.2) and tenure value (7.3);
* purchases with stock-out, failure and recovery shocks, basket growth and falling
  cost to serve (7.4);
* satisfaction c = b / a and its running average (7.5); expectation moving toward the
  value felt and the firm's promise, and shifted by word of mouth (7.6); trust (7.7);
  club membership and attachment (7.8);
* points (earning with tier multipliers, expiry, redemption), annual spend and tiers
  with their discounts (7.9); switching cost from points at stake (7.10);
* likelihood to recommend and word of mouth to neighbours, buzz (7.11);
* category exit, search from the satisfaction curve, inertia and bad news, and the
  logit choice among firms and the outside option with the switching cost (7.12);
* acquisition of prospects: own entry, referrals, marketing reach (7.13);
* the firms' books: revenue, cost of goods, service, rewards, community, acquisition
  and fixed costs (7.15).

Left out, because the reference scenario does not use them: timeline events and
firms entering or leaving the market, punch cards, coalition points, profit sharing,
volume discounts, lock-in (learning cost, ecosystem, contracts and exit fees) and the
retention counterfactual. Also left out: the loyalty-type classification (7.14),
churn reasons and every measure beyond the four below, so the baseline does less
work per step than the engine (the benchmark's ratio flatters the baseline).

Measures, per step and firm (``BaselineModel.metrics_frame``): customers, retention
rate, mean running satisfaction ``satisfaction_avg_mean`` and profit, plus revenue
(each ``Firm`` also keeps the step's cost accounts as attributes).

Scheduling. The engine applies each phase to all customers at once. Here a step has
two passes over the customers in random order: ``shop`` (prospects may enter and
choose; customers buy, feel, earn rewards, join the club and talk to their
neighbours) and ``decide`` (each hears what was said to it in this step, then the
settled customers reconsider their firm). Conversations land in the listener's inbox
(``heard``) and are taken in during ``decide``, so, as in the engine, everyone decides
on what was said by everyone in the step.
"""

from __future__ import annotations

import math

import mesa

from sim.offers import build_offers
from sim.population import TRAITS  # (segment key, attribute name) of each per-customer trait
from sim.scenario import TRAIT_RANGES, Scenario, Trait

DAYS_PER_YEAR = 365.0



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


class Firm(mesa.Agent):
    """A firm: its offer (published at the start of a step), its books and its measures."""

    def __init__(self, model: BaselineModel, name: str, index: int):
        super().__init__(model)
        self.name = name
        self.index = index
        self.typical_value = 0.0
        self.reach = 0.0
        self.start_customers = 0
        # measures of the last step
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
        self.log_price = float(offers.log_price[f])
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
        """What the firm leads ``customer`` to expect: its typical value inflated by the
        believed part of its promise, times the customer's demandingness (7.6)."""
        credibility = self.model.behaviour.expectation.promise_credibility
        return customer.expectation_level * math.exp(self.typical_value + credibility * self.log_promise)

    # -- the firm's own step

    def open_step(self, customers: list[Customer], prospects: list[Customer], everyone) -> None:
        """Start of a step: count the customers, set the typical value the firm's advertising
        describes, and how many of the prospects it can serve its marketing reaches."""
        self.start_customers = len(customers)
        if customers:
            self.typical_value = sum(c.value_of(self) for c in customers) / len(customers)
        else:
            servable = [c.value_of(self) for c in everyone if self.serves[c.segment_index]]
            self.typical_value = sum(servable) / len(servable) if servable else 0.0
        self.reach = 0.0
        if self.active and self.marketing_per_year > 0:
            reachable = sum(1 for c in prospects if self.serves[c.segment_index])
            if reachable:
                contacts = self.marketing_per_year * self.model.step_years / self.cost_per_contact
                self.reach = min(1.0, contacts / reachable)

    def close_books(self, buyers: list[Customer]) -> None:
        """Book the step's money from the customers who bought from the firm in this step,
        and count those of them who left (7.15)."""
        years = self.model.step_years
        self.revenue = sum(c.gross for c in buyers)
        self.cost_of_goods = sum(c.cost_of_goods for c in buyers)
        self.service_cost = sum(c.service_cost for c in buyers)
        self.reward_cost = sum(c.reward_cost for c in buyers)
        members = sum(1 for c in buyers if c.member)
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
        n_firms = len(model.firms)
        self.buzz = [0.0] * n_firms  # net word of mouth heard about each firm, fading
        self.heard = [0] * n_firms  # what was said to it in this step (its inbox)
        # this step's purchase
        self.bought_from: Firm | None = None
        self.own_value = 0.0
        self.gross = self.discount = self.cost_of_goods = self.service_cost = self.reward_cost = 0.0

    def draw_trait(self, value: float | Trait, key: str) -> float:
        lo, hi = TRAIT_RANGES[key]
        if isinstance(value, Trait):
            value = self.random.gauss(value.mean, value.sd) if value.sd > 0 else value.mean
        return min(max(value, lo), hi)

    # -- what the customer thinks of firms

    def value_of(self, firm: Firm) -> float:
        """Log perceived value of ``firm``'s standard offer (7.2)."""
        return (
            self.quality_sensitivity * firm.log_quality
            + self.service_sensitivity * firm.log_service
            - self.price_sensitivity * firm.log_price
            + firm.segment_value[self.segment_index]
        )

    def tenure_value(self, firm: Firm) -> float:
        """Extra value of its own firm through tenure: personalisation and price tolerance (7.3)."""
        economics = self.model.spec.market.loyalty_economics
        days = self.tenure * self.model.step_days
        fit = self.quality_sensitivity * math.log1p(firm.personalisation * min(days / firm.personalisation_days, 1.0))
        tolerance = min(min(days / DAYS_PER_YEAR, economics.max_years) * economics.price_tolerance_per_year, 1.0)
        return fit + self.price_sensitivity * tolerance * firm.log_price

    def recommend_score(self) -> int:
        """Likelihood to recommend, 0-10 (7.11)."""
        nps = self.model.behaviour.nps
        z = (
            nps.satisfaction_weight * math.log(max(self.satisfaction_avg, 1e-6))
            + nps.trust_weight * (self.trust - 0.5)
            + nps.attachment_weight * self.attachment
            + nps.offset
        )
        return round(10.0 / (1.0 + math.exp(-z)))

    def switching_cost(self) -> float:
        """Utility given up by leaving the firm: points at stake over the decision horizon's spend (7.10)."""
        firm, choice = self.firm, self.model.behaviour.choice
        money = self.points * firm.customer_point_value if firm.rewards_active else 0.0
        horizon_spend = self.purchases_per_year * self.basket * firm.price * choice.decision_horizon_days / DAYS_PER_YEAR
        return money / max(horizon_spend, 1e-9) + choice.psychological_cost

    def own_reward_rate(self) -> float:
        """Reward value per unit of spend from its own firm: points at its tier's multiplier and the tier discount."""
        firm = self.firm
        return firm.points_rate * firm.customer_point_value * firm.tier_points[self.tier] + firm.tier_discount[self.tier]

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
        """Become a customer of ``firm``, expecting what it leads one to expect (7.13)."""
        b = self.model.behaviour
        self.firm = firm
        self.tenure = 0
        heard = b.expectation.word_of_mouth_effect * math.tanh(self.buzz[firm.index])
        self.expectation = firm.promised_to(self) * math.exp(heard)
        self.perceived_value = self.expectation
        self.satisfaction = self.satisfaction_avg = 1.0
        self.experience = 0.0
        self.trust = b.trust.initial
        self.attachment = 0.0
        self.points = 0.0
        self.annual_spend = 0.0
        self.tier = firm.tier_of(0.0)
        self.member = False
        self.recommend = self.recommend_score()

    def end_relationship(self) -> None:
        self.firm = None
        self.tenure = 0
        self.member = False
        self.points = 0.0
        self.tier = 0
        self.recommend = 0

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
        own = self.value_of(firm) + self.tenure_value(firm)
        promised = firm.promised_to(self)
        w_e, w_p = b.expectation.experience_rate, b.expectation.promise_rate
        self.expectation = (w_e * math.exp(own) + w_p * promised) / max(w_e + w_p, 1e-12) if w_e + w_p > 0 else promised
        self.perceived_value = math.exp(own)
        self.satisfaction = self.satisfaction_avg = self.perceived_value / self.expectation
        self.annual_spend = self.purchases_per_year * self.basket * firm.price * -math.expm1(-years)
        self.tier = firm.tier_of(self.annual_spend)
        self.points = self.random.random() * firm.redemption_threshold if firm.rewards_active else 0.0
        joined = -math.expm1(-firm.join_per_year * self.community_propensity * years)
        self.member = firm.community and self.random.random() < joined
        self.recommend = self.recommend_score()

    # -- the customer's step, first pass

    def shop(self) -> None:
        """Prospects may enter the market; customers buy, feel, earn, take part and talk."""
        self.bought_from = None
        if self.firm is None:
            self.look_for_a_firm()
        if self.firm is not None:
            self.buy()
            self.collect_rewards()
            self.take_part_in_club()
            self.talk()

    def look_for_a_firm(self) -> None:
        """A prospect starts shopping on its own, after good news, or reached by marketing,
        and then chooses a firm or none (7.13)."""
        model, b, rnd = self.model, self.model.behaviour, self.random
        good_news = sum(max(x, 0.0) for x in self.buzz)
        entry = self.segment.category_entry_per_year + b.word_of_mouth.referral_rate * good_news
        shopping = rnd.random() < per_step(entry, model.step_years)
        aware = []
        for firm in model.firms:
            reached = firm.reach > 0 and firm.serves[self.segment_index] and rnd.random() < firm.reach
            aware.append(reached and rnd.random() < firm.response_rate)
        if not (shopping or any(aware)):
            return
        credibility, word = b.expectation.promise_credibility, b.choice.word_of_mouth_weight
        utilities = [
            self.value_of(firm)
            + credibility * firm.log_promise
            + self.reward_sensitivity * firm.entry_reward_rate
            + word * math.tanh(self.buzz[firm.index])
            + (firm.awareness_bonus if aware[firm.index] else 0.0)
            if firm.can_serve(self)
            else -math.inf
            for firm in model.firms
        ]
        k = self.choose(utilities, b.choice.outside_value)
        if k < len(model.firms):
            self.start_relationship(model.firms[k])

    def buy(self) -> None:
        """This step's purchases, and how they felt (7.4-7.7)."""
        firm, model, b, rnd = self.firm, self.model, self.model.behaviour, self.random
        economics = model.spec.market.loyalty_economics
        self.bought_from = firm
        # what happened: a stock-out, a service failure, its recovery
        stockout = rnd.random() >= firm.availability
        failure = rnd.random() < firm.failure_rate
        recovered = failure and not stockout and rnd.random() < firm.recovery_rate
        unrecovered = stockout or (failure and not recovered)
        noise = b.satisfaction.experience_noise
        shock = rnd.gauss(0.0, noise) if noise > 0 else 0.0
        if unrecovered:
            shock += firm.log_failure_penalty
        elif recovered:
            shock += firm.log_recovery_boost
        # the money
        years_in = min(self.tenure * model.step_days / DAYS_PER_YEAR, economics.max_years)
        occasions = 0.0 if stockout else self.purchases_per_year * model.step_years
        units = occasions * self.basket * (1.0 + economics.basket_growth_per_year * years_in)
        self.gross = units * firm.price
        self.discount = self.gross * firm.tier_discount[self.tier]
        self.cost_of_goods = units * firm.unit_cost
        self.service_cost = occasions * firm.cost_per_purchase * max(1.0 - economics.serve_cost_decline_per_year * years_in, 0.0)
        if recovered:
            self.service_cost += firm.recovery_cost
        # perceived value b, satisfaction c = b / a, and what the customer learns
        self.own_value = self.value_of(firm) + self.tenure_value(firm)
        self.perceived_value = math.exp(self.own_value + shock)
        self.satisfaction = self.perceived_value / self.expectation
        w = model.satisfaction_weight
        self.satisfaction_avg += w * (self.satisfaction - self.satisfaction_avg)
        self.experience += w * (shock - self.experience)
        self.update_expectation(firm.promised_to(self))
        self.update_trust(unrecovered)

    def update_expectation(self, promised: float) -> None:
        """a moves toward the value felt and toward the firm's promise (7.6)."""
        model = self.model
        a = self.expectation
        self.expectation = a + model.experience_weight * (self.perceived_value - a) + model.promise_weight * (promised - a)

    def update_trust(self, failed: bool) -> None:
        """Trust grows while expectations are met, decays while not, drops at a failure (7.7)."""
        rules, model = self.model.behaviour.trust, self.model
        if self.satisfaction >= rules.met_threshold:
            trust = self.trust + model.trust_gain * (1.0 - self.trust)
        else:
            trust = self.trust * (1.0 - model.trust_loss)
        if failed:
            trust *= 1.0 - rules.failure_loss
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
        """Join the firm's club when inclined; members' attachment is driven by club life (7.8)."""
        firm, model = self.firm, self.model
        joins = self.random.random() < per_step(firm.join_per_year * self.community_propensity, model.step_years)
        self.member = firm.community and (self.member or joins)
        drive = firm.attachment_per_year * firm.community_intensity if self.member else 0.0
        rules = model.behaviour.attachment
        growth = (rules.trust_gain_per_year * self.trust + drive) * (1.0 - self.attachment) - rules.decay_per_year * self.attachment
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
        """Take in what was heard; settled customers reconsider their firm; tenure grows."""
        self.listen()
        if self.firm is not None and self.tenure > 0:  # customers acquired in this step do not re-evaluate yet
            self.reconsider()
        if self.firm is not None:
            self.tenure += 1

    def listen(self) -> None:
        """Buzz fades and takes in this step's conversations; news about one's own firm shifts expectation (7.6, 7.11)."""
        decay = self.model.buzz_decay
        heard = self.heard
        self.buzz = [x * decay + h for x, h in zip(self.buzz, heard)]
        if self.firm is not None and heard[self.firm.index]:
            effect = self.model.behaviour.expectation.word_of_mouth_effect
            self.expectation *= math.exp(effect * math.tanh(heard[self.firm.index]))
        self.heard = [0] * len(heard)

    def reconsider(self) -> None:
        """Leave the category, or look around (satisfaction curve, inertia, bad news) and choose (7.12)."""
        model, b, rnd, firm = self.model, self.model.behaviour, self.random, self.firm
        if rnd.random() < per_step(self.segment.category_exit_per_year, model.step_years):
            self.end_relationship()
            return
        yearly = interpolate(self.satisfaction_avg, b.search.curve)
        search = (1.0 - (1.0 - yearly) ** model.step_years) * (1.0 - self.inertia)
        bad_news = max(-self.buzz[firm.index], 0.0)
        search = 1.0 - (1.0 - search) * (1.0 - per_step(b.word_of_mouth.referral_rate * bad_news, model.step_years))
        if rnd.random() >= search:
            return
        switching = self.switching_cost()
        credibility, word = b.expectation.promise_credibility, b.choice.word_of_mouth_weight
        utilities = []
        for other in model.firms:
            if other is firm:
                utilities.append(
                    self.own_value
                    + self.experience
                    + self.reward_sensitivity * self.own_reward_rate()
                    + b.choice.trust_weight * self.trust
                    + b.choice.attachment_weight * self.attachment
                    + word * math.tanh(self.buzz[firm.index])
                )
            elif other.can_serve(self):
                utilities.append(
                    self.value_of(other)
                    + credibility * other.log_promise
                    + self.reward_sensitivity * other.entry_reward_rate
                    + word * math.tanh(self.buzz[other.index])
                    - switching
                )
            else:
                utilities.append(-math.inf)
        k = self.choose(utilities, b.choice.outside_value - switching)
        if k == len(model.firms):
            self.end_relationship()
        elif model.firms[k] is not firm:
            self.start_relationship(model.firms[k])


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
        reference_price = market.reference_price or (sum(active) / len(active) if active else 10.0)
        self.firms = [Firm(self, name, i) for i, name in enumerate(scenario.firms)]
        offers = build_offers(scenario, 0, reference_price)
        for firm in self.firms:
            firm.publish_offer(offers, scenario.segments)
        people = self.create_customers()
        self.build_network(people)
        self.hand_out_initial_customers(people)
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
        their relationships are given a tenure and a mature state (docs/model.md section 5)."""
        self.open_step(people)  # typical values over everyone (no firm has customers yet)
        for firm, config in zip(self.firms, self.spec.firms.values()):
            if not config.active:
                continue
            free = [c for c in people if c.firm is None and firm.can_serve(c)]
            take = min(len(free), round(config.initial_share * len(people)))
            for customer in self.random.sample(free, take):
                customer.start_relationship(firm)
        self.open_step(people)  # typical values over each firm's initial customers
        for c in people:
            if c.firm is not None:
                c.mature(c.firm)

    def open_step(self, people) -> None:
        by_firm: dict[Firm | None, list[Customer]] = {}
        for person in people:
            by_firm.setdefault(person.firm, []).append(person)
        for firm in self.firms:
            firm.open_step(by_firm.get(firm, []), by_firm.get(None, []), people)

    def step(self) -> None:
        """One month: firms open, customers shop, then decide; firms close their books."""
        customers = self.agents_by_type[Customer]
        self.open_step(customers)  # 1. customer counts, typical values, marketing reach
        customers.shuffle_do("shop")  # 2-7. acquisition, purchases, rewards, club, word of mouth
        customers.shuffle_do("decide")  # 7-8. hear, reconsider: exit, search, choice
        buyers = customers.groupby("bought_from", result_type="list").groups
        for firm in self.firms:  # 10. the books
            firm.close_books(buyers.get(firm, []))
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
