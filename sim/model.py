"""The loyalty market as a Mesa model: firms are Mesa agents, customers live in arrays.

``LoyaltyModel.step`` is the schedule of MODEL.md section 12, one phase per line.
Each phase gathers the customers it concerns, calls the behaviour rules of
:mod:`sim.rules` on their arrays and stores the results; money goes to the ledger and
measures are computed from state at the end of the step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mesa
import numpy as np

from sim import rules
from sim.ledger import Ledger
from sim.measures import Metrics, StepFlows, compute
from sim.network import build_network
from sim.offers import Offers, build_offers
from sim.population import HELD, PROSPECT, Customer, Population, create_population
from sim.rules import DAYS_PER_YEAR, F32, StepRates
from sim.scenario import Firm, Scenario, set_key_path


class FirmAgent(mesa.Agent):
    """A firm: its strategy (scenario section) and the state it keeps between steps."""

    def __init__(self, model: LoyaltyModel, name: str, index: int, config: Firm):
        super().__init__(model)
        self.name = name
        self.index = index
        self.config = config
        self.period_profit = 0.0  # profit since the last profit-sharing payout
        self.period_revenue = 0.0
        self.steps_in_period = 0
        margin = max(0.0, 1.0 - config.costs.unit_cost / (config.price.list * (1 - config.price.discount)))
        share = config.rewards.profit_sharing.share if config.rewards.profit_sharing.enabled else 0.0
        #: share of spend customers expect back from profit sharing (updated at each payout)
        self.profit_share_rate = share * margin

    @property
    def role(self) -> str:
        return self.config.role

    def share_profit(self, profit_before_sharing: float, revenue: float, share: float, period_steps: int) -> float:
        """Accumulate the period's profit; at the end of a period return the payout to customers."""
        if share <= 0:  # not sharing this step: no period runs (customers keep their expectation)
            self.period_profit = self.period_revenue = 0.0
            self.steps_in_period = 0
            return 0.0
        self.period_profit += profit_before_sharing
        self.period_revenue += revenue
        self.steps_in_period += 1
        if self.steps_in_period < period_steps:
            return 0.0
        payout = share * max(0.0, self.period_profit)
        self.profit_share_rate = payout / self.period_revenue if self.period_revenue > 0 else 0.0
        self.period_profit = self.period_revenue = 0.0
        self.steps_in_period = 0
        return payout


def timeline_scenarios(scenario: Scenario) -> dict[int, Scenario]:
    """The scenario in force from each event step on (events applied cumulatively, in order of `at`)."""
    states: dict[int, Scenario] = {}
    data = scenario.model_dump(mode="python")
    for event in sorted(scenario.timeline, key=lambda e: e.at):
        for path, value in event.set.items():
            set_key_path(data, path, value)
        states[event.at] = Scenario.model_validate(copy.deepcopy(data))
    return states


@dataclass
class _Customers:
    """Indices of the customers a phase works on, with their firms."""

    idx: np.ndarray
    firm: np.ndarray


@dataclass
class _Decision:
    """The terms of the stay-or-switch decision of a set of customers (rows)."""

    idx: np.ndarray
    firm: np.ndarray
    utility: np.ndarray  # (M, F): staying in the own firm's column, -inf where impossible
    stay: np.ndarray  # utility of staying
    probabilities: np.ndarray  # (M, F + 1) logit choice, last column = leave the category
    exit_p: np.ndarray
    search_p: np.ndarray
    switching: np.ndarray
    own_rate: np.ndarray
    entry_rate: np.ndarray  # (F,) per firm, not per row

    def rows(self, mask: np.ndarray) -> _Decision:
        """The same decision for the rows in ``mask`` only."""
        per_row = {name: getattr(self, name)[mask] for name in ("idx", "firm", "utility", "stay", "probabilities", "exit_p", "search_p", "switching", "own_rate")}
        return _Decision(**per_row, entry_rate=self.entry_rate)


#: Decision terms in the order of the course's loyalty ladder, shallowest first.
_DECISIVE = np.array([HELD["switching_cost"], HELD["price"], HELD["rewards"], HELD["trust"]], dtype=np.uint8)


