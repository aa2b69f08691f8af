"""What each firm offers in a step, as arrays over firms (one entry per firm).

Firms publish their offer at the start of every step (MODEL.md section 12.1); the
customer rules read these arrays, never the scenario objects, so a timeline event
only has to rebuild this table. Each entry is derived from the firm's strategy
keys; the derivations are the "Details" of the strategy families (ODD submodel
"Offers").
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, fields

import numpy as np

from sim.scenario import Firm, Scenario

#: Perceived-risk index of an offer: 1 with no guarantee, falling as guarantees and price protection remove risk.
PRICE_PROTECTION_RISK_CUT = 0.5


@dataclass(frozen=True)
class Offers:
    """Arrays of shape (F,) unless stated; F = number of firms in scenario order."""

    names: tuple[str, ...]
    active: np.ndarray  # bool: firm is in the market this step
    serves: np.ndarray  # bool (S, F): segment s can be served by firm f
    price: np.ndarray  # list price after the across-the-board discount
    log_price: np.ndarray  # log(price / fair price); customers judge price against their segment's reference (Context.log_price)
    demand: np.ndarray  # category demand at this price: (price / fair price) ^ -price_elasticity (purchase frequency factor)
    log_quality: np.ndarray
    log_service: np.ndarray  # log(service quality * staff): service and personnel value
    log_brand: np.ndarray
    log_time_cost: np.ndarray  # -log(speed)
    log_effort_cost: np.ndarray  # -log(delivery)
    log_risk_cost: np.ndarray  # -log(1 + guarantee + 0.5 * price protection)
    log_promise: np.ndarray
    personalisation: np.ndarray
    personalisation_days: np.ndarray
    failure_rate: np.ndarray
    recovery_rate: np.ndarray
    log_recovery_boost: np.ndarray
    log_failure_penalty: np.ndarray
    availability: np.ndarray
    recovery_cost: np.ndarray
    cost_per_purchase: np.ndarray
    lever_cost_per_purchase: np.ndarray  # what the value levers add to the cost of a purchase (LeverCosts)
    lever_cost_per_year: np.ndarray  # what they add per customer and year
    guarantee_claim: np.ndarray  # share of a failed step's spend refunded (guarantee * claims)
    protected: np.ndarray  # bool: price protection runs (a price cut refunds recent purchases)
    unit_cost: np.ndarray
    fixed_per_year: np.ndarray
    # rewards
    rewards_active: np.ndarray  # bool: the rewards family (points, tiers, punch card, ...) runs this step
    points_rate: np.ndarray  # points per money (0 when not running)
    points_entry: np.ndarray  # points part of the entry reward rate: points_rate * customer_point_value
    point_value: np.ndarray
    customer_point_value: np.ndarray  # value of a point to a customer (coalition multiplier)
    coalition_fee: np.ndarray
    redemption_threshold: np.ndarray
    expiry_days: np.ndarray  # inf when points never expire
    tier_spend: np.ndarray  # (F, T) min annual spend per tier, +inf padding; tier 0 = no tier
    tier_discount: np.ndarray  # (F, T)
    tier_points: np.ndarray  # (F, T) points multiplier
    tier_names: tuple[tuple[str, ...], ...]
    volume_spend: np.ndarray  # (F, V) brackets, +inf padding
    volume_discount: np.ndarray  # (F, V)
    punch_stamps: np.ndarray  # stamps per free purchase; 0 when no punch card
    profit_share: np.ndarray  # share of positive profit returned; 0 when none
    profit_share_steps: np.ndarray  # int: payout period in steps
    # community
    community: np.ndarray  # bool
    join_per_year: np.ndarray
    community_intensity: np.ndarray  # attachment drive of membership (1 = full care and 4 events/year)
    attachment_per_year: np.ndarray
    word_of_mouth_boost: np.ndarray
    member_cost_per_year: np.ndarray
    events_cost_per_year: np.ndarray
    # lock-in
    learning_cost: np.ndarray
    ecosystem_per_year: np.ndarray
    contract_days: np.ndarray  # 0 when the firm has no contracts
    exit_fee: np.ndarray
    # acquisition
    marketing_per_year: np.ndarray
    cost_per_contact: np.ndarray
    response_rate: np.ndarray
    awareness_bonus: np.ndarray

    @property
    def size(self) -> int:
        return len(self.names)

    def arrays(self) -> OfferArrays:
        """The numeric arrays as one tuple, the form the compiled step kernels take."""
        return OfferArrays(*(getattr(self, name) for name in OfferArrays._fields))

    @property
    def entry_reward_rate(self) -> np.ndarray:
        """Reward value per unit of spend a new customer can expect from each firm (fraction of spend):
        points at their value to customers, the punch card's free purchases, and the tier and
        volume discounts open to a customer with no spend history."""
        points = self.points_rate * self.customer_point_value
        punch = np.where(self.punch_stamps > 0, 1.0 / (self.punch_stamps + 1.0), 0.0)
        from sim.engine import brackets

        firms = np.arange(self.size)
        zero = np.zeros(self.size)
        tier = self.tier_discount[firms, brackets(self.tier_spend, firms, zero)]
        volume = self.volume_discount[firms, brackets(self.volume_spend, firms, zero)]
        return points + punch + tier + volume


#: The numeric fields of :class:`Offers` as a named tuple (see :meth:`Offers.arrays`).
OfferArrays = namedtuple("OfferArrays", [f.name for f in fields(Offers) if f.name not in ("names", "tier_names")])


def _pad(rows: list[list[float]], fill: float, first: float) -> np.ndarray:
    """Stack ragged per-firm lists into (F, 1 + max len), with column 0 = ``first``."""
    width = 1 + max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.float64)
    out[:, 0] = first
    for f, row in enumerate(rows):
        out[f, 1 : 1 + len(row)] = row
    return out


def lever_cost_per_purchase(firm: Firm) -> float:
    """What the firm's value levers add to the cost of one purchase occasion, relative to the
    market norm (index 1, full availability): service quality, staff, speed and delivery above
    the norm cost more, below it save; availability costs its stock holding; price protection its
    claims handling (:class:`sim.scenario.LeverCosts`)."""
    s, c = firm.service, firm.lever_costs
    return (
        c.service_quality * (s.quality - 1.0) + c.staff * (s.staff - 1.0) + c.speed * (s.speed - 1.0)
        + c.delivery * (s.delivery - 1.0) + c.availability * (s.availability - 1.0)
        + (c.price_protection if firm.price.price_protection else 0.0)
    )


def lever_cost_per_year(firm: Firm) -> float:
    """What the firm's levers cost per customer and year: personalisation, and the lock-in it
    builds (ecosystem and learning cost) and runs (contracts)."""
    c, lock = firm.lever_costs, firm.lock_in
    contracts = c.contracts if lock.contract_days > 0 else 0.0
    return c.personalisation * firm.product.personalisation + c.lock_in * (lock.ecosystem_per_year + lock.learning_cost) + contracts


def rewards_running(firm: Firm, step: int) -> bool:
    """Whether the firm's rewards programme runs at ``step``."""
    r = firm.rewards
    return r.enabled and r.start_step <= step and (r.end_step is None or step < r.end_step)


