"""The scenario schema: every key a scenario file may hold, with its default, unit and meaning.

This module is the single source of truth for scenario files. The reference in
``docs/scenario-reference.md`` and the JSON Schema for editors are generated from it
(``loyalty-sim reference``, ``loyalty-sim schema``); the model reads only the
validated, immutable :class:`Scenario` built here.

Units used throughout:

* time: steps (``market.steps``) of ``market.step_days`` days; durations in days;
  rates per year (converted to per-step probabilities by the model);
* money: currency units (the scenario's own currency);
* indices: dimensionless, 1.0 is the market norm (quality, service, brand ...);
* utility: log perceived-value units, so 0.1 is worth about 10% more value.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
#: Keys a timeline event may change (the market's size, clock and customers are fixed for a run).
TIMELINE_ROOTS = ("firms.", "behaviour.")
MAX_FIRMS = 100  # firm indices are stored in one signed byte per customer
MAX_SEGMENTS = 255  # segment indices in one unsigned byte
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def P(default: Any, unit: str, meaning: str, **constraints: Any) -> Any:
    """A scenario parameter: default, unit and a one-line meaning (shown in the reference)."""
    return Field(default, description=meaning, json_schema_extra={"unit": unit}, **constraints)


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- traits


class Trait(Section):
    """A customer trait drawn per customer from a normal distribution, clipped to its range."""

    mean: float = P(1.0, "trait unit", "mean of the trait in the segment")
    sd: float = P(0.0, "trait unit", "standard deviation across customers of the segment", ge=0)


TraitValue = float | Trait

# Allowed range of each per-customer trait (draws are clipped to it).
TRAIT_RANGES: dict[str, tuple[float, float]] = {
    "price_sensitivity": (0.0, 10.0),
    "quality_sensitivity": (0.0, 10.0),
    "service_sensitivity": (0.0, 10.0),
    "reward_sensitivity": (0.0, 20.0),
    "inertia": (0.0, 1.0),
    "purchases_per_year": (0.0, 10_000.0),
    "basket": (0.0, 1e9),
    "community_propensity": (0.0, 1.0),
    "expectation": (0.05, 20.0),
}


class Segment(Section):
    """A customer segment: its share of the population and the distribution of its traits."""

    name: Name = P("mainstream", "-", "segment name, used by firms' `serves` lists and in results")
    preset: Literal["price_seekers", "service_seekers", "community_minded", "busy_inert", "b2b_distributor"] | None = P(
        None, "-", "start from a shipped preset; keys given here override it"
    )
    share: float = P(1.0, "fraction", "share of the population in this segment", ge=0, le=1)
    price_sensitivity: TraitValue = P(1.0, "elasticity", "how strongly price lowers perceived value (log-log)")
    quality_sensitivity: TraitValue = P(1.0, "elasticity", "weight of product quality in perceived value")
    service_sensitivity: TraitValue = P(1.0, "elasticity", "weight of service and staff in perceived value")
    reward_sensitivity: TraitValue = P(1.0, "utility per unit reward rate", "how much a reward worth 1% of spend is valued, in % of value")
    inertia: TraitValue = P(0.3, "probability", "chance of not re-evaluating at all in a step when it would search")
    purchases_per_year: TraitValue = P(24.0, "purchases/year", "purchase frequency while a customer")
    basket: TraitValue = P(1.0, "units/purchase", "units bought per purchase (at the start of a relationship)")
    community_propensity: TraitValue = P(0.3, "probability", "inclination to join a firm's community when offered")
    expectation: TraitValue = P(1.0, "multiplier", "how demanding: expectation relative to what the firm delivers and promises")
    image_weight: float = P(0.3, "elasticity", "weight of brand image in perceived value", ge=0, le=10)
    convenience_weight: float = P(0.3, "elasticity", "weight of time and effort (speed, delivery) in perceived value", ge=0, le=10)
    risk_weight: float = P(0.2, "elasticity", "weight of risk (guarantees, price protection) in perceived value", ge=0, le=10)
    category_entry_per_year: float = P(0.25, "1/year", "rate at which prospects start shopping in the category on their own", ge=0, le=1000)
    category_exit_per_year: float = P(0.15, "1/year", "rate at which customers leave the category for reasons no firm controls (moving, life events)", ge=0, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("preset"), str) and data["preset"] in SEGMENT_PRESETS:
            merged = {"name": data["preset"], **SEGMENT_PRESETS[data["preset"]]}
            merged.update(data)
            return merged
        return data


SEGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "price_seekers": {
        "price_sensitivity": {"mean": 2.5, "sd": 0.5},
        "quality_sensitivity": {"mean": 0.6, "sd": 0.2},
        "service_sensitivity": {"mean": 0.4, "sd": 0.2},
        "reward_sensitivity": {"mean": 2.0, "sd": 0.6},
        "inertia": {"mean": 0.15, "sd": 0.1},
        "community_propensity": {"mean": 0.1, "sd": 0.05},
        "expectation": {"mean": 1.0, "sd": 0.08},
    },
    "service_seekers": {
        "price_sensitivity": {"mean": 0.6, "sd": 0.2},
        "quality_sensitivity": {"mean": 1.5, "sd": 0.3},
        "service_sensitivity": {"mean": 2.0, "sd": 0.4},
        "reward_sensitivity": {"mean": 0.6, "sd": 0.3},
        "inertia": {"mean": 0.3, "sd": 0.1},
        "community_propensity": {"mean": 0.3, "sd": 0.1},
        "expectation": {"mean": 1.05, "sd": 0.08},
    },
    "community_minded": {
        "price_sensitivity": {"mean": 0.9, "sd": 0.3},
        "quality_sensitivity": {"mean": 1.0, "sd": 0.3},
        "service_sensitivity": {"mean": 1.0, "sd": 0.3},
        "reward_sensitivity": {"mean": 1.0, "sd": 0.3},
        "inertia": {"mean": 0.3, "sd": 0.1},
        "community_propensity": {"mean": 0.8, "sd": 0.1},
        "expectation": {"mean": 1.0, "sd": 0.08},
    },
    "busy_inert": {
        "price_sensitivity": {"mean": 0.8, "sd": 0.3},
        "quality_sensitivity": {"mean": 0.8, "sd": 0.3},
        "service_sensitivity": {"mean": 0.8, "sd": 0.3},
        "reward_sensitivity": {"mean": 0.5, "sd": 0.2},
        "inertia": {"mean": 0.85, "sd": 0.08},
        "community_propensity": {"mean": 0.1, "sd": 0.05},
        "expectation": {"mean": 0.95, "sd": 0.08},
        "convenience_weight": 0.8,
    },
    "b2b_distributor": {
        "price_sensitivity": {"mean": 1.5, "sd": 0.4},
        "quality_sensitivity": {"mean": 1.2, "sd": 0.3},
        "service_sensitivity": {"mean": 1.5, "sd": 0.3},
        "reward_sensitivity": {"mean": 1.0, "sd": 0.3},
        "inertia": {"mean": 0.5, "sd": 0.1},
        "purchases_per_year": {"mean": 52.0, "sd": 10.0},
        "basket": {"mean": 20.0, "sd": 6.0},
        "community_propensity": {"mean": 0.2, "sd": 0.1},
        "expectation": {"mean": 1.05, "sd": 0.05},
        "category_exit_per_year": 0.1,
    },
}


# --------------------------------------------------------------------------- market


class Network(Section):
    """The social network that word of mouth travels over (customers and prospects)."""

    mean_degree: float = P(10.0, "ties/customer", "average number of social ties per person", ge=0, le=200)
    rewiring: float = P(0.1, "probability", "share of ties rewired to a random person (small-world); the rest link people of the same segment", ge=0, le=1)


class LoyaltyEconomics(Section):
    """Reichheld's sources of loyalty profit: how a relationship grows more profitable with tenure."""

    basket_growth_per_year: float = P(0.10, "fraction/year", "basket grows by this fraction per year of tenure", ge=0, le=10)
    serve_cost_decline_per_year: float = P(0.10, "fraction/year", "cost to serve falls by this fraction per year of tenure", ge=0, le=1)
    price_tolerance_per_year: float = P(0.10, "fraction/year", "price sensitivity falls by this fraction per year of tenure (tolerance of a premium)", ge=0, le=1)
    max_years: float = P(5.0, "years", "tenure beyond which these effects stop growing", ge=0, le=100)