class LoyaltyModel(mesa.Model):
    """A market of customers and firms playing a scenario forward, one step at a time."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, retention_floor: np.ndarray | None = None):
        """``retention_floor`` is the retention-effect counterfactual (MODEL.md s.10): for each
        step t >= 1, the lowest share of its customers the focal firm keeps. When more of them
        would leave (exits and switches alike), just enough, drawn at random, are held back, as
        if a free retention effort saved them; everything else runs as usual. The draws come
        from their own random stream so they do not shift the market's draws."""
        super().__init__(rng=scenario.market.seed if seed is None else seed)
        self.spec = scenario  # the scenario as given
        self.config = scenario  # the scenario in force (changes with timeline events)
        self.seed = scenario.market.seed if seed is None else seed
        if retention_floor is not None and len(retention_floor) < scenario.market.steps + 1:
            raise ValueError(f"retention_floor needs one value per step 0..{scenario.market.steps}")
        self.retention_floor = None if retention_floor is None else np.clip(np.asarray(retention_floor, dtype=np.float64), 0.0, 1.0)
        self._intervention_rng = np.random.default_rng([self.seed, 1])
        market = scenario.market
        self.n_steps = market.steps
        self.step_days = market.step_days
        self.steps_per_year = DAYS_PER_YEAR / market.step_days
        self._timeline = timeline_scenarios(scenario)
        if 0 in self._timeline:
            self.config = self._timeline[0]
        self.rates = StepRates.of(self.config.behaviour, market.step_days, market.discount_rate)
        self.firm_agents = [FirmAgent(self, name, i, cfg) for i, (name, cfg) in enumerate(self.config.firms.items())]
        self.firm_names = tuple(self.config.firms)
        self.segment_names = tuple(s.name for s in scenario.segments)
        active = [f.price.list * (1 - f.price.discount) for f in self.config.firms.values() if f.active]
        self.reference_price = market.reference_price or (float(np.mean(active)) if active else 10.0)

        self.population: Population = create_population(scenario, self.rng)
        self.network = build_network(self.population.segment, market.network.mean_degree, market.network.rewiring, self.rng)
        pop = self.population
        self._traits = np.stack([pop.quality_sensitivity, pop.service_sensitivity, -pop.price_sensitivity], axis=1)
        self._segment_entry = np.array([s.category_entry_per_year for s in scenario.segments])
        self._segment_exit = np.array([s.category_exit_per_year for s in scenario.segments])
        self.ledger = Ledger(self.n_steps, len(self.firm_names), self.rates.step_years, market.discount_rate)
        self.metrics = Metrics(self.n_steps, len(self.firm_names))
        self._publish_offers(0)
        self._initialise_customers()
        self._record(0, StepFlows.empty(len(self.firm_names)))

    # ------------------------------------------------------------------ inspection

    def customer(self, i: int) -> Customer:
        """Customer ``i`` as an agent (a snapshot of its current state)."""
        return self.population.customer(i, self.firm_names, self.segment_names, self.offers.tier_names)

    @property
    def focal_index(self) -> int:
        return self.firm_names.index(self.spec.focal_firm)

    # ------------------------------------------------------------------ schedule

    def step(self) -> None:
        """One step of MODEL.md section 12."""
        t = self.steps
        flows = StepFlows.empty(len(self.firm_names))
        flows.start_customers = np.bincount(self.population.firm[self.population.firm >= 0], minlength=len(self.firm_names)).astype(float)
        self._apply_timeline(t, flows)  # 1. events take effect; firms publish offers
        self._values = rules.offer_values(self._traits, self.population.segment, self.offers, self._segment_terms)
        self._typical_value = self._typical_values()
        self._acquire(flows)  # 2. prospects enter the market and choose a firm
        buyers = self._customers()
        purchase = self._purchase(buyers)  # 3. purchases, stock-outs, failures
        self._experience(buyers, purchase)  # 4. perceived value, satisfaction, expectation, trust
        self._rewards(buyers, purchase)  # 5. points, tiers, punch card (profit shares are paid with the books)
        self._community(buyers)  # 6. membership and attachment
        self._word_of_mouth(flows)  # 7. promoters and detractors talk
        decision = self._evaluate(buyers.idx, buyers.firm, purchase["own_value"])
        settled = self.population.tenure[buyers.idx] > 0  # customers acquired this step do not re-evaluate yet
        stayed, searched = self._switch(decision, settled, flows)  # 8. inertia gate, search, choice
        self._classify(decision, stayed, searched)  # 9. loyalty types
        self._close_books(t, buyers, purchase, flows)  # 10. ledger and measures
        if t >= self.n_steps:
            self.running = False

    def run(self, progress=None) -> LoyaltyModel:
        """Run all steps of the scenario; ``progress`` is called with the step number after each."""
        while self.running and self.steps < self.n_steps:
            self.step()
            if progress is not None:
                progress(self.steps)
        return self

    # ------------------------------------------------------------------ phases

    def _customers(self) -> _Customers:
        idx = np.flatnonzero(self.population.firm >= 0)
        return _Customers(idx, self.population.firm[idx].astype(np.intp))

    def _apply_timeline(self, t: int, flows: StepFlows) -> None:
        """Events of step ``t`` take effect. Customers of a firm that leaves the market lose
        it at once (churn reason ``firm_closed``) and become prospects again."""
        if t in self._timeline and t > 0:
            self.config = self._timeline[t]
            for agent in self.firm_agents:
                agent.config = self.config.firms[agent.name]
            self.rates = StepRates.of(self.config.behaviour, self.step_days, self.config.market.discount_rate)
        self._publish_offers(t)
        pop = self.population
        orphaned = np.flatnonzero((pop.firm >= 0) & ~self.offers.active[np.maximum(pop.firm, 0)])
        if orphaned.size:
            flows.churn["firm_closed"] += np.bincount(pop.firm[orphaned], minlength=self.offers.size)
            self._end_relationship(orphaned)

    def _publish_offers(self, t: int) -> None:
        self.offers: Offers = build_offers(self.config, t, self.reference_price)
        self._segment_terms = rules.segment_value_terms(list(self.config.segments), self.offers)
        self._available = self.offers.serves & self.offers.active  # (S, F)
        self._profit_share_rate = np.array([a.profit_share_rate for a in self.firm_agents]) * (self.offers.profit_share > 0)

    def _initialise_customers(self) -> None:
        """Hand each firm its initial customers with a mature relationship (tenure, trust, attachment)."""
        pop, rng, market = self.population, self.rng, self.spec.market
        values = self._values = rules.offer_values(self._traits, pop.segment, self.offers, self._segment_terms)
        self._typical_value = self._typical_values()
        for f, firm in enumerate(self.config.firms.values()):
            if not firm.active:
                continue
            free = np.flatnonzero((pop.firm == PROSPECT) & self._available[pop.segment, f])
            take = min(free.size, int(round(firm.initial_share * pop.size)))
            chosen = rng.choice(free, size=take, replace=False) if take else free[:0]
            self._start_relationship(chosen, np.full(chosen.size, f, dtype=np.intp))
        idx = np.flatnonzero(pop.firm >= 0)
        if idx.size == 0:
            return
        firm = pop.firm[idx].astype(np.intp)
        mean_steps = market.initial_tenure_days / self.step_days
        tenure = rng.geometric(1.0 / max(mean_steps, 1.0), idx.size)  # at least one step: they are customers already
        pop.tenure[idx] = np.minimum(tenure, np.iinfo(np.int32).max)
        years = pop.tenure[idx] * self.step_days / DAYS_PER_YEAR
        b = self.config.behaviour
        pop.trust[idx] = 1.0 - (1.0 - b.trust.initial) * np.exp(-0.5 * b.trust.gain_per_year * years)
        drive = b.attachment.trust_gain_per_year * pop.trust[idx]
        pop.attachment[idx] = drive / (drive + b.attachment.decay_per_year + 1e-12) * -np.expm1(-(drive + b.attachment.decay_per_year) * years)
        own = values[idx, firm] + self._tenure_value(idx, firm)
        self._typical_value = self._typical_values()
        promised = self._promised(idx, firm)
        w_e, w_p = b.expectation.experience_rate, b.expectation.promise_rate
        pop.expectation[idx] = (w_e * np.exp(own) + w_p * promised) / max(w_e + w_p, 1e-12) if w_e + w_p > 0 else promised
        pop.perceived_value[idx] = np.exp(own)
        pop.satisfaction[idx] = pop.satisfaction_avg[idx] = pop.perceived_value[idx] / pop.expectation[idx]
        spend = pop.purchases_per_year[idx] * pop.basket[idx] * self.offers.price[firm]
        pop.annual_spend[idx] = spend * -np.expm1(-years)
        pop.tier[idx] = self.offers.tier_of(firm, pop.annual_spend[idx])
        o = self.offers
        pop.points[idx] = np.where(o.rewards_active[firm], rng.random(idx.size) * o.redemption_threshold[firm], 0.0)
        pop.stamps[idx] = np.where(o.punch_stamps[firm] > 0, np.floor(rng.random(idx.size) * o.punch_stamps[firm]), 0.0)
        joined = -np.expm1(-o.join_per_year[firm] * pop.community_propensity[idx] * years)
        pop.member[idx] = o.community[firm] & (rng.random(idx.size) < joined)
        pop.recommend[idx] = rules.recommend_score(pop.satisfaction_avg[idx], pop.trust[idx], pop.attachment[idx], b)
        everyone = np.ones(idx.size, dtype=bool)
        self._classify(self._evaluate(idx, firm, own), everyone, ~everyone)

    def _start_relationship(self, idx: np.ndarray, firm: np.ndarray) -> None:
        """``idx`` become new customers of ``firm``.

        They expect what they were led to expect: the firm's (partly believed) promise,
        scaled by their own demandingness and shifted by what they heard about it."""
        pop, b = self.population, self.config.behaviour
        heard = np.tanh(pop.buzz[idx, firm]) * b.expectation.word_of_mouth_effect
        pop.firm[idx] = firm
        pop.tenure[idx] = 0
        pop.expectation[idx] = self._promised(idx, firm) * np.exp(heard)
        pop.perceived_value[idx] = pop.expectation[idx]  # no purchase yet: neither delighted nor disappointed
        pop.satisfaction[idx] = 1.0
        pop.satisfaction_avg[idx] = 1.0
        pop.experience[idx] = 0.0
        pop.trust[idx] = b.trust.initial
        pop.attachment[idx] = 0.0
        pop.points[idx] = 0.0
        pop.stamps[idx] = 0.0
        pop.annual_spend[idx] = 0.0
        pop.tier[idx] = self.offers.tier_of(firm, pop.annual_spend[idx])
        pop.member[idx] = False
        pop.held_by[idx] = HELD["none"]
        pop.switching_cost[idx] = 0.0
        pop.repurchase[idx] = 0.0
        pop.recommend[idx] = rules.recommend_score(pop.satisfaction_avg[idx], pop.trust[idx], pop.attachment[idx], b)
        pop.value_to_date[idx] = 0.0

    def _end_relationship(self, idx: np.ndarray) -> None:
        pop = self.population
        pop.firm[idx] = PROSPECT
        pop.tenure[idx] = 0
        pop.member[idx] = False
        pop.points[idx] = 0.0
        pop.stamps[idx] = 0.0
        pop.tier[idx] = 0
        pop.held_by[idx] = HELD["none"]
        pop.switching_cost[idx] = 0.0
        pop.repurchase[idx] = 0.0
        pop.recommend[idx] = 0

    def _tenure_value(self, idx: np.ndarray, firm: np.ndarray) -> np.ndarray:
        pop = self.population
        return rules.tenure_value(
            firm, pop.tenure[idx] * self.step_days, pop.quality_sensitivity[idx], pop.price_sensitivity[idx], self.offers, self.config.market.loyalty_economics
        )

    def _typical_values(self) -> np.ndarray:
        """(F,) log value each firm's offer gives its typical customer (mean over its customers;
        over the people it can serve while it has none). This is what its advertising describes."""
        pop, n_firms = self.population, len(self.firm_names)
        idx = np.flatnonzero(pop.firm >= 0)
        firm = pop.firm[idx].astype(np.intp)
        count = np.bincount(firm, minlength=n_firms)
        total = np.bincount(firm, weights=self._values[idx, firm], minlength=n_firms)
        typical = total / np.maximum(count, 1)
        for f in np.flatnonzero(count == 0):
            servable = self._available[pop.segment, f] if pop.size else np.zeros(0, bool)
            typical[f] = float(self._values[servable, f].mean()) if servable.any() else 0.0
        return typical

    def _promised(self, idx: np.ndarray, firm: np.ndarray) -> np.ndarray:
        """The value customers ``idx`` are led to expect from ``firm``: its typical value inflated
        by the believed part of its promise, times each customer's demandingness."""
        credibility = self.config.behaviour.expectation.promise_credibility
        return (self.population.expectation_level[idx] * np.exp(self._typical_value[firm] + credibility * self.offers.log_promise[firm])).astype(F32)

    def _switching_cost(self, idx: np.ndarray, firm: np.ndarray) -> np.ndarray:
        """Utility a customer would give up by leaving its firm.

        Money at stake (points at their value to the customer, punch-card progress,
        learning cost, ecosystem value growing with tenure, the exit fee for the part of the
        current contract period still to run) is spread
        over the decision horizon's spend, plus a psychological cost."""
        pop, o, choice = self.population, self.offers, self.config.behaviour.choice
        purchase_value = pop.basket[idx] * o.price[firm]
        tenure_days = pop.tenure[idx] * self.step_days
        money = (
            pop.points[idx] * o.customer_point_value[firm] * o.rewards_active[firm]
            + np.where(o.punch_stamps[firm] > 0, pop.stamps[idx] / np.maximum(o.punch_stamps[firm], 1.0), 0.0) * purchase_value
            + o.learning_cost[firm]
            + o.ecosystem_per_year[firm] * tenure_days / DAYS_PER_YEAR
            + o.exit_fee[firm] * rules.contract_remaining(tenure_days, o.contract_days[firm])
        )
        horizon_spend = pop.purchases_per_year[idx] * purchase_value * choice.decision_horizon_days / DAYS_PER_YEAR
        return (money / np.maximum(horizon_spend, 1e-9) + choice.psychological_cost).astype(F32)

    def _own_reward_rate(self, idx: np.ndarray, firm: np.ndarray) -> np.ndarray:
        """Reward value per unit of spend a customer gets from its own firm (points at its
        tier's multiplier, punch card, tier and volume discounts, profit share)."""
        pop, o = self.population, self.offers
        tier = pop.tier[idx].astype(np.intp)
        bracket = o.volume_bracket(firm, pop.annual_spend[idx])
        punch = np.where(o.punch_stamps[firm] > 0, 1.0 / (o.punch_stamps[firm] + 1.0), 0.0)
        return (
            o.points_rate[firm] * o.customer_point_value[firm] * o.tier_points[firm, tier]
            + punch
            + o.tier_discount[firm, tier]
            + o.volume_discount[firm, bracket]
            + self._profit_share_rate[firm]
        )

    def _entry_reward_rate(self) -> np.ndarray:
        return self.offers.entry_reward_rate + self._profit_share_rate

    def _acquire(self, flows: StepFlows) -> None:
        """Prospects start shopping (on their own, through referrals, or reached by marketing) and choose."""
        pop, o, rng = self.population, self.offers, self.rng
        b = self.config.behaviour
        years = self.rates.step_years
        prospects = np.flatnonzero(pop.firm == PROSPECT)
        if prospects.size == 0:
            return
        seg = pop.segment[prospects]
        good_news = np.maximum(pop.buzz[prospects], 0).sum(axis=1)
        enter = rng.random(prospects.size) < rules.per_step(self._segment_entry[seg] + b.word_of_mouth.referral_rate * good_news, years)
        aware = np.zeros((prospects.size, o.size), dtype=bool)
        for f in np.flatnonzero(o.active & (o.marketing_per_year > 0)):
            eligible = self._available[seg, f]
            reachable = int(eligible.sum())
            if reachable == 0:
                continue
            contacts = o.marketing_per_year[f] * years / o.cost_per_contact[f]
            reached = eligible & (rng.random(prospects.size) < min(1.0, contacts / reachable))
            aware[:, f] = reached & (rng.random(prospects.size) < o.response_rate[f])
        enter |= aware.any(axis=1)
        shoppers = prospects[enter]
        if shoppers.size == 0:
            return
        utility = (
            self._values[shoppers]
            + (b.expectation.promise_credibility * o.log_promise).astype(F32)
            + pop.reward_sensitivity[shoppers, None] * self._entry_reward_rate().astype(F32)
            + b.choice.word_of_mouth_weight * np.tanh(pop.buzz[shoppers])
            + aware[enter] * o.awareness_bonus.astype(F32)
        )
        utility[~self._available[pop.segment[shoppers]]] = -np.inf
        choice = rules.draw_choice(rules.choice_probabilities(utility, b.choice.outside_value, b.choice.scale), rng)
        buys = choice < o.size
        new, firm = shoppers[buys], choice[buys]
        self._start_relationship(new, firm)
        flows.acquired_prospects += np.bincount(firm, minlength=o.size)

    def _purchase(self, c: _Customers) -> dict[str, np.ndarray]:
        """This step's purchases: units, money per customer, and what went wrong."""
        pop, o = self.population, self.offers
        econ = self.config.market.loyalty_economics
        idx, firm = c.idx, c.firm
        shock, bought, failed, recovered = rules.purchase_shock(firm, o, self.config.behaviour.satisfaction.experience_noise, self.rng)
        years_in = np.minimum(pop.tenure[idx] * self.step_days / DAYS_PER_YEAR, econ.max_years)
        occasions = pop.purchases_per_year[idx] * self.rates.step_years * bought
        units = occasions * pop.basket[idx] * (1.0 + econ.basket_growth_per_year * years_in)
        gross = units * o.price[firm]
        tier = pop.tier[idx].astype(np.intp)
        keep = (1.0 - o.tier_discount[firm, tier]) * (1.0 - o.volume_discount[firm, o.volume_bracket(firm, pop.annual_spend[idx])])
        return {
            "shock": shock,
            "failed": failed,
            "occasions": occasions,
            "units": units,
            "gross": gross,
            "discount": gross * (1.0 - keep),
            "cost_of_goods": units * o.unit_cost[firm],
            "service_cost": occasions * o.cost_per_purchase[firm] * np.maximum(1.0 - econ.serve_cost_decline_per_year * years_in, 0.0)
            + recovered * o.recovery_cost[firm],
            "own_value": self._values[idx, firm] + self._tenure_value(idx, firm),
        }

    def _experience(self, c: _Customers, purchase: dict[str, np.ndarray]) -> None:
        """Perceived value b, satisfaction c = b / a, and the updates of a, trust and the running averages."""
        pop, b, rates = self.population, self.config.behaviour, self.rates
        idx, firm = c.idx, c.firm
        own = purchase["own_value"]
        perceived = np.exp(own + purchase["shock"]).astype(F32)
        c_now = rules.satisfaction(perceived, pop.expectation[idx])
        pop.perceived_value[idx] = perceived
        pop.satisfaction[idx] = c_now
        w = rates.satisfaction_weight
        pop.satisfaction_avg[idx] += w * (c_now - pop.satisfaction_avg[idx])
        pop.experience[idx] += w * (purchase["shock"] - pop.experience[idx])
        pop.expectation[idx] = rules.update_expectation(pop.expectation[idx], perceived, self._promised(idx, firm), rates)
        pop.trust[idx] = rules.update_trust(pop.trust[idx], c_now, purchase["failed"], b, rates)

    def _rewards(self, c: _Customers, purchase: dict[str, np.ndarray]) -> None:
        """Points earned, expired and redeemed (all outstanding points are honoured when a
        programme ends); punch-card stamps; annual spend and tiers."""
        pop, o = self.population, self.offers
        idx, firm = c.idx, c.firm
        spend = purchase["gross"] - purchase["discount"]
        tier = pop.tier[idx].astype(np.intp)
        earned = spend * o.points_rate[firm] * o.tier_points[firm, tier]
        active = o.rewards_active[firm]
        points = pop.points[idx] * np.exp(-self.step_days / o.expiry_days[firm]) + earned
        threshold = o.redemption_threshold[firm]
        # while the programme runs, points are redeemed in multiples of the threshold;
        # when it ends, the firm honours every outstanding point once
        redeemed = np.where(active, np.floor(points / threshold) * threshold, points)
        pop.points[idx] = points - redeemed
        stamps = pop.stamps[idx] + purchase["occasions"]
        free = np.where(o.punch_stamps[firm] > 0, np.floor(stamps / np.maximum(o.punch_stamps[firm], 1.0)), 0.0)
        pop.stamps[idx] = np.where(o.punch_stamps[firm] > 0, stamps - free * o.punch_stamps[firm], 0.0)
        purchase_value = purchase["gross"] / np.maximum(purchase["occasions"], 1e-12)
        purchase["reward_cost"] = purchase["discount"] + redeemed * o.point_value[firm] + earned * o.coalition_fee[firm] + free * purchase_value
        pop.annual_spend[idx] = pop.annual_spend[idx] * self.rates.spend_decay + spend * self.rates.spend_weight
        pop.tier[idx] = o.tier_of(firm, pop.annual_spend[idx])

    def _community(self, c: _Customers) -> None:
        """Inclined customers join their firm's club; members' attachment is driven by events and care."""
        pop, o = self.population, self.offers
        idx, firm = c.idx, c.firm
        join = self.rng.random(idx.size) < rules.per_step(o.join_per_year[firm] * pop.community_propensity[idx], self.rates.step_years)
        member = o.community[firm] & (pop.member[idx] | join)
        pop.member[idx] = member
        drive = member * o.attachment_per_year[firm] * o.community_intensity[firm]
        pop.attachment[idx] = rules.update_attachment(pop.attachment[idx], pop.trust[idx], drive, self.config.behaviour, self.rates)

    def _word_of_mouth(self, flows: StepFlows) -> None:
        """Promoters and detractors talk to their ties; what people hear shifts expectations and choices."""
        pop, o, b = self.population, self.offers, self.config.behaviour
        idx = np.flatnonzero(pop.firm >= 0)
        firm = pop.firm[idx].astype(np.intp)
        score = rules.recommend_score(pop.satisfaction_avg[idx], pop.trust[idx], pop.attachment[idx], b)
        pop.recommend[idx] = score
        pop.buzz *= F32(self.rates.buzz_decay)
        promoter, detractor = score >= 9, score <= 6
        years, wom = self.rates.step_years, b.word_of_mouth
        rate = np.where(promoter, wom.positive_reach_per_year * years * (1.0 + o.word_of_mouth_boost[firm] * pop.member[idx]), 0.0)
        rate = np.where(detractor, wom.negative_reach_per_year * years, rate)
        speaking = rate > 0
        speaker, listener = rules.spread_word_of_mouth(idx[speaking], rate[speaking], self.network.ties, self.rng)
        if speaker.size == 0:
            return
        about = pop.firm[speaker].astype(np.intp)
        sign = np.where(pop.recommend[speaker] >= 9, 1.0, -1.0)
        heard = np.bincount(listener * o.size + about, weights=sign, minlength=pop.size * o.size).reshape(pop.size, o.size)
        pop.buzz += heard.astype(F32)
        flows.word_of_mouth_positive += np.bincount(about[sign > 0], minlength=o.size)
        flows.word_of_mouth_negative += np.bincount(about[sign < 0], minlength=o.size)
        own = heard[idx, firm]
        pop.expectation[idx] *= np.exp(b.expectation.word_of_mouth_effect * np.tanh(own)).astype(F32)

    def _evaluate(self, idx: np.ndarray, firm: np.ndarray, own_value: np.ndarray) -> _Decision:
        """The stay-or-switch decision of customers ``idx`` of ``firm``: utilities of staying and
        of every alternative (other firms pay the switching cost), logit choice probabilities,
        and the chances of leaving the category and of searching this step."""
        pop, o, b = self.population, self.offers, self.config.behaviour
        rows = np.arange(idx.size)
        switching = self._switching_cost(idx, firm)
        own_rate = self._own_reward_rate(idx, firm)
        entry_rate = self._entry_reward_rate()
        reward_sens = pop.reward_sensitivity[idx]
        word = b.choice.word_of_mouth_weight * np.tanh(pop.buzz[idx])
        utility = (
            self._values[idx]
            + (b.expectation.promise_credibility * o.log_promise).astype(F32)
            + reward_sens[:, None] * entry_rate.astype(F32)
            + word
            - switching[:, None]
        )
        available = self._available[pop.segment[idx]]
        utility[~available] = -np.inf
        stay = (
            own_value
            + pop.experience[idx]
            + reward_sens * own_rate
            + b.choice.trust_weight * pop.trust[idx]
            + b.choice.attachment_weight * pop.attachment[idx]
            + word[rows, firm]
        )
        utility[rows, firm] = np.where(o.active[firm], stay, -np.inf)
        probabilities = rules.choice_probabilities(utility, b.choice.outside_value - switching, b.choice.scale)
        exit_p = rules.per_step(self._segment_exit[pop.segment[idx]], self.rates.step_years)
        search_p = rules.search_probability(pop.satisfaction_avg[idx], pop.inertia[idx], b, self.rates)
        bad_news = np.maximum(-pop.buzz[idx, firm], 0)
        search_p = 1.0 - (1.0 - search_p) * (1.0 - rules.per_step(b.word_of_mouth.referral_rate * bad_news, self.rates.step_years))
        search_p = np.where(o.active[firm], search_p, 1.0)  # a firm that left the market loses everyone
        return _Decision(idx, firm, utility, stay, probabilities, exit_p, search_p, switching, own_rate, entry_rate)

    def _switch(self, d: _Decision, eligible: np.ndarray, flows: StepFlows) -> tuple[np.ndarray, np.ndarray]:
        """Natural exits; an inertia gate; search following the satisfaction curve; a logit
        choice among firms and leaving the category, for the ``eligible`` rows of ``d``.
        Returns (stayed, searched) masks over the rows of ``d``."""
        pop, o, b, rng = self.population, self.offers, self.config.behaviour, self.rng
        n_firms, m, firm = o.size, d.idx.size, d.firm
        exits = eligible & (rng.random(m) < d.exit_p)
        searching = eligible & ~exits & (rng.random(m) < d.search_p)
        chosen = firm.copy()
        chosen[searching] = rules.draw_choice(d.probabilities[searching], rng)
        moved = ~exits & (chosen != firm)
        if self.retention_floor is not None:
            held = self._hold_back(firm, exits | moved, flows)
            exits &= ~held
            moved &= ~held
        to_rival = moved & (chosen < n_firms)
        leavers = exits | moved
        # why they left: no firm's doing (left the category), dissatisfaction, or the term
        # that most favoured the rival they chose (for leaving the category: its value)
        gone = d.rows(leavers)
        rival = to_rival[leavers]
        price_term, reward_term, _ = self._decompose(gone, np.where(rival, chosen[leavers], gone.firm))
        dissatisfied = pop.satisfaction_avg[gone.idx] < b.satisfaction.generally_satisfied
        reason = np.select(
            [exits[leavers], dissatisfied, rival & (price_term < 0) & (price_term <= reward_term), rival & (reward_term < 0)],
            ["left_category", "dissatisfied", "price", "rewards"],
            "value",
        )
        for name in flows.churn:
            flows.churn[name] += np.bincount(gone.firm[reason == name], minlength=n_firms)
        flows.lost_to_rivals += np.bincount(firm[to_rival], minlength=n_firms)
        flows.won_from_rivals += np.bincount(chosen[to_rival], minlength=n_firms)
        self._end_relationship(d.idx[exits | (moved & ~to_rival)])
        if to_rival.any():
            movers, target = d.idx[to_rival], chosen[to_rival]
            self._start_relationship(movers, target)
            self._settle_newcomers(movers, target)
        return ~leavers, searching

    def _hold_back(self, firm: np.ndarray, leaving: np.ndarray, flows: StepFlows) -> np.ndarray:
        """Which of the focal firm's leavers the retention counterfactual keeps this step."""
        focal = self.focal_index
        would = np.flatnonzero(leaving & (firm == focal))
        floor = self.retention_floor[self.steps]
        allowed = (1.0 - floor) * flows.start_customers[focal]
        allowed = int(np.floor(allowed + self._intervention_rng.random()))  # unbiased rounding
        held = np.zeros(firm.size, dtype=bool)
        if would.size > allowed:
            held[self._intervention_rng.choice(would, size=would.size - allowed, replace=False)] = True
        return held

    def _settle_newcomers(self, idx: np.ndarray, firm: np.ndarray) -> None:
        """Give customers who joined ``firm`` during switching their decision terms at the new firm."""
        own = self._values[idx, firm] + self._tenure_value(idx, firm)
        everyone = np.ones(idx.size, dtype=bool)
        self._classify(self._evaluate(idx, firm, own), everyone, ~everyone)

    def _classify(self, d: _Decision, stayed: np.ndarray, searched: np.ndarray) -> None:
        """Loyalty type of each customer who stays: the term of its decision that holds it.

        The advantage of staying over the best alternative firm is split into price, rewards,
        trust (quality, service, experience, trust, attachment, word of mouth) and switching
        cost. A term is pivotal when without it the alternative would win. Loyalty is only as
        deep as its shallowest necessary support, so the type is the first pivotal term on the
        course's ladder (switching cost, price, rewards, trust); a customer held by several
        terms none of which is pivotal is named after the largest. No alternative firm:
        monopoly. No advantage: inertia if it did not look this step, none (a switcher in
        waiting) if it did.
        Also stores each customer's switching cost and yearly repurchase probability."""
        pop = self.population
        rows = np.arange(d.idx.size)
        alternatives = d.utility.copy()
        alternatives[rows, d.firm] = -np.inf
        best = alternatives.argmax(axis=1)
        no_alternative = ~np.isfinite(alternatives[rows, best])
        price_term, reward_term, trust_term = self._decompose(d, best)
        advantage = np.where(no_alternative, np.inf, d.stay - alternatives[rows, best])
        terms = np.stack([d.switching, price_term, reward_term, trust_term], axis=1)  # the course's ladder, shallowest first
        pivotal = (terms > 0) & (advantage[:, None] - terms <= 0)
        decisive = np.where(pivotal.any(axis=1), _DECISIVE[pivotal.argmax(axis=1)], _DECISIVE[terms.argmax(axis=1)])
        held = np.where(advantage > 0, decisive, np.where(searched, HELD["none"], HELD["not_looking"]))
        held = np.where(no_alternative, HELD["no_alternative"], held)
        keep = d.idx[stayed]
        pop.held_by[keep] = held[stayed]
        pop.switching_cost[keep] = d.switching[stayed]
        stay_step = (1.0 - d.exit_p) * (1.0 - d.search_p * (1.0 - d.probabilities[rows, d.firm]))
        pop.repurchase[keep] = np.power(stay_step[stayed], self.steps_per_year)

    def _decompose(self, d: _Decision, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split the advantage of staying over firm ``other`` into its terms.

        price: the price part of perceived value (own firm at the customer's tolerance);
        rewards: reward value of staying minus that of joining; trust: everything else that is
        not switching cost (quality, service and experience, trust, attachment, word of mouth,
        the other firm's promise)."""
        pop, o, b = self.population, self.offers, self.config.behaviour
        idx, firm, own_rate, entry_rate = d.idx, d.firm, d.own_rate, d.entry_rate
        sens = pop.price_sensitivity[idx]
        econ = self.config.market.loyalty_economics
        years_in = np.minimum(pop.tenure[idx] * self.step_days / DAYS_PER_YEAR, econ.max_years)
        tolerance = np.minimum(years_in * econ.price_tolerance_per_year, 1.0)
        price = -sens * (1.0 - tolerance) * o.log_price[firm] + sens * o.log_price[other]
        reward = pop.reward_sensitivity[idx] * (own_rate - entry_rate[other])
        own_total = (
            self._values[idx, firm] + self._tenure_value(idx, firm) + pop.experience[idx] + pop.reward_sensitivity[idx] * own_rate
            + b.choice.trust_weight * pop.trust[idx] + b.choice.attachment_weight * pop.attachment[idx]
            + b.choice.word_of_mouth_weight * np.tanh(pop.buzz[idx, firm])
        )
        other_total = (
            self._values[idx, other] + b.expectation.promise_credibility * o.log_promise[other]
            + pop.reward_sensitivity[idx] * entry_rate[other] + b.choice.word_of_mouth_weight * np.tanh(pop.buzz[idx, other])
        )
        trust = own_total - other_total - price - reward
        return price, reward, trust

    def _close_books(self, t: int, c: _Customers, purchase: dict[str, np.ndarray], flows: StepFlows) -> None:
        """Book every account, pay profit shares, update customer value and tenure, record measures."""
        pop, o, ledger = self.population, self.offers, self.ledger
        firm = c.firm
        years = self.rates.step_years
        ledger.book(t, "revenue", purchase["gross"], firm)
        ledger.book(t, "cost_of_goods", purchase["cost_of_goods"], firm)
        ledger.book(t, "service_cost", purchase["service_cost"], firm)
        ledger.book(t, "reward_cost", purchase["reward_cost"], firm)
        members = np.bincount(firm, weights=pop.member[c.idx].astype(float), minlength=o.size)
        ledger.book(t, "community_cost", np.where(o.active, members * o.member_cost_per_year * years + o.events_cost_per_year * years, 0.0))
        ledger.book(t, "acquisition_cost", np.where(o.active, o.marketing_per_year * years, 0.0))
        ledger.book(t, "fixed_cost", np.where(o.active, o.fixed_per_year * years, 0.0))
        before_sharing = ledger.profit(t)[t]
        revenue = ledger.accounts["revenue"][t]
        payouts = np.array(
            [a.share_profit(before_sharing[a.index], revenue[a.index], o.profit_share[a.index], int(o.profit_share_steps[a.index])) for a in self.firm_agents]
        )
        ledger.book(t, "reward_cost", payouts)
        margin = purchase["gross"] - purchase["cost_of_goods"] - purchase["service_cost"] - purchase["reward_cost"]
        still = pop.firm[c.idx] == c.firm
        kept = c.idx[still]
        pop.value_to_date[kept] += (margin[still] * (1.0 + self.rates.discount_per_step) ** (-pop.tenure[kept].astype(np.float64))).astype(F32)
        customers = pop.firm >= 0
        pop.tenure[customers] += 1
        self._record(t, flows)

    def _record(self, t: int, flows: StepFlows) -> None:
        values = compute(
            t, self.population, flows, self.ledger, self.offers, self.config.behaviour,
            self.metrics.table, self.steps_per_year, self.rates.discount_per_step,
        )
        self.metrics.record(t, values)

    # ------------------------------------------------------------------ results

    def metrics_frame(self):
        """The per-step metrics as a tidy pandas table: one row per step and firm."""
        import pandas as pd

        steps = np.arange(self.n_steps + 1)
        n_firms = len(self.firm_names)
        upto = self.steps + 1
        frame = {
            "step": np.repeat(steps[:upto], n_firms),
            "day": np.repeat(steps[:upto] * self.step_days, n_firms),
            "firm": np.tile(np.array(self.firm_names, dtype=object), upto),
        }
        for name, rows in self.metrics.table.items():
            frame[name] = rows[:upto].ravel()
        return pd.DataFrame(frame)

    def customers_frame(self):
        """The final state of every person as a table (one row per customer or prospect)."""
        import pandas as pd

        pop = self.population
        firm_names = np.array([*self.firm_names, ""], dtype=object)
        firm = np.where(pop.firm >= 0, pop.firm, len(self.firm_names))
        from sim.population import HELD_BY, LOYALTY_TYPES

        customer = pop.firm >= 0
        return pd.DataFrame(
            {
                "customer": np.arange(pop.size),
                "segment": np.array(self.segment_names, dtype=object)[pop.segment],
                "firm": firm_names[firm],
                "tenure_days": pop.tenure * self.step_days,
                "expectation": pop.expectation,
                "perceived_value": pop.perceived_value,
                "satisfaction": pop.satisfaction,
                "satisfaction_avg": pop.satisfaction_avg,
                "trust": pop.trust,
                "attachment": pop.attachment,
                "switching_cost": pop.switching_cost,
                "points": pop.points,
                "tier": pop.tier,
                "member": pop.member,
                "loyalty_type": np.where(customer, np.array(LOYALTY_TYPES, dtype=object)[pop.loyalty_type], ""),
                "held_by": np.where(customer, np.array(HELD_BY, dtype=object)[pop.held_by], ""),
                "recommend": pop.recommend,
                "repurchase_probability": pop.repurchase,
                "value_to_date": pop.value_to_date,
                "price_sensitivity": pop.price_sensitivity,
                "quality_sensitivity": pop.quality_sensitivity,
                "service_sensitivity": pop.service_sensitivity,
                "reward_sensitivity": pop.reward_sensitivity,
                "inertia": pop.inertia,
            }
        )
