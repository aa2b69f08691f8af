"""Customers as a structure of arrays: one entry per customer, one array per state variable.

Every customer is still an agent you can inspect: ``population.customer(i)`` (or
``model.customer(i)``) returns a :class:`Customer` snapshot with its expectation,
perceived value, satisfaction, trust, attachment, switching cost, points, tenure
and loyalty type. The behaviour step kernels of :mod:`sim.engine` loop over the
arrays in compiled code, applying the rules of :mod:`sim.rules` to one customer at a time.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, fields

import numpy as np

from sim.scenario import TRAIT_RANGES, Scenario, Trait

PROSPECT = -1  # value of `firm` for people who buy from no firm

#: Why a retained customer stays: the decisive term of its stay-or-switch decision.
HELD_BY = ("none", "no_alternative", "not_looking", "price", "rewards", "trust", "switching_cost", "value", "rewards_lost")
#: Loyalty type (MODEL.md section 5) of each held_by code. Switching cost counts as inertia
#: (the effort of leaving); the separate `locked_in` measure reports it on its own. A customer
#: held by its firm's value without high trust and attachment is satisfied but not loyal: none.
#: A formerly incentive-held customer whose rewards are gone and who has not looked around since
#: stays by inertia (`rewards_lost`); if it leaves, it leaves for the rewards it lost.
LOYALTY_TYPES = ("none", "monopoly", "inertia", "price", "incentive", "trust")
LOYALTY_OF_HELD_BY = np.array([0, 1, 2, 3, 4, 5, 2, 0, 2], dtype=np.uint8)
HELD = {name: code for code, name in enumerate(HELD_BY)}

F32 = np.float32


@dataclass(eq=False)
class Population:
    """State of all customers (and prospects). Arrays have one entry per person."""

    # fixed traits
    segment: np.ndarray  # uint8
    price_sensitivity: np.ndarray
    quality_sensitivity: np.ndarray
    service_sensitivity: np.ndarray
    reward_sensitivity: np.ndarray
    inertia: np.ndarray
    purchases_per_year: np.ndarray
    basket: np.ndarray
    community_propensity: np.ndarray
    expectation_level: np.ndarray
    # relationship state
    firm: np.ndarray  # int8, PROSPECT for none
    tenure: np.ndarray  # int32, steps with the current firm
    expectation: np.ndarray  # a
    perceived_value: np.ndarray  # b of the last purchase
    satisfaction: np.ndarray  # c = b / a of the last purchase
    satisfaction_avg: np.ndarray  # running average of c
    experience: np.ndarray  # running average of log(purchase shock): how reliably the firm delivered
    trust: np.ndarray
    attachment: np.ndarray
    switching_cost: np.ndarray  # utility a move away would cost
    points: np.ndarray
    stamps: np.ndarray
    annual_spend: np.ndarray  # exponentially weighted spend over the last year
    tier: np.ndarray  # int8, 0 = no tier
    member: np.ndarray  # bool, member of its firm's community
    held_by: np.ndarray  # uint8 code in HELD_BY
    recommend: np.ndarray  # uint8 likelihood-to-recommend score 0..10
    repurchase: np.ndarray  # probability of still buying from the firm a year on
    value_to_date: np.ndarray  # discounted margin earned from the current relationship
    former_firm: np.ndarray  # int8: the firm the person last left (PROSPECT for none)
    grudge: np.ndarray  # utility held against it (fading), from the satisfaction it left with
    former_value: np.ndarray  # log value of that firm's offer to the person when it left
    buzz: np.ndarray  # (N, F) net word of mouth heard about each firm

    @property
    def size(self) -> int:
        return len(self.firm)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    def state(self) -> State:
        """The arrays as one tuple, the form the compiled step kernels take (no copies)."""
        return State(*(getattr(self, name) for name in State._fields))

    @property
    def loyalty_type(self) -> np.ndarray:
        return LOYALTY_OF_HELD_BY[self.held_by]

    def customer(self, i: int, firm_names: tuple[str, ...], segment_names: tuple[str, ...], tier_names=None) -> Customer:
        """A snapshot of person ``i`` as an agent."""
        if not 0 <= i < self.size:
            raise IndexError(f"customer {i} does not exist (population {self.size})")
        f = int(self.firm[i])
        tier = int(self.tier[i])
        return Customer(
            id=i,
            segment=segment_names[self.segment[i]],
            firm=firm_names[f] if f != PROSPECT else None,
            tenure_steps=int(self.tenure[i]),
            expectation=float(self.expectation[i]),
            perceived_value=float(self.perceived_value[i]),
            satisfaction=float(self.satisfaction[i]),
            satisfaction_avg=float(self.satisfaction_avg[i]),
            trust=float(self.trust[i]),
            attachment=float(self.attachment[i]),
            switching_cost=float(self.switching_cost[i]),
            points=float(self.points[i]),
            tier=(tier_names[f][tier] if tier_names and f != PROSPECT else str(tier)),
            member=bool(self.member[i]),
            loyalty_type=LOYALTY_TYPES[LOYALTY_OF_HELD_BY[self.held_by[i]]] if f != PROSPECT else "none",
            held_by=HELD_BY[self.held_by[i]] if f != PROSPECT else "none",
            recommend=int(self.recommend[i]),
            repurchase=float(self.repurchase[i]),
            traits={
                name: float(getattr(self, name)[i])
                for name in (
                    "price_sensitivity",
                    "quality_sensitivity",
                    "service_sensitivity",
                    "reward_sensitivity",
                    "inertia",
                    "purchases_per_year",
                    "basket",
                    "community_propensity",
                    "expectation_level",
                )
            },
        )


#: The population's arrays as a named tuple, field for field (see :meth:`Population.state`).
State = namedtuple("State", [f.name for f in fields(Population)])


@dataclass(frozen=True)
class Customer:
    """One customer, as an agent: its state at the moment it was looked at."""

    id: int
    segment: str
    firm: str | None
    tenure_steps: int
    expectation: float
    perceived_value: float
    satisfaction: float
    satisfaction_avg: float
    trust: float
    attachment: float
    switching_cost: float
    points: float
    tier: str
    member: bool
    loyalty_type: str
    held_by: str
    recommend: int
    repurchase: float
    traits: dict[str, float]

    def __str__(self) -> str:
        lines = [f"customer {self.id} ({self.segment}): " + (f"buys from {self.firm} for {self.tenure_steps} steps" if self.firm else "prospect")]
        for name in ("expectation", "perceived_value", "satisfaction", "satisfaction_avg", "trust", "attachment", "switching_cost", "points"):
            lines.append(f"  {name:<17} {getattr(self, name):.3f}")
        lines.append(f"  {'tier':<17} {self.tier}")
        lines.append(f"  {'member':<17} {self.member}")
        lines.append(f"  {'loyalty_type':<17} {self.loyalty_type} (held by {self.held_by})")
        lines.append(f"  {'recommend':<17} {self.recommend}/10")
        lines.append(f"  {'repurchase':<17} {self.repurchase:.3f} (chance of still buying in a year)")
        return "\n".join(lines)


def segment_counts(shares: list[float], n: int) -> np.ndarray:
    """Split ``n`` people over segments in proportion to ``shares`` (largest remainder)."""
    raw = np.asarray(shares, dtype=np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    short = n - counts.sum()
    if short > 0:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def draw_trait(value: float | Trait, name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = TRAIT_RANGES[name]
    if isinstance(value, Trait):
        draws = rng.normal(value.mean, value.sd, n) if value.sd > 0 else np.full(n, value.mean)
    else:
        draws = np.full(n, value)
    return np.clip(draws, lo, hi).astype(F32)


TRAITS = (
    ("price_sensitivity", "price_sensitivity"),
    ("quality_sensitivity", "quality_sensitivity"),
    ("service_sensitivity", "service_sensitivity"),
    ("reward_sensitivity", "reward_sensitivity"),
    ("inertia", "inertia"),
    ("purchases_per_year", "purchases_per_year"),
    ("basket", "basket"),
    ("community_propensity", "community_propensity"),
    ("expectation", "expectation_level"),
)


def create_population(scenario: Scenario, rng: np.random.Generator) -> Population:
    """People with segments and traits drawn from the scenario; everyone starts as a prospect.

    The model then hands each firm its initial customers (see ``LoyaltyModel._initialise_customers``).
    """
    n = scenario.market.population
    n_firms = len(scenario.firms)
    counts = segment_counts([s.share for s in scenario.segments], n)
    slots = {f.name: k for k, f in enumerate(fields(Population))}

    def array(name: str, fill, dtype=F32, shape: tuple[int, ...] = (n,)) -> np.ndarray:
        return allocate(shape, dtype, slots[name], fill)

    # people are numbered segment by segment: people of a segment are alike in distribution, so
    # the numbering carries no information, and the social network's ring (laid out in this
    # order, see sim.network) links people whose state lies close together in memory
    segment = array("segment", np.repeat(np.arange(len(counts), dtype=np.uint8), counts), np.uint8)
    traits: dict[str, np.ndarray] = {attr: array(attr, 0.0) for _, attr in TRAITS}
    for s, seg in enumerate(scenario.segments):
        members = np.flatnonzero(segment == s)
        for key, attr in TRAITS:
            traits[attr][members] = draw_trait(getattr(seg, key), key, members.size, rng)
    zeroed = ("experience", "trust", "attachment", "switching_cost", "points", "stamps", "annual_spend", "repurchase", "value_to_date", "grudge", "former_value")
    return Population(
        segment=segment,
        **traits,
        firm=array("firm", PROSPECT, np.int8),
        tenure=array("tenure", 0, np.int32),
        expectation=array("expectation", traits["expectation_level"]),
        perceived_value=array("perceived_value", 1.0),
        satisfaction=array("satisfaction", 1.0),
        satisfaction_avg=array("satisfaction_avg", 1.0),
        **{name: array(name, 0.0) for name in zeroed},
        tier=array("tier", 0, np.int8),
        member=array("member", False, bool),
        held_by=array("held_by", 0, np.uint8),
        recommend=array("recommend", 0, np.uint8),
        former_firm=array("former_firm", PROSPECT, np.int8),
        buzz=array("buzz", 0.0, F32, (n, n_firms)),
    )


#: Spacing, within a memory page, of the starts of the arrays of state (see :func:`allocate`).
SPREAD_BYTES = 7 * 64


def allocate(shape: tuple[int, ...] | int, dtype, slot: int, fill) -> np.ndarray:
    """An array filled with ``fill`` that starts ``slot`` * 448 bytes (modulo 4096) into a memory page.

    Large arrays are otherwise allocated at the start of a page, so the same person's entries
    in two arrays would share their address modulo 4096. The processor then takes a store to
    one and a later load from the other for a possible conflict and waits (4K aliasing); a
    kernel that reads and writes some twenty arrays per person ran a quarter slower for it.
    Each array of state has its own slot: cache-line aligned starts, no two of 64 alike."""
    shape = (shape,) if isinstance(shape, int) else shape
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buffer = np.empty(size * dtype.itemsize + 2 * 4096, dtype=np.uint8)
    start = -buffer.ctypes.data % 4096 + slot * SPREAD_BYTES % 4096
    out = np.frombuffer(buffer, dtype=dtype, count=size, offset=start).reshape(shape)
    out[...] = fill
    return out