class Market(Section):
    """The market: its size, its clock and its random seed."""

    population: int = P(10_000, "people", "customers and prospects simulated", ge=0, le=50_000_000)
    steps: int = P(60, "steps", "number of steps to simulate", ge=1, le=100_000)
    step_days: float = P(30.0, "days", "length of one step", gt=0, le=3660)
    seed: int = P(1, "-", "random seed: the same scenario and seed give the same results", ge=0, le=2**63 - 1)
    reference_price: float | None = P(None, "money/unit", "price regarded as normal; null means the mean list price of the firms active at the start", gt=0)
    discount_rate: float = P(0.10, "1/year", "discount rate for NPV and customer lifetime value", ge=0, le=10)
    initial_tenure_days: float = P(720.0, "days", "mean tenure of the customers firms have at the start", ge=0, le=36500)
    run_in_days: float = P(
        365.0, "days",
        "time simulated before step 0 with the strategies of step 0, so that reported outcomes start from the market's steady state (excluded from every reported outcome)",
        ge=0, le=3650,
    )
    network: Network = Network()
    loyalty_economics: LoyaltyEconomics = LoyaltyEconomics()


# --------------------------------------------------------------------------- behaviour


class SatisfactionRules(Section):
    """Satisfaction c = b / a and its levels."""

    generally_satisfied: float = P(0.90, "c", "satisfaction at or above which a customer is generally satisfied (below: dissatisfied)", gt=0, le=10)
    fairly_satisfied: float = P(1.00, "c", "satisfaction at or above which a customer is fairly satisfied", gt=0, le=10)
    highly_satisfied: float = P(1.10, "c", "satisfaction at or above which a customer is highly satisfied", gt=0, le=10)
    memory_days: float = P(90.0, "days", "time constant of the running average of satisfaction", gt=0, le=36500)
    experience_noise: float = P(0.10, "log value", "spread of perceived value between purchases (a bad day, a good one)", ge=0, le=3)

    @model_validator(mode="after")
    def _ordered(self) -> SatisfactionRules:
        if not self.generally_satisfied < self.fairly_satisfied < self.highly_satisfied:
            raise ValueError("satisfaction levels must rise: generally_satisfied < fairly_satisfied < highly_satisfied")
        return self