def build_offers(scenario: Scenario, step: int, reference_price: float) -> Offers:
    """The offers of all firms at ``step`` under ``scenario`` (the timeline already applied)."""
    firms: list[Firm] = list(scenario.firms.values())
    seg_names = [s.name for s in scenario.segments]
    step_days = scenario.market.step_days
    elasticity = scenario.behaviour.demand.price_elasticity

    def arr(get) -> np.ndarray:
        return np.array([get(f) for f in firms], dtype=np.float64)

    rewards_on = np.array([rewards_running(f, step) for f in firms])
    serves = np.array([[f.serves is None or s in f.serves for f in firms] for s in seg_names], dtype=bool).reshape(len(seg_names), len(firms))
    price = arr(lambda f: f.price.list * (1 - f.price.discount))
    coalition = arr(lambda f: f.rewards.coalition.value_multiplier if f.rewards.coalition.enabled else 1.0)
    # tables keep every firm's tiers even while its programme is off (then no tier can be held)
    tiers = [f.rewards.tiers for f in firms]
    volume = [f.rewards.volume_discounts for f in firms]
    tier_spend = _pad([[t.min_annual_spend for t in ts] for ts in tiers], np.inf, 0.0)
    tier_on = rewards_on[:, None]
    volume_spend = _pad([[v.min_annual_spend for v in vs] for vs in volume], np.inf, 0.0)
    return Offers(
        names=tuple(scenario.firms),
        active=np.array([f.active for f in firms], dtype=bool),
        serves=serves,
        price=price,
        log_price=np.log(price / reference_price),
        demand=np.exp(-elasticity * np.log(price / reference_price)),
        log_quality=np.log(arr(lambda f: f.product.quality)),
        log_service=np.log(arr(lambda f: f.service.quality * f.service.staff)),  # service and personnel value
        log_brand=np.log(arr(lambda f: f.product.brand)),
        log_time_cost=-np.log(arr(lambda f: f.service.speed)),
        log_effort_cost=-np.log(arr(lambda f: f.service.delivery)),
        log_risk_cost=-np.log1p(arr(lambda f: f.service.guarantee + PRICE_PROTECTION_RISK_CUT * f.price.price_protection)),
        log_promise=np.log(arr(lambda f: f.product.promise)),
        personalisation=arr(lambda f: f.product.personalisation),
        personalisation_days=arr(lambda f: f.product.personalisation_days),
        failure_rate=arr(lambda f: f.service.failure_rate),
        recovery_rate=arr(lambda f: f.service.recovery_rate),
        log_recovery_boost=np.log(arr(lambda f: f.service.recovery_boost)),
        log_failure_penalty=np.log(arr(lambda f: f.service.failure_penalty)),
        availability=arr(lambda f: f.service.availability if f.active else 0.0),  # a firm out of the market sells nothing
        recovery_cost=arr(lambda f: f.service.recovery_cost),
        cost_per_purchase=arr(lambda f: f.service.cost_per_purchase),
        lever_cost_per_purchase=arr(lever_cost_per_purchase),
        lever_cost_per_year=arr(lever_cost_per_year),
        guarantee_claim=arr(lambda f: f.service.guarantee * f.lever_costs.guarantee_claims),
        protected=np.array([f.price.price_protection for f in firms], dtype=bool),
        unit_cost=arr(lambda f: f.costs.unit_cost),
        fixed_per_year=arr(lambda f: f.costs.fixed_per_year),
        rewards_active=rewards_on,
        points_rate=np.where(rewards_on, arr(lambda f: f.rewards.points_rate), 0.0),
        points_entry=np.where(rewards_on, arr(lambda f: f.rewards.points_rate), 0.0) * arr(lambda f: f.rewards.point_value) * coalition,
        point_value=arr(lambda f: f.rewards.point_value),
        customer_point_value=arr(lambda f: f.rewards.point_value) * coalition,
        coalition_fee=np.where(rewards_on, arr(lambda f: f.rewards.coalition.fee_per_point if f.rewards.coalition.enabled else 0.0), 0.0),
        redemption_threshold=arr(lambda f: f.rewards.redemption_threshold),
        expiry_days=arr(lambda f: f.rewards.expiry_days if f.rewards.expiry_days is not None else np.inf),
        tier_spend=np.where(tier_on, tier_spend, np.where(np.arange(tier_spend.shape[1]) == 0, 0.0, np.inf)),
        tier_discount=np.where(tier_on, _pad([[t.discount for t in ts] for ts in tiers], 0.0, 0.0), 0.0),
        tier_points=np.where(tier_on, _pad([[t.points_multiplier for t in ts] for ts in tiers], 1.0, 1.0), 1.0),
        tier_names=tuple(("none", *(t.name for t in ts)) for ts in tiers),
        volume_spend=np.where(tier_on, volume_spend, np.where(np.arange(volume_spend.shape[1]) == 0, 0.0, np.inf)),
        volume_discount=np.where(tier_on, _pad([[v.discount for v in vs] for vs in volume], 0.0, 0.0), 0.0),
        punch_stamps=np.array([f.rewards.punch_card.stamps if f.rewards.punch_card.enabled and r else 0 for f, r in zip(firms, rewards_on)], dtype=np.float64),
        profit_share=np.array([f.rewards.profit_sharing.share if f.rewards.profit_sharing.enabled and r else 0.0 for f, r in zip(firms, rewards_on)]),
        profit_share_steps=np.array([max(1, round(f.rewards.profit_sharing.period_days / step_days)) for f in firms], dtype=np.int64),
        community=np.array([f.community.enabled for f in firms], dtype=bool),
        join_per_year=arr(lambda f: f.community.join_per_year),
        community_intensity=arr(
            lambda f: 0.5 * min(f.community.events_per_year / 4.0, 2.0) + 0.5 * f.community.care + 0.25 * f.community.co_creation
        ),
        attachment_per_year=arr(lambda f: f.community.attachment_per_year),
        word_of_mouth_boost=arr(lambda f: f.community.word_of_mouth_boost if f.community.enabled else 0.0),
        member_cost_per_year=arr(lambda f: f.community.cost_per_member_per_year),
        events_cost_per_year=arr(lambda f: f.community.events_per_year * f.community.event_cost if f.community.enabled else 0.0),
        learning_cost=arr(lambda f: f.lock_in.learning_cost),
        ecosystem_per_year=arr(lambda f: f.lock_in.ecosystem_per_year),
        contract_days=arr(lambda f: f.lock_in.contract_days),
        exit_fee=arr(lambda f: f.lock_in.exit_fee if f.lock_in.contract_days > 0 else 0.0),
        marketing_per_year=arr(lambda f: f.acquisition.budget_per_year),
        cost_per_contact=arr(lambda f: f.acquisition.cost_per_contact),
        response_rate=arr(lambda f: f.acquisition.response_rate),
        awareness_bonus=arr(lambda f: f.acquisition.awareness_bonus),
    )
