"""The loyalty market as a Mesa model: firms are Mesa agents, customers live in arrays.

``LoyaltyModel.step`` is the schedule of MODEL.md section 12, one phase per line.
Each phase is a compiled kernel of :mod:`sim.engine` that visits the customers it
concerns and applies the behaviour rules of :mod:`sim.rules` to each; money goes to the
ledger and measures are computed from state at the end of the step.
"""

from __future__ import annotations

import copy
from dataclasses import fields

import mesa
import numpy as np

from sim import engine, rules
from sim.engine import Context, Params
from sim.ledger import Ledger
from sim.measures import (
    CHURN_REASONS,
    Metrics,
    StepFlows,
    compute,
    level_thresholds,
    tally_arrays,
    window_steps,
)
from sim.network import build_network
from sim.offers import build_offers, rewards_running
from sim.parallel import Split
from sim.population import PROSPECT, Customer, Population, allocate, create_population
from sim.rules import DAYS_PER_YEAR, StepRates, stream_key
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


class LoyaltyModel(mesa.Model):
    """A market of customers and firms playing a scenario forward, one step at a time."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, retention_floor: np.ndarray | None = None, threads: int | None = None):
        """``threads``: how many threads share the customers in a step (default: every core
        available, see :mod:`sim.parallel`); the results are the same whatever the number.

        ``retention_floor`` is the retention-effect counterfactual (MODEL.md s.10): for each
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
        #: the fair price: the category's normal price (the demand curve's anchor, and the part of the
        #: reference price people never get used to); each segment's reference price adapts from it
        self.reference_price = market.reference_price or (float(np.mean(active)) if active else 10.0)
        self._price_level = np.full(len(scenario.segments), self.reference_price)  # the adaptive part, per segment
        self._segment_counts = np.zeros((len(scenario.segments), len(self.config.firms)))  # customers per segment and firm
        self._refunds = np.zeros(len(self.config.firms))  # price-protection refunds of the step
        self._warming = False  # in the run-in before step 0

        self.population: Population = create_population(scenario, self.rng)
        self.network = build_network(self.population.segment, market.network.mean_degree, market.network.rewiring, self.rng)
        self._pop = self.population.state()  # the same arrays, as the kernels take them
        self._split = Split(self.population.size, threads)  # the customers' ranges, one per thread
        n, slot = self.population.size, len(fields(Population))  # scratch arrays go in the next memory slots (see allocate)
        self._choice = allocate(n, np.int8, slot + 1, engine.STAY)  # what each person does in a step
        self._reason = allocate(n, np.int8, slot + 2, 0)  # why a leaver leaves
        self._margin = allocate(n, np.float32, slot + 3, 0.0)  # each customer's margin of a step
        self._segment_sizes = np.bincount(self.population.segment, minlength=len(scenario.segments)).astype(np.float64)
        self._segment_entry = np.array([s.category_entry_per_year for s in scenario.segments])
        self._segment_exit = np.array([s.category_exit_per_year for s in scenario.segments])
        self.ledger = Ledger(self.n_steps, len(self.firm_names), self.rates.step_years, market.discount_rate)
        self.metrics = Metrics(self.n_steps, len(self.firm_names))
        self._offers_key = None  # what the offers in force were built from (see _publish_offers)
        self._publish_offers(0)
        self._initialise_customers()
        self._run_in(int(round(market.run_in_days / market.step_days)))
        self._record(0, StepFlows.empty(len(self.firm_names)))

    # ------------------------------------------------------------------ inspection

    def customer(self, i: int) -> Customer:
        """Customer ``i`` as an agent (a snapshot of its current state)."""
        return self.population.customer(i, self.firm_names, self.segment_names, self.offers.tier_names)

    @property
    def nbytes(self) -> int:
        """Bytes of model state: the population's arrays, the network and the step's scratch arrays."""
        scratch = self._choice.nbytes + self._reason.nbytes + self._margin.nbytes
        return self.population.nbytes + self.network.nbytes + scratch

    @property
    def focal_index(self) -> int:
        return self.firm_names.index(self.spec.focal_firm)

    # ------------------------------------------------------------------ schedule

    def step(self) -> None:
        """One step of MODEL.md section 12; each phase is a compiled kernel of :mod:`sim.engine`."""
        self._advance(self.steps, stream_key(self.seed, self.steps))
        if self.steps >= self.n_steps:
            self.running = False

    def _run_in(self, steps: int) -> None:
        """Simulate ``steps`` steps before step 0 with the strategies of step 0 (no timeline
        event, no retention floor, draws from a stream of their own), then forget their money
        and measures: reported outcomes start from the market's steady state, not from the
        initial approximation of it (``market.run_in_days``)."""
        if steps <= 0:
            return
        ledger, metrics = self.ledger, self.metrics
        self.ledger = Ledger(steps, len(self.firm_names), self.rates.step_years, self.spec.market.discount_rate)
        self.metrics = Metrics(steps, len(self.firm_names))
        self._record(0, StepFlows.empty(len(self.firm_names)))
        self._warming = True
        try:
            for t in range(1, steps + 1):
                self._advance(t, stream_key(self.seed, t, stream=2))
        finally:
            self._warming = False
            self.ledger, self.metrics = ledger, metrics
            self._refunds[:] = 0.0

    def _advance(self, t: int, key) -> None:
        """The phases of step ``t`` (of the run, or of the run-in), with the draws of ``key``."""
        n_firms = len(self.firm_names)
        flows = StepFlows.empty(n_firms)
        flows.start_customers = self.metrics.table["customers"][t - 1].copy()
        self._apply_timeline(0 if self._warming else t, flows, adapt=True)  # 1. events take effect; firms publish offers
        pop, off, ctx, par = self._pop, self._off, self._ctx, self._par
        choice, split, chunks = self._choice, self._split, self._split.chunks
        # 2. the chance that each firm's marketing reaches a prospect and it responds
        reach = engine.marketing_reach(off, ctx, par, self._segment_sizes)
        # 2-7. prospects choose and join; purchases, experience, rewards, community; word of
        # mouth said (engine.buy: acquire, consume, speak, one range at a time)
        acquired = np.zeros((chunks, n_firms))
        money = np.zeros((chunks, engine.MONEY_ROWS, n_firms))
        said = np.zeros((chunks, 2, n_firms))
        talks = split.each(engine.buy, pop, off, ctx, par, key, reach, choice, acquired, money, self._margin, self.network.ties, said)
        flows.acquired_prospects += acquired.sum(axis=0)
        flows.word_of_mouth_positive += said[:, 0].sum(axis=0)
        flows.word_of_mouth_negative += said[:, 1].sum(axis=0)
        # 7-9. word of mouth heard (every range of listeners reads all conversations in the
        # order of their speakers) and taken to heart; exits, search, choice, loyalty types
        talked = talks[0] if len(talks) == 1 else np.concatenate(talks)
        split.each(engine.hear_and_decide, pop, off, ctx, par, key, talked, choice, self._reason)
        if self.retention_floor is not None and not self._warming:
            self._hold_back(flows)
        # movers join their new firm, those who joined get their terms, a step of tenure (engine.close)
        # and the measures' tally of the state the step leaves
        churn, lost, won = np.zeros((chunks, len(CHURN_REASONS), n_firms)), np.zeros((chunks, n_firms)), np.zeros((chunks, n_firms))
        tallied = tally_arrays(chunks, n_firms)
        split.each(
            engine.close, pop, off, ctx, par, choice, self._reason, self._margin, churn, lost, won,
            level_thresholds(self.config.behaviour), window_steps(t, self.steps_per_year), *tallied,
        )
        flows.lost_to_rivals += lost.sum(axis=0)
        flows.won_from_rivals += won.sum(axis=0)
        for k, reason in enumerate(CHURN_REASONS):
            flows.churn[reason] += churn[:, k].sum(axis=0)
        money = money.sum(axis=0)
        flows.purchases += money[engine.M_OCCASIONS]
        flows.units += money[engine.M_UNITS]
        self._close_books(t, money, flows, tallied)  # 10. ledger and measures

    def run(self, progress=None) -> LoyaltyModel:
        """Run all steps of the scenario; ``progress`` is called with the step number after each."""
        while self.running and self.steps < self.n_steps:
            self.step()
            if progress is not None:
                progress(self.steps)
        return self

    # ------------------------------------------------------------------ phases

    def _apply_timeline(self, t: int, flows: StepFlows, adapt: bool = False) -> None:
        """Events of step ``t`` take effect. Customers of a firm that leaves the market lose
        it at once (churn reason ``firm_closed``) and become prospects again. A firm with price
        protection that cuts its price refunds the difference on its recent sales."""
        if t in self._timeline and t > 0:
            before = self.offers
            self.config = self._timeline[t]
            for agent in self.firm_agents:
                agent.config = self.config.firms[agent.name]
            self.rates = StepRates.of(self.config.behaviour, self.step_days, self.config.market.discount_rate)
            self._publish_offers(t, adapt)
            self._refunds[:] = self._price_protection_refunds(t, before, self.offers)
        else:
            self._publish_offers(t, adapt)
        if not self.offers.active.all():
            closed = np.zeros((self._split.chunks, self.offers.size))
            self._split.each(engine.orphan, self._pop, self.offers.active, closed)
            flows.churn["firm_closed"] += closed.sum(axis=0)

    def _price_protection_refunds(self, t: int, before, after) -> np.ndarray:
        """(F,) what each protected firm refunds when it cuts its price at step ``t``: the share
        of the price cut on its revenue of the last ``lever_costs.price_protection_days``."""
        cut = np.where(before.protected & (after.price < before.price), 1.0 - after.price / before.price, 0.0)
        if not cut.any():
            return np.zeros(cut.size)
        days = np.array([f.lever_costs.price_protection_days for f in self.config.firms.values()])
        revenue = self.ledger.accounts["revenue"]
        window = np.minimum(np.round(days / self.step_days).astype(int), t - 1)
        recent = np.array([revenue[t - w : t, f].sum() if w > 0 else 0.0 for f, w in enumerate(window)])
        return cut * recent

    def _publish_offers(self, t: int, adapt: bool = False) -> None:
        """Firms publish their offers; the step's derived terms follow (typical values last).

        Offers change only with timeline events and when a rewards programme starts or ends,
        so they are rebuilt only then; what firms' profit sharing promises and what their
        advertising describes are brought up to date every step."""
        key = (id(self.config), tuple(rewards_running(firm, t) for firm in self.config.firms.values()))
        if key != self._offers_key:
            self._offers_key = key
            self._build_offers(t)
        o, ctx = self.offers, self._ctx
        profit_share_rate = np.array([a.profit_share_rate for a in self.firm_agents]) * (o.profit_share > 0)
        ctx.profit_share_rate[:] = profit_share_rate
        ctx.entry_rate[:] = self._entry_reward_rate + profit_share_rate
        self._set_reference_prices(adapt)
        self._set_typical_values()

    def _build_offers(self, t: int) -> None:
        """The offers in force from step ``t``, and the terms derived from them alone."""
        o = self.offers = build_offers(self.config, t, self.reference_price)
        b = self.config.behaviour
        self._available = np.ascontiguousarray(o.serves & o.active)  # (S, F)
        self._entry_reward_rate = o.entry_reward_rate
        curve_x, curve_p = rules.search_curve(b)
        self._off = o.arrays()
        self._par = Params.of(self.config, self.rates)
        n_segments = len(self.segment_names)
        self._ctx = Context(
            typical=np.zeros(o.size),
            promised=np.zeros(o.size),
            norm=np.ones(n_segments),
            log_price=np.zeros((n_segments, o.size)),
            promise_term=b.expectation.promise_credibility * o.log_promise,
            entry_rate=np.zeros(o.size),
            profit_share_rate=np.zeros(o.size),
            points_keep=np.exp(-self.step_days / o.expiry_days),
            segment_terms=rules.segment_value_terms(list(self.config.segments), o),
            available=self._available,
            segment_entry=self._segment_entry,
            exit_chance=rules.per_step(self._segment_exit, self.rates.step_years),
            curve_x=curve_x,
            curve_p=curve_p,
            discount=np.exp(-np.arange(2 * self.n_steps + 2) * self._par.log_discount),
        )

    def _set_reference_prices(self, adapt: bool) -> None:
        """Each segment's reference price (:func:`sim.rules.reference_price`): the fair price and
        the price level the segment has adapted to, which moves (``adapt``, once a step) toward
        the prices its people saw last step: its firms' prices weighted by their customers in the
        segment, or the plain mean of the firms that serve it when it has no customers."""
        o, b = self.offers, self.config.behaviour.reference_price
        available = self._available
        if adapt:
            counts = self._segment_counts
            buyers = counts.sum(axis=1)
            plain = np.where(available, o.price, 0.0).sum(axis=1) / np.maximum(available.sum(axis=1), 1)
            seen = np.where(buyers > 0, (counts * o.price).sum(axis=1) / np.maximum(buyers, 1.0), plain)
            seen = np.where(available.any(axis=1) | (buyers > 0), seen, self._price_level)
            self._price_level[:] = rules.adapted_price_level(self._price_level, seen, self.rates.reference_weight)
        reference = rules.reference_price(self.reference_price, self._price_level, b.fair_weight)
        self._ctx.log_price[:] = rules.judged_log_price(np.log(o.price[None, :] / reference[:, None]), b.loss_aversion)

    def _set_typical_values(self) -> None:
        """What each firm's advertising describes (the value of its offer to its typical
        customer) and so what it leads people to expect: exp(typical + believed promise),
        times each person's demandingness; and each segment's comparison level, the value the
        market's firms deliver to its customers (in logs, the mean over the segment's customers
        of the value of their firm's offer)."""
        ctx, split, n_firms, n_segments = self._ctx, self._split, self.offers.size, len(self.segment_names)
        servable = np.zeros(n_firms, dtype=bool)
        sums, counts = np.zeros((split.chunks, n_segments, n_firms)), np.zeros((split.chunks, n_segments, n_firms))
        split.each(engine.offer_sums, self._pop, self._off, ctx, servable, sums, counts)
        sums, counts = sums.sum(axis=0), counts.sum(axis=0)  # (S, F) over each firm's own customers
        self._segment_counts = counts
        total, count = sums.sum(axis=0), counts.sum(axis=0)
        seg_total, seg_count = sums.sum(axis=1), counts.sum(axis=1)
        if (count == 0).any() or (seg_count == 0).any():
            # over everyone a firm can serve: for firms without customers, and segments without any
            every, everyone = np.zeros((split.chunks, n_segments, n_firms)), np.zeros((split.chunks, n_segments, n_firms))
            split.each(engine.offer_sums, self._pop, self._off, ctx, np.ones(n_firms, dtype=bool), every, everyone)
            every, everyone = every.sum(axis=0), everyone.sum(axis=0)
            empty = count == 0
            total, count = np.where(empty, every.sum(axis=0), total), np.where(empty, everyone.sum(axis=0), count)
            means = every / np.maximum(everyone, 1.0)  # each firm's mean value to the segment's people
            reachable = everyone > 0
            plain = np.where(reachable, means, 0.0).sum(axis=1) / np.maximum(reachable.sum(axis=1), 1)
            lonely = seg_count == 0
            seg_total, seg_count = np.where(lonely, plain, seg_total), np.where(lonely, 1.0, seg_count)
        ctx.typical[:] = np.where(count > 0, total / np.maximum(count, 1.0), 0.0)
        ctx.promised[:] = np.exp(ctx.typical + ctx.promise_term)
        ctx.norm[:] = np.exp(seg_total / np.maximum(seg_count, 1.0))

    def _initialise_customers(self) -> None:
        """Hand each firm its initial customers with a mature relationship (tenure, trust, attachment)."""
        pop, rng, market = self.population, self.rng, self.spec.market
        for f, firm in enumerate(self.config.firms.values()):
            if not firm.active:
                continue
            free = np.flatnonzero((pop.firm == PROSPECT) & self._available[pop.segment, f])
            take = min(free.size, int(round(firm.initial_share * pop.size)))
            chosen = rng.choice(free, size=take, replace=False) if take else free[:0]
            self._choice[:] = engine.STAY
            self._choice[chosen] = f
            self._split.each(engine.start, self._pop, self._off, self._ctx, self._par, self._choice)
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
        self._set_typical_values()
        own, promised = engine.own_values(self._pop, self._off, self._ctx, self._par, idx)
        e, level = b.expectation, pop.expectation_level[idx]
        # the fixed point of the expectation update (sim.rules.expectation_next), without noise
        anchors = (e.experience_rate * np.exp(own) + e.promise_rate * promised + e.market_rate * level * self._ctx.norm[pop.segment[idx]]
                   + e.standard_rate * level)
        weights = e.experience_rate + e.promise_rate + e.market_rate + e.standard_rate
        pop.expectation[idx] = anchors / weights if weights > 0 else promised
        pop.perceived_value[idx] = np.exp(own)
        pop.satisfaction[idx] = pop.satisfaction_avg[idx] = pop.perceived_value[idx] / pop.expectation[idx]
        o = self.offers
        spend = pop.purchases_per_year[idx] * pop.basket[idx] * o.price[firm] * o.demand[firm]
        pop.annual_spend[idx] = spend * -np.expm1(-years)
        pop.tier[idx] = engine.brackets(o.tier_spend, firm, pop.annual_spend[idx].astype(np.float64))
        pop.points[idx] = np.where(o.rewards_active[firm], rng.random(idx.size) * o.redemption_threshold[firm], 0.0)
        pop.stamps[idx] = np.where(o.punch_stamps[firm] > 0, np.floor(rng.random(idx.size) * o.punch_stamps[firm]), 0.0)
        joined = -np.expm1(-o.join_per_year[firm] * pop.community_propensity[idx] * years)
        pop.member[idx] = o.community[firm] & (rng.random(idx.size) < joined)
        pop.recommend[idx] = rules.recommend_score(pop.satisfaction_avg[idx], pop.trust[idx], pop.attachment[idx], b)
        self._choice[idx] = firm
        self._split.each(engine.decide, self._pop, self._off, self._ctx, self._par, np.uint64(0), self._choice, self._reason, False)
        self._choice[:] = engine.STAY

    def _hold_back(self, flows: StepFlows) -> None:
        """The retention counterfactual: hold back just enough of the focal firm's leavers
        (drawn at random from its own stream) that it keeps the floor's share this step."""
        focal = self.focal_index
        would = np.flatnonzero((self._choice != engine.STAY) & (self.population.firm == focal))
        floor = self.retention_floor[self.steps]
        allowed = (1.0 - floor) * flows.start_customers[focal]
        allowed = int(np.floor(allowed + self._intervention_rng.random()))  # unbiased rounding
        if would.size > allowed:
            self._choice[self._intervention_rng.choice(would, size=would.size - allowed, replace=False)] = engine.STAY

    def _close_books(self, t: int, money: np.ndarray, flows: StepFlows, tallied: tuple[np.ndarray, np.ndarray]) -> None:
        """Book every account, pay profit shares, record measures (``tallied``: the tally of
        the customers' state that :func:`sim.engine.close` took)."""
        o, ledger = self.offers, self.ledger
        years = self.rates.step_years
        ledger.book(t, "revenue", money[engine.M_REVENUE])
        ledger.book(t, "cost_of_goods", money[engine.M_GOODS])
        ledger.book(t, "service_cost", money[engine.M_SERVICE] + self._refunds)
        self._refunds[:] = 0.0
        ledger.book(t, "reward_cost", money[engine.M_REWARDS])
        members = money[engine.M_MEMBERS]
        ledger.book(t, "community_cost", np.where(o.active, members * o.member_cost_per_year * years + o.events_cost_per_year * years, 0.0))
        ledger.book(t, "acquisition_cost", np.where(o.active, o.marketing_per_year * years, 0.0))
        ledger.book(t, "fixed_cost", np.where(o.active, o.fixed_per_year * years, 0.0))
        before_sharing = ledger.profit(t)[t]
        revenue = ledger.accounts["revenue"][t]
        payouts = np.array(
            [a.share_profit(before_sharing[a.index], revenue[a.index], o.profit_share[a.index], int(o.profit_share_steps[a.index])) for a in self.firm_agents]
        )
        ledger.book(t, "reward_cost", payouts)
        self._record(t, flows, tallied)

    def _record(self, t: int, flows: StepFlows, tallied: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        values = compute(
            t, self.population, flows, self.ledger, self.offers, self.config.behaviour,
            self.metrics.table, self.steps_per_year, self.rates.discount_per_step, self._split, tallied,
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
        """The final state of every person as a pandas table (one row per customer or prospect)."""
        import pandas as pd

        return pd.DataFrame(
            {name: np.asarray(column[1], dtype=object)[column[0]] if isinstance(column, tuple) else column
             for name, column in self._customer_columns().items()}
        )

    def customers_table(self):
        """:meth:`customers_frame` as an Arrow table, built without copying the numbers (text
        columns as dictionaries): what ``customers.csv`` is written from."""
        import pyarrow as pa

        return pa.table(
            {name: pa.DictionaryArray.from_arrays(column[0], column[1]) if isinstance(column, tuple) else column
             for name, column in self._customer_columns().items()}
        )

    def _customer_columns(self) -> dict:
        """The columns of :meth:`customers_frame`: arrays, and text as (codes, labels) pairs
        (the empty label where a prospect has no firm, loyalty type or hold)."""
        from sim.population import HELD_BY, LOYALTY_TYPES

        pop = self.population
        customer = pop.firm >= 0

        def text(codes, labels):
            return np.where(customer, codes, len(labels)).astype(np.int16), [*labels, ""]

        return {
            "customer": np.arange(pop.size),
            "segment": (pop.segment.astype(np.int16), list(self.segment_names)),
            "firm": text(pop.firm, self.firm_names),
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
            "loyalty_type": text(pop.loyalty_type, LOYALTY_TYPES),
            "held_by": text(pop.held_by, HELD_BY),
            "recommend": pop.recommend,
            "repurchase_probability": pop.repurchase,
            "value_to_date": pop.value_to_date,
            "price_sensitivity": pop.price_sensitivity,
            "quality_sensitivity": pop.quality_sensitivity,
            "service_sensitivity": pop.service_sensitivity,
            "reward_sensitivity": pop.reward_sensitivity,
            "inertia": pop.inertia,
        }