class ExpectationRules(Section):
    """How expectation a adapts to experience, to the firm's promise and to word of mouth."""

    experience_rate: float = P(1.0, "1/year", "speed at which expectation moves toward perceived value", ge=0, le=1000)
    promise_rate: float = P(1.0, "1/year", "speed at which expectation moves toward what the firm advertises", ge=0, le=1000)
    market_rate: float = P(1.5, "1/year", "speed at which expectation moves toward the comparison level: the value the market's firms deliver to the customer's segment (Woodruff, Cadotte and Jenkins 1983)", ge=0, le=1000)
    standard_rate: float = P(0.5, "1/year", "speed at which expectation moves toward the customer's own fixed standard: a normal offer at the fair price, times its demandingness (desires; Spreng, MacKenzie and Olshavsky 1996)", ge=0, le=1000)
    promise_credibility: float = P(0.6, "elasticity", "how much of an advertised promise people believe when judging a firm", ge=0, le=1)
    word_of_mouth_effect: float = P(0.05, "log value", "shift of a new customer's expectation per unit of net word of mouth it heard about the firm", ge=0, le=1)


class TrustRules(Section):
    """Trust grows with met expectations and falls fast on unrecovered failures."""

    met_threshold: float = P(0.95, "c", "satisfaction at or above which an experience counts as expectation met", gt=0, le=10)
    gain_per_year: float = P(1.0, "1/year", "speed at which trust approaches 1 while expectations are met", ge=0, le=1000)
    loss_per_year: float = P(1.5, "1/year", "speed at which trust decays while expectations are not met", ge=0, le=1000)
    failure_loss: float = P(0.3, "fraction", "share of trust lost at an unrecovered service failure or stock-out", ge=0, le=1)
    initial: float = P(0.3, "0-1", "trust of a new customer", ge=0, le=1)
    forgiveness: float = P(0.5, "0-1", "share of a failure's harm (to perceived value and to trust) that full trust forgives: tolerance grows with trust", ge=0, le=1)


class AttachmentRules(Section):
    """Emotional attachment grows with community, care and trust; it decays slowly."""

    trust_gain_per_year: float = P(0.3, "1/year", "growth of attachment per year at full trust", ge=0, le=1000)
    decay_per_year: float = P(0.2, "1/year", "decay of attachment per year", ge=0, le=1000)


class ReferencePriceRules(Section):
    """The reference price a purchase is judged against (Kalyanaram and Winer 1995; Mazumdar, Raj and Sinha 2005)."""

    adaptation_per_year: float = P(1.0, "1/year", "speed at which the reference price moves toward the prices a segment sees in the market (its firms' prices, weighted by their customers)", ge=0, le=1000)
    fair_weight: float = P(0.5, "0-1", "weight of the fair price (`market.reference_price`) in the reference price, the rest being the adaptive market price: how much of a price level people never get used to", ge=0, le=1)
    loss_aversion: float = P(2.0, "ratio", "how much more a price above the reference price weighs than one as far below it (a loss against the reference weighs more than a gain)", ge=1, le=10)


class DemandRules(Section):
    """Category demand: how much customers buy at the category's price level."""

    price_elasticity: float = P(0.6, "elasticity", "category price elasticity of purchase frequency: occasions scale with (price / fair price) ^ -elasticity", ge=0, le=10)


class MemoryRules(Section):
    """Memory of former firms: a customer who left a firm dissatisfied remembers it."""

    grudge_weight: float = P(3.0, "utility per log c", "utility held against a former firm per unit of -log(satisfaction) when the customer left it", ge=0, le=100)
    memory_days: float = P(365.0, "days", "time constant over which a grudge fades", gt=0, le=36500)


class LoyaltyRules(Section):
    """Which customers count as trust-loyal (the rest held by their firm's value are satisfied but not loyal)."""

    trust_threshold: float = P(0.6, "0-1", "trust from which a customer held by its firm's value and relationship counts as trust-loyal", ge=0, le=1)
    attachment_threshold: float = P(0.3, "0-1", "attachment from which a customer held by its firm's value and relationship counts as trust-loyal", ge=0, le=1)


class SearchRules(Section):
    """The non-linear satisfaction-loyalty curve: how likely a customer is to look around."""

    curve: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = P(
        [[0.70, 0.99], [0.90, 0.80], [0.95, 0.30], [1.10, 0.20], [1.25, 0.03]],
        "[c, probability/year]",
        "points (satisfaction, chance per year of searching) joined by straight lines; flat beyond the ends",
        min_length=1,
    )

    @field_validator("curve")
    @classmethod
    def _curve_ok(cls, curve: list[list[float]]) -> list[list[float]]:
        xs = [x for x, _ in curve]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError("search curve points must have strictly increasing satisfaction")
        if any(not 0 <= p <= 1 for _, p in curve):
            raise ValueError("search curve probabilities must lie in [0, 1]")
        return curve


class ChoiceRules(Section):
    """The choice among firms (multinomial logit) and the terms of its utility."""

    scale: float = P(0.10, "utility", "logit scale: smaller means choices follow utility more strictly", gt=0, le=100)
    outside_value: float = P(-0.30, "utility", "utility of leaving the category (buying from no firm)", ge=-100, le=100)
    trust_weight: float = P(0.15, "utility", "utility of full trust in the current firm", ge=0, le=100)
    attachment_weight: float = P(0.50, "utility", "utility of full emotional attachment to the current firm", ge=0, le=100)
    word_of_mouth_weight: float = P(0.10, "utility", "utility per unit of net word of mouth heard about a firm (saturating)", ge=0, le=100)
    decision_horizon_days: float = P(365.0, "days", "horizon over which one-off switching costs are weighed against better offers", gt=0, le=36500)
    psychological_cost: float = P(0.02, "utility", "psychological cost of changing firm", ge=0, le=100)


class WordOfMouthRules(Section):
    """Word of mouth: promoters and detractors telling their ties (seed figures as defaults)."""

    positive_reach_per_year: float = P(12.0, "people/year", "conversations a satisfied customer (promoter) has about its firm", ge=0, le=10_000)
    negative_reach_per_year: float = P(20.0, "people/year", "conversations a dissatisfied customer (detractor) has about its firm", ge=0, le=10_000)
    memory_days: float = P(90.0, "days", "time constant over which what people heard fades", gt=0, le=36500)
    referral_rate: float = P(0.5, "1/year", "rate at which a prospect who heard good things starts shopping, per unit of buzz (one in eight of those told acts on it, at the default 90-day memory: most who say they would come do not)", ge=0, le=10_000)


class NpsRules(Section):
    """Likelihood to recommend (0-10) from satisfaction, trust and attachment."""

    satisfaction_weight: float = P(10.0, "per log c", "weight of log satisfaction", ge=0, le=1000)
    trust_weight: float = P(2.0, "-", "weight of trust (centred on 0.5)", ge=0, le=1000)
    attachment_weight: float = P(2.0, "-", "weight of attachment", ge=0, le=1000)
    offset: float = P(1.2, "-", "baseline: likelihood to recommend at c = 1, trust 0.5, no attachment is 10 * logistic(offset)", ge=-100, le=100)
    word_of_mouth_weight: float = P(1.0, "-", "weight of what the customer heard of its own firm (tanh of net word of mouth): others' praise or criticism sways one's own recommendation", ge=0, le=1000)


class Behaviour(Section):
    """Coefficients of customer behaviour, shared by all customers (traits vary per customer)."""

    satisfaction: SatisfactionRules = SatisfactionRules()
    expectation: ExpectationRules = ExpectationRules()
    trust: TrustRules = TrustRules()
    attachment: AttachmentRules = AttachmentRules()
    reference_price: ReferencePriceRules = ReferencePriceRules()
    demand: DemandRules = DemandRules()
    search: SearchRules = SearchRules()
    choice: ChoiceRules = ChoiceRules()
    memory: MemoryRules = MemoryRules()
    loyalty: LoyaltyRules = LoyaltyRules()
    word_of_mouth: WordOfMouthRules = WordOfMouthRules()
    nps: NpsRules = NpsRules()


# --------------------------------------------------------------------------- firm strategy


class Price(Section):
    """Price lever."""

    list: float = P(10.0, "money/unit", "list price", gt=0, le=1e9)
    discount: float = P(0.0, "fraction", "across-the-board discount off the list price", ge=0, lt=1)
    price_protection: bool = P(False, "-", "price-protection promise (refund if the price drops): lowers perceived risk")


class Product(Section):
    """Product, promise, image and personalisation levers."""

    quality: float = P(1.0, "index", "product quality (1 = market norm)", gt=0, le=100)
    promise: float = P(1.0, "ratio", "advertised value relative to what is really delivered (1 honest, >1 over-promise)", gt=0, le=10)
    brand: float = P(1.0, "index", "brand image and social responsibility (image value)", gt=0, le=100)
    personalisation: float = P(0.0, "fraction", "CRM fit: value gained once the firm has learnt a customer", ge=0, le=2)
    personalisation_days: float = P(180.0, "days", "tenure over which the firm learns a customer", gt=0, le=36500)


class Service(Section):
    """Service lever: quality, failures and their recovery, convenience, availability."""

    quality: float = P(1.0, "index", "service quality: response, complaint handling (1 = market norm)", gt=0, le=100)
    staff: float = P(1.0, "index", "personnel value: staff training and courtesy (1 = market norm)", gt=0, le=100)
    failure_rate: float = P(0.05, "probability", "chance that a step's purchases meet a service failure", ge=0, le=1)
    recovery_rate: float = P(0.3, "probability", "chance that a failure is recovered (service recovery)", ge=0, le=1)
    recovery_boost: float = P(0.95, "ratio", "perceived value of a recovered failure relative to a normal purchase (above 1 would be the recovery paradox, which rarely holds for loyalty: de Matos, Henrique and Rossi 2007)", gt=0, le=10)
    failure_penalty: float = P(0.6, "ratio", "perceived value of an unrecovered failure relative to a normal purchase", gt=0, le=10)
    recovery_cost: float = P(5.0, "money/recovery", "cost of recovering one failure (complaint handling, compensation)", ge=0, le=1e9)
    speed: float = P(1.0, "index", "speed, pre-ordering (time cost falls as speed rises)", gt=0, le=100)
    delivery: float = P(1.0, "index", "delivery, installation, channels (effort cost falls as it rises)", gt=0, le=100)
    guarantee: float = P(0.0, "fraction", "guarantees and insurance: share of perceived risk removed", ge=0, le=1)
    availability: float = P(1.0, "probability", "chance the product is in stock (a stock-out is a failed purchase)", ge=0, le=1)
    cost_per_purchase: float = P(0.5, "money/purchase", "cost to serve one purchase (at the start of a relationship)", ge=0, le=1e9)


class Tier(Section):
    """One tier of a tiered programme (e.g. member / gold card)."""

    name: Name = P("member", "-", "tier name")
    min_annual_spend: float = P(0.0, "money/year", "annual spend needed to hold the tier", ge=0)
    discount: float = P(0.0, "fraction", "price discount for holders", ge=0, lt=1)
    points_multiplier: float = P(1.0, "ratio", "points earned relative to the base rate", ge=0, le=100)


class PunchCard(Section):
    """Punch card: after `stamps` purchases the next one is free (stay 10 nights, get 1 free)."""

    enabled: bool = P(False, "-", "run a punch card")
    stamps: int = P(10, "purchases", "purchases needed for a free one", ge=1, le=10_000)


class Coalition(Section):
    """Coalition points accepted by partners (airline miles): points are worth more to customers."""

    enabled: bool = P(False, "-", "points are coalition points")
    value_multiplier: float = P(1.3, "ratio", "value of a point to customers relative to its cost to the firm", gt=0, le=100)
    fee_per_point: float = P(0.0, "money/point", "fee paid to the coalition per point issued", ge=0, le=1e6)


class ProfitSharing(Section):
    """Profit sharing: a share of profit returned to customers pro rata to their spend."""

    enabled: bool = P(False, "-", "share profit with customers")
    share: float = P(0.1, "fraction", "share of positive profit returned", ge=0, le=1)
    period_days: float = P(365.0, "days", "payout period", gt=0, le=36500)


class VolumeDiscount(Section):
    """A volume-discount bracket for repeat buyers."""

    min_annual_spend: float = P(0.0, "money/year", "annual spend from which the discount applies", ge=0)
    discount: float = P(0.0, "fraction", "discount off the price", ge=0, lt=1)


class Rewards(Section):
    """Rewards: points, tiers, punch card, coalition, profit sharing, volume discounts."""

    enabled: bool = P(False, "-", "run the rewards programme: points and everything configured below it (tiers, volume discounts, and the punch card, coalition and profit sharing when switched on)")
    start_step: int = P(0, "step", "step from which the programme runs", ge=0)
    end_step: int | None = P(None, "step", "step at which the programme ends (null: never)", ge=0)
    points_rate: float = P(0.05, "points/money", "points earned per unit of money spent", ge=0, le=1000)
    point_value: float = P(1.0, "money/point", "what a point is worth when redeemed", ge=0, le=1e6)
    redemption_threshold: float = P(20.0, "points", "balance needed to redeem (redeemed in multiples of it)", gt=0)
    expiry_days: float | None = P(365.0, "days", "mean age at which unredeemed points expire (null: never)", gt=0)
    tiers: list[Tier] = P([], "-", "tiers from lowest to highest annual spend (need `enabled`)")
    punch_card: PunchCard = PunchCard()
    coalition: Coalition = Coalition()
    profit_sharing: ProfitSharing = ProfitSharing()
    volume_discounts: list[VolumeDiscount] = P([], "-", "volume-discount brackets, lowest first")

    @model_validator(mode="after")
    def _ordered(self) -> Rewards:
        for label, items in (("tiers", self.tiers), ("volume_discounts", self.volume_discounts)):
            spends = [t.min_annual_spend for t in items]
            if spends != sorted(spends):
                raise ValueError(f"{label} must be listed from lowest to highest min_annual_spend")
        if self.end_step is not None and self.end_step < self.start_step:
            raise ValueError("end_step must not be before start_step")
        return self


class Community(Section):
    """Community: club membership, events, member care and co-creation."""

    enabled: bool = P(False, "-", "run a customer community / club")
    join_per_year: float = P(1.0, "1/year", "rate at which inclined customers join (times their community_propensity)", ge=0, le=1000)
    events_per_year: float = P(4.0, "events/year", "club events held", ge=0, le=1000)
    event_cost: float = P(0.0, "money/event", "fixed cost of one event", ge=0)
    care: float = P(0.5, "0-1", "member care: birthdays, surprise help", ge=0, le=1)
    co_creation: float = P(0.0, "0-1", "members take part in designing products", ge=0, le=1)
    attachment_per_year: float = P(0.6, "1/year", "attachment growth of a member at full care and 4 events a year", ge=0, le=1000)
    word_of_mouth_boost: float = P(0.5, "ratio", "extra word of mouth from members (0.5 = 50% more)", ge=0, le=100)
    cost_per_member_per_year: float = P(5.0, "money/member/year", "cost of each member", ge=0)


class LockIn(Section):
    """Lock-in: learning cost, ecosystem, contracts (what leaving would cost)."""

    learning_cost: float = P(0.0, "money", "one-off cost to a customer of learning another firm's product", ge=0)
    ecosystem_per_year: float = P(0.0, "money/year of tenure", "value a customer would lose per year of tenure by leaving (apps, accessories)", ge=0)
    contract_days: float = P(0.0, "days", "length of a contract, renewed automatically (0: no contracts)", ge=0, le=36500)
    exit_fee: float = P(0.0, "money", "fee for leaving, pro-rated to the part of the contract period still to run", ge=0)


class Acquisition(Section):
    """Marketing to prospects."""

    budget_per_year: float = P(0.0, "money/year", "marketing budget", ge=0)
    cost_per_contact: float = P(1.0, "money/contact", "cost of reaching one prospect", gt=0)
    response_rate: float = P(0.1, "probability", "chance that a reached prospect starts shopping", ge=0, le=1)
    awareness_bonus: float = P(0.1, "utility", "advantage of this firm in the choice of prospects it reached", ge=0, le=100)


class LeverCosts(Section):
    """What each value lever costs the firm, beyond the market norm (1.0) of its index: raising a lever
    raises the cost per purchase or per customer, cutting it below the norm saves (the cost to serve
    never falls below 0)."""

    service_quality: float = P(0.4, "money/purchase per index unit", "cost per purchase of each unit of `service.quality` above 1 (response, complaint handling)", ge=0, le=1e6)
    staff: float = P(0.3, "money/purchase per index unit", "cost per purchase of each unit of `service.staff` above 1 (training, staffing)", ge=0, le=1e6)
    speed: float = P(0.2, "money/purchase per index unit", "cost per purchase of each unit of `service.speed` above 1", ge=0, le=1e6)
    delivery: float = P(0.3, "money/purchase per index unit", "cost per purchase of each unit of `service.delivery` above 1 (delivery, installation, channels)", ge=0, le=1e6)
    availability: float = P(1.0, "money/purchase per unit", "cost per purchase of availability (stock holding): each 0.01 of `service.availability` costs 0.01 of this", ge=0, le=1e6)
    guarantee_claims: float = P(1.0, "fraction", "share of a failed step's spend refunded per unit of `service.guarantee` (claims)", ge=0, le=10)
    price_protection: float = P(0.05, "money/purchase", "cost per purchase of running price protection (claims handling), besides the refunds paid when the firm's price falls", ge=0, le=1e6)
    price_protection_days: float = P(30.0, "days", "a price cut refunds the difference on purchases of this many days before it", ge=0, le=3650)
    personalisation: float = P(10.0, "money/customer/year per unit", "yearly cost per customer of each unit of `product.personalisation` (CRM, data, recommendations)", ge=0, le=1e6)
    lock_in: float = P(0.3, "fraction/year", "yearly cost per customer as a share of the ecosystem value it holds per year of tenure and of its learning cost (building and running the ecosystem)", ge=0, le=100)
    contracts: float = P(2.0, "money/customer/year", "yearly cost per customer of running contracts (when `lock_in.contract_days` > 0)", ge=0, le=1e6)


class Costs(Section):
    """Costs other than those of the strategy levers."""

    unit_cost: float = P(6.0, "money/unit", "cost of goods per unit sold", ge=0)
    fixed_per_year: float = P(0.0, "money/year", "fixed cost", ge=0)


class Firm(Section):
    """A firm and its strategy."""

    role: Literal["focal", "competitor"] = P("competitor", "-", "the focal firm is the one whose strategy is studied (first firm if none is marked)")
    active: bool = P(True, "-", "whether the firm is in the market (set it in the timeline for entry or exit)")
    serves: list[str] | None = P(None, "-", "segments the firm can serve (null: all)")
    initial_share: float = P(0.2, "fraction", "share of the population that are its customers at the start", ge=0, le=1)
    price: Price = Price()
    product: Product = Product()
    service: Service = Service()
    rewards: Rewards = Rewards()
    community: Community = Community()
    lock_in: LockIn = LockIn()
    acquisition: Acquisition = Acquisition()
    costs: Costs = Costs()
    lever_costs: LeverCosts = LeverCosts()


class Event(Section):
    """A timeline event: at step `at`, set scenario keys to new values."""

    at: int = P(0, "step", "step at whose start the change takes effect", ge=0)
    set: dict[str, Any] = P({}, "-", "dotted key paths and their new values, e.g. firms.focal.price.list: 9")


class Scenario(Section):
    """A complete scenario: the market, its customers, its firms and a timeline of changes."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = P("scenario", "-", "short name used for the results folder (letters, digits, - and _)")
    title: str = P("", "-", "title shown on charts and reports")
    description: str = P("", "-", "what the scenario shows")
    market: Market = Market()
    behaviour: Behaviour = Behaviour()
    segments: list[Segment] = P([Segment()], "-", "customer segments; shares sum to 1", min_length=1, max_length=MAX_SEGMENTS)
    firms: dict[Name, Firm] = P({"focal": Firm(role="focal")}, "-", "firms by name: one focal firm and any competitors", min_length=1, max_length=MAX_FIRMS)
    timeline: list[Event] = P([], "-", "changes that take effect during the run")

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Scenario:
        if not (info.context or {}).get("defer_consistency"):
            problems = self.consistency_problems()
            if problems:
                raise ValueError("; ".join(f"{'.'.join(map(str, path))}: {message}" for path, message in problems))
        return self

    def consistency_problems(self) -> list[tuple[tuple, str]]:
        """Problems that involve several keys at once, each with the key path it concerns."""
        problems: list[tuple[tuple, str]] = []
        total = sum(s.share for s in self.segments)
        if abs(total - 1.0) > 1e-6:
            problems.append((("segments",), f"segment shares must sum to 1, they sum to {total:g}"))
        names = [s.name for s in self.segments]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.append((("segments", i, "name"), f"duplicate segment name '{name}' (give presets used twice a name)"))
        focal = [n for n, f in self.firms.items() if f.role == "focal"]
        for extra in focal[1:]:
            problems.append((("firms", extra, "role"), f"only one firm may be focal; '{focal[0]}' already is"))
        shares = sum(f.initial_share for f in self.firms.values())
        if shares > 1 + 1e-9:
            problems.append((("firms",), f"initial_share values sum to {shares:g}, more than the whole population"))
        for fname, firm in self.firms.items():
            for j, seg in enumerate(firm.serves or []):
                if seg not in names:
                    hint = difflib.get_close_matches(seg, names, n=1)
                    problems.append(
                        (("firms", fname, "serves", j), f"unknown segment '{seg}'" + (f" (did you mean '{hint[0]}'?)" if hint else f"; segments are {names}"))
                    )
        for i, event in enumerate(self.timeline):
            if event.at > self.market.steps:
                problems.append((("timeline", i, "at"), f"step {event.at} is after the last step ({self.market.steps})"))
            for key in event.set:
                if not key.startswith(TIMELINE_ROOTS):
                    problems.append((("timeline", i, "set", key), f"'{key}' cannot change during a run: only keys under {', '.join(r.rstrip('.') for r in TIMELINE_ROOTS)} can"))
        return problems

    # -- derived views -------------------------------------------------------

    @property
    def focal_firm(self) -> str:
        """Name of the focal firm (the one marked focal, else the first)."""
        for name, firm in self.firms.items():
            if firm.role == "focal":
                return name
        return next(iter(self.firms))

    def resolved(self) -> dict[str, Any]:
        """The scenario as plain data with every default filled in."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """A content hash of the resolved scenario (stable across runs and machines)."""
        canonical = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- helpers on key paths

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def split_key_path(path: str) -> list[str | int]:
    """'firms.focal.rewards.tiers[1].discount' -> ['firms', 'focal', 'rewards', 'tiers', 1, 'discount']."""
    parts: list[str | int] = []
    for raw in path.split("."):
        indices: list[int] = []
        while (m := _INDEX.match(raw)) is not None:
            raw, idx = m.group(1), int(m.group(2))
            indices.insert(0, idx)
        if raw == "":
            raise KeyError(f"empty key in '{path}'")
        parts.append(raw)
        parts.extend(indices)
    return parts


def set_key_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at dotted `path` inside plain scenario data, creating mappings as needed.

    Raises KeyError with a readable message (and a 'did you mean') when the path does not
    name a scenario key.
    """
    parts = split_key_path(path)
    node: Any = data
    model: Any = Scenario
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise KeyError(f"'{path}': index [{part}] is out of range")
            if last:
                node[part] = value
            else:
                node = node[part]
            continue
        fields = _fields_of(model, node)
        if fields is not None and part not in fields:
            hint = difflib.get_close_matches(part, list(fields), n=1)
            raise KeyError(f"'{path}': unknown key '{part}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        if not isinstance(node, dict):
            raise KeyError(f"'{path}': '{part}' is not inside a mapping")
        if last:
            node[part] = value
            return
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
        model = _child_model(model, part)


def _fields_of(model: Any, node: Any) -> dict[str, Any] | None:
    """Allowed keys at this level: a model's fields, or the keys present in a free mapping."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_fields
    if model == "firms" and isinstance(node, dict):
        return dict.fromkeys(node)
    return None


def _child_model(model: Any, key: str) -> Any:
    if model is Scenario and key == "firms":
        return "firms"
    if model == "firms":
        return Firm
    if isinstance(model, type) and issubclass(model, BaseModel):
        ann = model.model_fields[key].annotation
        return _unwrap(ann)
    return None


def _unwrap(annotation: Any) -> Any:
    """The model class inside Optional[...] / list[...] / unions, if any."""
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap(arg)
        if found is not None:
            return found
    return None
