"""Behaviour laws: the directions the model must obey (MODEL.md section 0, "Directions are laws").

A *law* states a direction: "lever L, changed by a given amount, moves measure M of firm F
up / down / not up / not down". It is checked as a paired comparison with common random
numbers: for each replication seed, the base scenario and the changed scenario run with the
same seed (the engine's draws are keyed by seed, customer and decision), the measure is
computed in both, and the 95% Student-t interval of the mean difference over replications
(:func:`sim.experiments.interval`) decides:

========== =============================================================
direction  passes when
========== =============================================================
up         the interval's lower bound is > 0
down       the interval's upper bound is < 0
not up     the lower bound is <= ``tolerance`` (not significantly positive)
not down   the upper bound is >= ``-tolerance``
========== =============================================================

A paired "not up" / "not down" law's tolerance is at least :data:`NEGLIGIBLE` (0.2%) of the
measure's level in the base scenario: common random numbers make even a negligible change
significant, and these laws forbid material moves.

The laws are data: :data:`LAWS` is a table of records, each with an id, a statement in
words, its lever(s) (:class:`Lever`: dotted scenario overrides, from the start or as a
timeline event at a step, or a structural edit such as dropping the rivals), its measure
(:class:`Measure`: a column of the metrics frame over a window), the firm it concerns, the
direction and an ``applies`` predicate. Besides the paired form (:class:`Paired`) there are

* :class:`Contrast`: one scenario, the difference of a measure between two firms;
* :class:`Level`: one scenario, a measure against a fixed threshold;
* :class:`Compound`: several variants combined into one number per seed (diminishing
  returns, a difference of two paired differences);
* :class:`Shape`: a sweep over levels of one key whose best level must be interior;
* :class:`AnyOf`: passes when one of its laws passes;
* :class:`Micro`: a deterministic check of a rule of :mod:`sim.rules`.

Markets are the shipped scenario files, shrunk for speed (:func:`shipped_markets`), and
random but sensible generated markets (:func:`generate_market`), so that no single market
can be tuned. :func:`check` checks one law on one market; :func:`check_all` many on many.

A law whose scenario key, metrics column or rule does not exist (yet) is *skipped* with the
reason, not crashed: see :func:`requirements` for what each law needs.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.scenario import SEGMENT_PRESETS, Scenario, set_key_path, split_key_path

UP, DOWN, NOT_UP, NOT_DOWN = "up", "down", "not up", "not down"
DIRECTIONS = (UP, DOWN, NOT_UP, NOT_DOWN)
MID = "mid"  # a lever's step: the middle of the run (market.steps // 2)
FOCAL, RIVAL, ENTRANT, TWIN = "{focal}", "{rival}", "entrant", "twin"
ALL_FIRMS = "*"  # a measure over the rows of every firm
#: The shipped scenario files the laws run on, shrunk to this size (keys as for --set).
SHIPPED = ("starter", "price_led", "rewards_led", "service_led", "community_led")
SHRINK = {"market.population": 4000, "market.steps": 48}
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
#: The money accounts whose sum is a firm's cost (sim.ledger.COSTS).
COST_ACCOUNTS = ("cost_of_goods", "service_cost", "reward_cost", "community_cost", "acquisition_cost", "fixed_cost")
#: A law is skipped on a market where a firm it concerns has fewer customers than this on average.
MIN_CUSTOMERS = 50
VOLUME = "volume"  # units bought: column `purchases` when the metrics have it, else revenue / price


class Unavailable(Exception):
    """A law cannot be checked on a market (a key, column, firm or rule it needs is missing)."""


# --------------------------------------------------------------------------- verdicts


def verdict(direction: str, low: float, high: float, tolerance: float = 0.0) -> bool:
    """Whether an interval [low, high] of a mean difference satisfies ``direction``.
    ``tolerance`` relaxes "not up" / "not down" (a difference up to it counts as not up)."""
    if direction == UP:
        return low > 0.0
    if direction == DOWN:
        return high < 0.0
    if direction == NOT_UP:
        return low <= tolerance
    if direction == NOT_DOWN:
        return high >= -tolerance
    raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")


@dataclass(frozen=True)
class Check:
    """One tested quantity of a law: the mean over replications and its 95% interval."""

    label: str
    direction: str
    mean: float
    low: float
    high: float
    n: int
    tolerance: float = 0.0

    @property
    def passed(self) -> bool:
        return verdict(self.direction, self.low, self.high, self.tolerance)

    def describe(self) -> str:
        tol = f", tolerance {self.tolerance:g}" if self.tolerance and self.direction in (NOT_UP, NOT_DOWN) else ""
        return f"{self.label} {fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}] (expected {self.direction}{tol}, n={self.n})"


def check_values(label: str, values: Sequence[float], direction: str, tolerance: float = 0.0) -> Check:
    """The :class:`Check` of per-replication values (NaN values are left out)."""
    from sim.experiments import interval

    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Check(label, direction, math.nan, math.nan, math.nan, 0, tolerance)
    mean, low, high = interval(arr)
    return Check(label, direction, mean, low, high, int(arr.size), tolerance)


def fmt(x: float) -> str:
    """A number for a message: signed, 4 significant digits (thousands separated above 1,000)."""
    if not math.isfinite(x):
        return "nan"
    return f"{x:+,.1f}" if abs(x) >= 1000 else f"{x:+.4g}"


# --------------------------------------------------------------------------- levers


@dataclass(frozen=True)
class Context:
    """What a lever's value function sees besides the key's value in force: the scenario being
    changed and the market the law runs on (before any of the law's levers)."""

    scenario: Scenario
    market: Scenario


@dataclass(frozen=True)
class times:
    """A lever value: the key's current value times ``factor``."""

    factor: float

    def __call__(self, old: Any, ctx: Context) -> Any:
        return old * self.factor

    def __repr__(self) -> str:
        return f"x{self.factor:g}"


def _budget(multiple: float) -> Callable[[Any, Context], float]:
    """A marketing budget of ``multiple`` times the base budget: the focal firm's own budget in
    the market, or 2 money per person a year when it has none."""

    def value(old: Any, ctx: Context) -> float:
        market = ctx.market
        own = market.firms[market.focal_firm].acquisition.budget_per_year
        return float(multiple * (own if own > 0 else 2.0 * market.market.population))

    value.__name__ = f"budget x{multiple:g}"
    return value


def _fair_price(old: Any, ctx: Context) -> float:
    """The reference (fair) price the model would derive for the scenario being changed: the
    one it names, else the mean effective price of the firms active at step 0."""
    if old is not None:
        return float(old)
    state = _state_at(ctx.scenario.model_dump(mode="python"), 0)
    prices = [f["price"]["list"] * (1 - f["price"]["discount"]) for f in state["firms"].values() if f["active"]]
    return float(np.mean(prices)) if prices else 10.0


@dataclass(frozen=True)
class Lever:
    """A change to a scenario. ``sets`` maps dotted key paths (``{focal}`` and ``{rival}`` stand
    for the focal firm and its main rival) to new values, or to functions ``f(old, ctx)`` of
    the value in force and a :class:`Context` (the scenario being changed, the market the law
    runs on). ``at``: ``None`` changes the keys from
    the start; a step (or :data:`MID`) adds a timeline event at that step, unless ``via`` is
    "start" (the key itself names the step, e.g. ``rewards.end_step``; ``at`` then only marks
    when the change bites, for the measures' windows). ``edit(data, market)`` is a structural
    change of the plain scenario data made first (drop firms, add an entrant)."""

    label: str
    sets: Mapping[str, Any] = field(default_factory=dict)
    at: int | str | None = None
    via: str = "timeline"
    edit: Callable[[dict, Scenario], None] | None = None

    def step(self, scenario: Scenario) -> int | None:
        if self.at is None:
            return None
        return max(1, scenario.market.steps // 2) if self.at == MID else int(self.at)

    def apply(self, scenario: Scenario, market: Scenario) -> Scenario:
        from sim.api import scenario_from_dict
        from sim.loader import ScenarioError

        data = scenario.model_dump(mode="python")
        if self.edit is not None:
            self.edit(data, market)
        names = {"focal": scenario.focal_firm}
        if any("{rival}" in p for p in self.sets):
            names["rival"] = main_rival(scenario)
        at = self.step(scenario)
        ctx = Context(scenario, market)
        paths = {p.format(**names): v for p, v in self.sets.items()}
        if at is None or self.via == "start":
            for path, value in paths.items():
                _set(data, path, _resolve(value, _get(data, path), ctx))
        else:
            state = _state_at(data, at)
            data.setdefault("timeline", []).append({"at": at, "set": {p: _resolve(v, _get(state, p), ctx) for p, v in paths.items()}})
        try:
            return scenario_from_dict(data, source=f"law lever '{self.label}'")
        except ScenarioError as exc:
            raise Unavailable(f"lever '{self.label}' gives an invalid scenario: " + "; ".join(str(p) for p in exc.problems)) from None

    def keys(self) -> list[str]:
        return list(self.sets)


def _resolve(value: Any, old: Any, ctx: Context) -> Any:
    return value(old, ctx) if callable(value) else copy.deepcopy(value)


def _get(data: dict, path: str) -> Any:
    node: Any = data
    for part in split_key_path(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise Unavailable(f"needs scenario key '{path}'") from None
    return node


def _set(data: dict, path: str, value: Any) -> None:
    try:
        set_key_path(data, path, value)
    except KeyError as exc:
        raise Unavailable(f"needs scenario key '{path}' ({exc.args[0]})") from None


def _state_at(data: dict, step: int) -> dict:
    """The scenario data in force at ``step`` (timeline events up to it applied)."""
    state = copy.deepcopy(data)
    for event in sorted(data.get("timeline", []), key=lambda e: e["at"]):
        if event["at"] <= step:
            for path, value in event["set"].items():
                set_key_path(state, path, value)
    return state


def main_rival(scenario: Scenario) -> str:
    """The focal firm's main rival: the active competitor with the largest initial share."""
    focal = scenario.focal_firm
    rivals = [(f.initial_share, -i, n) for i, (n, f) in enumerate(scenario.firms.items()) if n != focal and f.active]
    if not rivals:
        raise Unavailable("needs a rival active from the start")
    return max(rivals)[2]


def _keep_firms(data: dict, keep: Iterable[str]) -> None:
    """Drop every firm not in ``keep`` (and timeline changes that name one)."""
    keep = set(keep)
    data["firms"] = {n: f for n, f in data["firms"].items() if n in keep}
    gone = lambda key: key.startswith("firms.") and split_key_path(key)[1] not in keep  # noqa: E731
    timeline = []
    for event in data.get("timeline", []):
        kept = {k: v for k, v in event["set"].items() if not gone(k)}
        if kept:
            timeline.append({**event, "set": kept})
    data["timeline"] = timeline


def _drop_rivals(data: dict, market: Scenario) -> None:
    _keep_firms(data, [market.focal_firm])


def _focal_and_main_rival(data: dict, market: Scenario) -> None:
    _keep_firms(data, [market.focal_firm, main_rival(market)])


def _identical_twin(data: dict, market: Scenario) -> None:
    """The focal firm and an identical copy of it (same offer, same initial share): a rival with
    nothing to choose between them, so that the focal firm's customers are the same kind of
    customers as when it is alone."""
    focal = market.focal_firm
    base = copy.deepcopy(data["firms"][focal])
    base.update(active=True, serves=None, initial_share=min(base["initial_share"], 0.45))
    twin = copy.deepcopy(base)
    twin.update(role="competitor")
    base.update(role="focal")
    data["firms"] = {focal: base, TWIN: twin}
    data["timeline"] = []


def _add_entrant(data: dict, market: Scenario) -> None:
    """A competitor 'entrant' with the focal firm's offer, out of the market (active: false)."""
    entrant = copy.deepcopy(data["firms"][market.focal_firm])
    entrant.update(role="competitor", active=False, initial_share=0.0)
    data["firms"][ENTRANT] = entrant


def _twins(better: float, worse: float) -> Callable[[dict, Scenario], None]:
    """Replace the firms by two copies of the focal firm, the focal one with product and service
    quality ``better``, its twin with ``worse``, at the same price and initial share."""

    def edit(data: dict, market: Scenario) -> None:
        focal = market.focal_firm
        base = copy.deepcopy(data["firms"][focal])
        share = min(base["initial_share"], 0.45)
        one, two = copy.deepcopy(base), copy.deepcopy(base)
        for firm, level, role in ((one, better, "focal"), (two, worse, "competitor")):
            firm.update(role=role, active=True, serves=None, initial_share=share)
            firm["product"]["quality"] = level
            firm["service"]["quality"] = level
        data["firms"] = {focal: one, TWIN: two}
        data["timeline"] = []

    return edit


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Window:
    """Steps a measure is taken over. ``long``: the last ``length`` steps of the run; ``short``:
    the ``length`` steps from the change on (from step 1 when the change is from the start);
    ``after``: every step from the change (plus ``offset``) on; ``all``: steps 1..end; ``last``:
    the final step."""

    kind: str
    length: int = 12
    offset: int = 0

    def span(self, steps: int, change_at: int) -> tuple[int, int]:
        if self.kind == "long":
            return max(1, steps - self.length + 1), steps
        if self.kind == "short":
            first = change_at + self.offset
            return first, min(steps, first + self.length - 1)
        if self.kind == "after":
            return change_at + self.offset, steps
        if self.kind == "all":
            return 1, steps
        if self.kind == "last":
            return steps, steps
        raise ValueError(f"unknown window {self.kind!r}")

    def __str__(self) -> str:
        return {
            "long": f"long run (last {self.length} steps)",
            "short": f"short run ({self.length} steps from the change{f' + {self.offset}' if self.offset else ''})",
            "after": f"after the change{f' + {self.offset}' if self.offset else ''}",
            "all": "whole run",
            "last": "final step",
        }[self.kind]


LONG_RUN, SHORT_RUN, WHOLE_RUN, FINAL = Window("long"), Window("short"), Window("all"), Window("last")


@dataclass(frozen=True)
class Measure:
    """A number from a run for one firm: ``column`` (a metrics column, a tuple of columns added
    up, or :data:`VOLUME`) over ``window``, as a ``how`` = mean / sum / last; or, with ``per``,
    the ratio of the window's sums of ``column`` and ``per``. ``fn(rows, run, firm)`` replaces
    all that with a function of the window's rows (``needs`` names the columns it reads);
    ``probe`` names customer-level observations the run must record (:data:`PROBES`)."""

    label: str
    column: str | tuple[str, ...] = ""
    window: Window = LONG_RUN
    how: str = "mean"
    per: str | tuple[str, ...] | None = None
    fn: Callable[[pd.DataFrame, Run, str], float] | None = None
    needs: tuple[str, ...] = ()
    probe: str | None = None

    def columns(self) -> set[str]:
        names: set[str] = set(self.needs)
        for term in (self.column, self.per):
            for name in (term,) if isinstance(term, str) else (term or ()):
                if name == VOLUME:
                    names.update(("revenue", "price"))
                elif name:
                    names.add(name)
        return names

    def value(self, run: Run, firm: str, steps: int, change_at: int) -> float:
        frame = run.frame
        first, last = self.window.span(steps, change_at)
        rows = frame if firm == ALL_FIRMS else frame[frame["firm"] == firm]
        rows = rows[(rows["step"] >= first) & (rows["step"] <= last)]
        if self.fn is not None:
            return float(self.fn(rows, run, firm))
        if rows.empty:
            return math.nan
        num = _series(rows, self.column)
        if self.per is not None:
            den = float(_series(rows, self.per).sum())
            return float(num.sum()) / den if den > 0 else math.nan
        if self.how == "sum":
            return float(num.sum())
        if self.how == "last":
            return float(num.iloc[-1])
        return float(num.mean())

    def __str__(self) -> str:
        return f"{self.label}, {self.window}"


def _series(rows: pd.DataFrame, term: str | tuple[str, ...]) -> pd.Series:
    if isinstance(term, tuple):
        return sum((_series(rows, t) for t in term), start=pd.Series(0.0, index=rows.index))
    if term == VOLUME:
        if "purchases" in rows:
            return rows["purchases"].astype(float)
        price = rows["price"].where(rows["price"] > 0)
        return (rows["revenue"] / price).fillna(0.0)
    return rows[term].astype(float)


def mean(column: str, window: Window = LONG_RUN, label: str | None = None) -> Measure:
    return Measure(label or column, column, window, "mean")


def total(column: str, window: Window = WHOLE_RUN, label: str | None = None) -> Measure:
    return Measure(label or f"total {column}", column, window, "sum")


def ratio(column: str | tuple[str, ...], per: str | tuple[str, ...], window: Window = WHOLE_RUN, label: str | None = None) -> Measure:
    name = lambda t: t if isinstance(t, str) else "+".join(t)  # noqa: E731
    return Measure(label or f"{name(column)} / {name(per)}", column, window, per=per)


COST_PER_CUSTOMER = ratio(COST_ACCOUNTS, "customers", WHOLE_RUN, "cost per customer (all costs / customers)")
#: The account a value lever's own cost is booked in, per customer: service cost (the levers of
#: service, price protection, personalisation and lock-in), without cost of goods, marketing and
#: fixed costs, which a lever that wins customers dilutes or changes.
COST_TO_SERVE = ratio("service_cost", "customers", WHOLE_RUN, "cost to serve per customer (service_cost / customers)")
COMMUNITY_COST_PER_CUSTOMER = ratio("community_cost", "customers", WHOLE_RUN, "community cost per customer")


# --------------------------------------------------------------------------- runs and probes


@dataclass
class Run:
    """One simulation: its metrics frame and what its probes recorded."""

    frame: pd.DataFrame
    probes: dict[str, Any] = field(default_factory=dict)


class Probe:
    """Customer-level observations made while a model runs (stepping it by hand)."""

    def start(self, model) -> None:  # noqa: D102
        pass

    def after_step(self, model) -> None:  # noqa: D102
        pass

    def finish(self, model) -> Any:  # noqa: D102
        return None


class FinalCustomers(Probe):
    """The customers frame (``model.customers_frame()``) at the end of the run."""

    def finish(self, model) -> Any:
        return model.customers_frame()


class Returns(Probe):
    """Who comes back to a firm after leaving it dissatisfied. For every customer who leaves firm
    F (to a rival or out of the category) with running satisfaction below the
    generally-satisfied threshold, the first firm it joins within ``horizon`` steps after
    leaving. :meth:`finish` gives, per firm, how many of those leavers chose a firm again and how
    many of their choices went back to F."""

    horizon = 6

    def start(self, model) -> None:
        pop = model.population
        self.firms = list(model.firm_names)
        self.prev_firm = pop.firm.astype(np.int64).copy()
        self.prev_sat = np.asarray(pop.satisfaction_avg, dtype=np.float64).copy()
        self.threshold = model.spec.behaviour.satisfaction.generally_satisfied
        self.pending: list[tuple[np.ndarray, np.ndarray, int]] = []  # (people, former firm, step left)
        self.back = np.zeros(len(self.firms))
        self.chose = np.zeros(len(self.firms))

    def after_step(self, model) -> None:
        pop, t = model.population, model.steps
        now = pop.firm.astype(np.int64)
        joined = (now >= 0) & (now != self.prev_firm)
        # leavers' first choice after leaving (not the move that took them away)
        still = []
        for people, former, left in self.pending:
            moved = joined[people]
            if moved.any():
                who, whence = people[moved], former[moved]
                back = now[who] == whence
                np.add.at(self.back, whence, back.astype(float))
                np.add.at(self.chose, whence, 1.0)
            if t - left < self.horizon and (~moved).any():
                still.append((people[~moved], former[~moved], left))
        self.pending = still
        leavers = (self.prev_firm >= 0) & (now != self.prev_firm) & (self.prev_sat < self.threshold)
        if leavers.any() and t <= model.n_steps - self.horizon:
            people = np.flatnonzero(leavers)
            self.pending.append((people, self.prev_firm[people], t))
        self.prev_firm = now.copy()
        self.prev_sat = np.asarray(pop.satisfaction_avg, dtype=np.float64).copy()

    def finish(self, model) -> Any:
        return {"firms": self.firms, "back": self.back, "chose": self.chose}


PROBES: dict[str, type[Probe]] = {"final_customers": FinalCustomers, "returns": Returns}

_CACHE: OrderedDict[tuple, Run] = OrderedDict()
CACHE_SIZE = 400


def simulate(scenario: Scenario, seed: int, probes: Iterable[str] = ()) -> Run:
    """Run ``scenario`` with ``seed`` (memoised per process on its content hash, seed and probes)."""
    probes = tuple(sorted(set(probes)))
    key = (scenario.digest(), seed, probes)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    from sim.model import LoyaltyModel

    model = LoyaltyModel(scenario, seed=seed, threads=1)
    if probes:
        watchers = {name: PROBES[name]() for name in probes}
        for w in watchers.values():
            w.start(model)
        while model.steps < model.n_steps:
            model.step()
            for w in watchers.values():
                w.after_step(model)
        extras = {name: w.finish(model) for name, w in watchers.items()}
    else:
        model.run()
        extras = {}
    run = Run(model.metrics_frame(), extras)
    _CACHE[key] = run
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return run


def clear_cache() -> None:
    _CACHE.clear()


# --------------------------------------------------------------------------- laws


Predicate = Callable[[Scenario], bool]


def _firm(ref: str, scenario: Scenario) -> str:
    if ref == FOCAL:
        return scenario.focal_firm
    if ref == RIVAL:
        return main_rival(scenario)
    if ref == ALL_FIRMS:
        return ALL_FIRMS
    if ref not in scenario.firms:
        raise Unavailable(f"needs firm '{ref}'")
    return ref


def _chain(levers: Lever | Sequence[Lever] | None) -> tuple[Lever, ...]:
    if levers is None:
        return ()
    return (levers,) if isinstance(levers, Lever) else tuple(levers)


def _apply(levers: tuple[Lever, ...], market: Scenario) -> Scenario:
    scenario = market
    for lever in levers:
        scenario = lever.apply(scenario, market)
    return scenario


def _change_step(levers: tuple[Lever, ...], scenario: Scenario) -> int:
    steps = [s for s in (lever.step(scenario) for lever in levers) if s is not None]
    return max(steps) if steps else 1


@dataclass(frozen=True)
class Plan:
    """The scenarios a law runs on one market (by variant name) and where its windows start."""

    variants: dict[str, Scenario]
    change_at: int
    steps: int


class Law:
    """Base of the law records. Subclasses give the variants to run and the per-seed statistics."""

    id: str
    statement: str
    family: str
    applies: Predicate | None

    # what a law needs
    def levers(self) -> list[Lever]:
        return []

    def measures(self) -> list[Measure]:
        return []

    def probes(self) -> set[str]:
        return {m.probe for m in self.measures() if m.probe}

    def skip_reason(self, market: Scenario) -> str | None:
        """Why the law does not apply to ``market`` (None when it does)."""
        from sim.measures import COLUMNS

        missing = sorted({c for m in self.measures() for c in m.columns()} - set(COLUMNS))
        if missing:
            return f"needs metrics column(s) {', '.join(missing)}"
        if self.applies is not None and not self.applies(market):
            doc = (getattr(self.applies, "__doc__", None) or "").strip().splitlines()
            return f"does not apply to this market: {doc[0]}" if doc else "does not apply to this market"
        return None

    def plan(self, market: Scenario) -> Plan:
        raise NotImplementedError

    def concerns(self) -> list[str]:
        """The firms (references) whose customers the law measures."""
        return [getattr(self, "firm", FOCAL)] + ([self.against] if hasattr(self, "against") else [])  # type: ignore[attr-defined]

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        raise NotImplementedError

    def judge(self, stats: dict[str, np.ndarray]) -> list[Check]:
        return [check_values(name, values, self.direction, self.tolerance) for name, values in stats.items()]  # type: ignore[attr-defined]

    def passes(self, checks: list[Check]) -> bool:
        return all(c.passed for c in checks)

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()


#: The statistic of a paired law that holds the base variant's level of its measure (not judged).
BASE_LEVEL = "base level"
#: The share of a measure's base level below which a paired change counts as no change, for
#: "not up" and "not down" laws.
NEGLIGIBLE = 0.002


@dataclass(frozen=True)
class Paired(Law):
    """``change`` (applied to the market after ``base``) moves ``measure`` of ``firm`` in
    ``direction``: per seed, measure(changed) - measure(base)."""

    id: str
    statement: str
    family: str
    change: Lever | tuple[Lever, ...]
    measure: Measure
    direction: str
    base: Lever | tuple[Lever, ...] | None = None
    firm: str = FOCAL
    tolerance: float = 0.0
    applies: Predicate | None = None

    def levers(self) -> list[Lever]:
        return [*_chain(self.base), *_chain(self.change)]

    def measures(self) -> list[Measure]:
        return [self.measure]

    def plan(self, market: Scenario) -> Plan:
        base = _apply(_chain(self.base), market)
        changed = _apply(_chain(self.change), base)
        _firm(self.firm, changed)
        return Plan({"base": base, "changed": changed}, _change_step(_chain(self.change), base), base.market.steps)

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        firm = _firm(self.firm, plan.variants["base"])
        m = lambda v: self.measure.value(runs[v], firm, plan.steps, plan.change_at)  # noqa: E731
        base = m("base")
        return {"diff": m("changed") - base, BASE_LEVEL: base}

    def judge(self, stats: dict[str, np.ndarray]) -> list[Check]:
        """The paired difference's check. A "not up" / "not down" law allows a change of up to
        :data:`NEGLIGIBLE` of the measure's base level (or ``tolerance``, if larger): with common
        random numbers even a change of a few hundredths of a percent is significant, and the
        law is about material moves."""
        tolerance = self.tolerance
        base = stats.get(BASE_LEVEL)
        if self.direction in (NOT_UP, NOT_DOWN) and base is not None and np.isfinite(base).any():
            tolerance = max(tolerance, NEGLIGIBLE * abs(float(np.nanmean(base))))
        return [check_values(name, values, self.direction, tolerance) for name, values in stats.items() if name != BASE_LEVEL]


def _setup_plan(setup: Lever | tuple[Lever, ...] | None, market: Scenario, *firms: str) -> Plan:
    """The plan of a law measured in one scenario: ``market`` after ``setup``, where each of
    ``firms`` must exist."""
    scenario = _apply(_chain(setup), market)
    for firm in firms:
        _firm(firm, scenario)
    return Plan({"base": scenario}, _change_step(_chain(setup), market), scenario.market.steps)


@dataclass(frozen=True)
class Contrast(Law):
    """In one scenario (the market after ``setup``), ``measure`` of ``firm`` minus that of
    ``against`` lies in ``direction``."""

    id: str
    statement: str
    family: str
    setup: Lever | tuple[Lever, ...] | None
    measure: Measure
    direction: str
    firm: str = FOCAL
    against: str = RIVAL
    tolerance: float = 0.0
    applies: Predicate | None = None

    def levers(self) -> list[Lever]:
        return list(_chain(self.setup))

    def measures(self) -> list[Measure]:
        return [self.measure]

    def plan(self, market: Scenario) -> Plan:
        return _setup_plan(self.setup, market, self.firm, self.against)

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        s = plan.variants["base"]
        m = lambda f: self.measure.value(runs["base"], _firm(f, s), plan.steps, plan.change_at)  # noqa: E731
        return {"diff": m(self.firm) - m(self.against)}


@dataclass(frozen=True)
class Level(Law):
    """In one scenario (the market after ``setup``), ``measure`` of ``firm`` minus ``threshold``
    lies in ``direction`` (e.g. up: the measure exceeds the threshold)."""

    id: str
    statement: str
    family: str
    setup: Lever | tuple[Lever, ...] | None
    measure: Measure
    direction: str
    threshold: float = 0.0
    firm: str = FOCAL
    tolerance: float = 0.0
    applies: Predicate | None = None

    def levers(self) -> list[Lever]:
        return list(_chain(self.setup))

    def measures(self) -> list[Measure]:
        return [self.measure]

    def plan(self, market: Scenario) -> Plan:
        return _setup_plan(self.setup, market, self.firm)

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        firm = _firm(self.firm, plan.variants["base"])
        return {f"{self.measure.label} - {self.threshold:g}": self.measure.value(runs["base"], firm, plan.steps, plan.change_at) - self.threshold}


@dataclass(frozen=True)
class Compound(Law):
    """Several variants (each a chain of levers applied to the market), ``measure`` of ``firm``
    in each, combined per seed by ``combine`` (a function of {variant: value}) into one number
    whose direction is tested. ``change_at`` windows start at the latest step any lever names."""

    id: str
    statement: str
    family: str
    variants: Mapping[str, tuple[Lever, ...]]
    measure: Measure
    combine: Callable[[dict[str, float]], float]
    direction: str
    label: str = "combined"
    firm: str = FOCAL
    tolerance: float = 0.0
    applies: Predicate | None = None

    def levers(self) -> list[Lever]:
        return [lever for chain in self.variants.values() for lever in chain]

    def measures(self) -> list[Measure]:
        return [self.measure]

    def plan(self, market: Scenario) -> Plan:
        variants = {name: _apply(chain, market) for name, chain in self.variants.items()}
        for scenario in variants.values():
            _firm(self.firm, scenario)
        at = max(_change_step(chain, market) for chain in self.variants.values())
        return Plan(variants, at, market.market.steps)

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        values = {name: self.measure.value(runs[name], _firm(self.firm, s), plan.steps, plan.change_at) for name, s in plan.variants.items()}
        return {self.label: self.combine(values)}


@dataclass(frozen=True)
class Shape(Law):
    """An inverted U: over ``levels`` of ``key`` (set from the start), the level with the best
    mean ``measure`` is interior, and it beats both end levels (paired intervals "up")."""

    id: str
    statement: str
    family: str
    key: str
    levels: tuple[float, ...]
    measure: Measure
    base: Lever | tuple[Lever, ...] | None = None
    firm: str = FOCAL
    applies: Predicate | None = None
    direction: str = UP
    tolerance: float = 0.0

    def levers(self) -> list[Lever]:
        return [*_chain(self.base), Lever(self.key, {self.key: self.levels[0]})]

    def measures(self) -> list[Measure]:
        return [self.measure]

    def plan(self, market: Scenario) -> Plan:
        base = _apply(_chain(self.base), market)
        variants = {f"{level:g}": Lever(f"{self.key}={level:g}", {self.key: level}).apply(base, market) for level in self.levels}
        return Plan(variants, 1, base.market.steps)

    def statistics(self, plan: Plan, runs: dict[str, Run], market: Scenario) -> dict[str, float]:
        firm = _firm(self.firm, plan.variants[f"{self.levels[0]:g}"])
        return {name: self.measure.value(runs[name], firm, plan.steps, plan.change_at) for name in plan.variants}

    def judge(self, stats: dict[str, np.ndarray]) -> list[Check]:
        names = list(stats)
        means = [float(np.nanmean(stats[n])) if np.isfinite(stats[n]).any() else -math.inf for n in names]
        best = 1 + int(np.argmax(means[1:-1]))
        return [
            check_values(f"{self.measure.label} at {self.key.rsplit('.', 1)[-1]}={names[best]} (best interior) - at {end}", stats[names[best]] - stats[end], UP)
            for end in (names[0], names[-1])
        ]


@dataclass(frozen=True)
class AnyOf(Law):
    """Passes when at least one of ``laws`` passes (on the same market and seeds)."""

    id: str
    statement: str
    family: str
    laws: tuple[Law, ...]
    applies: Predicate | None = None

    def levers(self) -> list[Lever]:
        return [lever for law in self.laws for lever in law.levers()]

    def measures(self) -> list[Measure]:
        return [m for law in self.laws for m in law.measures()]

    def passes(self, checks: list[Check]) -> bool:
        return any(c.passed for c in checks)


@dataclass(frozen=True)
class Micro(Law):
    """A deterministic check of a rule of :mod:`sim.rules` (no market): ``run()`` returns
    (value, label) where the value must lie in ``direction`` of 0; it raises
    :class:`Unavailable` when the rule it needs does not exist (yet)."""

    id: str
    statement: str
    family: str
    run: Callable[[], tuple[float, str]]
    direction: str
    needs: str = ""
    applies: Predicate | None = None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Result:
    """The outcome of one law on one market: "pass", "fail", "skip" or "error"."""

    law: Law
    market: str
    seed: int | None
    status: str
    checks: tuple[Check, ...] = ()
    reason: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    @property
    def message(self) -> str:
        where = f"{self.law.id} on {self.market}" + (f" (seed {self.seed})" if self.seed is not None else "")
        if self.status in ("skip", "error"):
            return f"{where}: {self.status}: {self.reason}"
        detail = "; ".join(c.describe() for c in self.checks)
        return f"{where}: {detail} -- {self.status.upper()}: {self.law.statement}"


@dataclass(frozen=True)
class Market:
    """A market the laws run on: a name and its scenario (whose seed spawns the replication seeds)."""

    name: str
    scenario: Scenario

    @property
    def seed(self) -> int:
        return self.scenario.market.seed


#: Laws whose effect is small against the spread of paired differences get this many times the
#: replications (statistical power): retention moves little where customers rarely search, and
#: the memory law counts a few returns.
POWER = {"memory_keeps_dissatisfied_leavers_away": 3, "marketing_diminishing_returns": 2, "points_on_share_incentive_up": 2, "better_value_trust_up": 4, "better_value_nps_up": 2, "better_value_retention_up": 4,
         "programme_end_rewards_churn": 3}


def power(law: Law) -> int:
    """The multiple of the replications ``law`` is checked with (:data:`POWER`; 2 for laws on retention)."""
    return POWER.get(law.id, 3 if "retention" in law.id else 1)


def check(law: Law, market: Market | Scenario, replications: int = 6, min_customers: float = MIN_CUSTOMERS) -> Result:
    """Check ``law`` on ``market`` with ``replications`` paired seeds (spawned from the market's
    seed). The law is skipped when a firm it concerns has on average fewer than
    ``min_customers`` customers in the first replication of its base scenario: a measure of a
    handful of customers cannot show a direction either way."""
    from sim.experiments import replication_seeds

    start = time.perf_counter()
    if isinstance(market, Scenario):
        market = Market(market.name, market)
    if isinstance(law, Micro):
        return _check_micro(law, start)
    scenario = market.scenario
    try:
        reason = law.skip_reason(scenario)
        if reason:
            return Result(law, market.name, market.seed, "skip", reason=reason, seconds=time.perf_counter() - start)
        sub_laws = law.laws if isinstance(law, AnyOf) else (law,)
        plans = [sub.plan(scenario) for sub in sub_laws]
    except Unavailable as exc:
        return Result(law, market.name, market.seed, "skip", reason=str(exc), seconds=time.perf_counter() - start)
    seeds = replication_seeds(market.seed, replications * power(law))
    checks: list[Check] = []
    try:
        size = _smallest_firm(sub_laws[0], plans[0], seeds[0])
        if size is not None and size[1] < min_customers:
            return Result(law, market.name, market.seed, "skip",
                          reason=f"firm '{size[0]}' is too small to measure: {size[1]:.0f} customers on average in the base run (< {min_customers:g})",
                          seconds=time.perf_counter() - start)
        for sub, plan in zip(sub_laws, plans):
            per_seed: dict[str, list[float]] = {}
            for seed in seeds:
                runs = {name: simulate(s, seed, sub.probes()) for name, s in plan.variants.items()}
                for name, value in sub.statistics(plan, runs, scenario).items():
                    per_seed.setdefault(name, []).append(value)
            stats = {name: np.asarray(values, dtype=np.float64) for name, values in per_seed.items()}
            # a measure defined in fewer than half the replications (and at least two) says nothing
            undefined = [name for name, values in stats.items() if np.isfinite(values).sum() < max(2, (values.size + 1) // 2)]
            if undefined and not isinstance(law, AnyOf):
                n = int(min(np.isfinite(v).sum() for v in stats.values()))
                total = len(seeds)
                return Result(law, market.name, market.seed, "skip",
                              reason=f"measure undefined in {total - n} of {total} replications (no customers or no events in the window)",
                              seconds=time.perf_counter() - start)
            judged = sub.judge(stats)
            if isinstance(law, AnyOf):
                judged = [Check(f"{sub.id}: {c.label}", c.direction, c.mean, c.low, c.high, c.n, c.tolerance) for c in judged]
            checks += judged
    except Unavailable as exc:
        return Result(law, market.name, market.seed, "skip", reason=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a crash of the model is reported, not raised, so other laws still run
        return Result(law, market.name, market.seed, "error", reason=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    status = "pass" if law.passes(checks) else "fail"
    return Result(law, market.name, market.seed, status, tuple(checks), seconds=time.perf_counter() - start)


def _smallest_firm(law: Law, plan: Plan, seed: int) -> tuple[str, float] | None:
    """The firm the law concerns with the fewest customers (mean over steps 1..end) in the
    first variant of its plan, and that mean; None when it concerns every firm."""
    variant, scenario = next(iter(plan.variants.items()))
    names = [_firm(ref, scenario) for ref in law.concerns()]
    names = [n for n in names if n != ALL_FIRMS]
    if not names:
        return None
    frame = simulate(scenario, seed, law.probes()).frame
    frame = frame[frame["step"] >= 1]
    sizes = [(n, float(frame.loc[frame["firm"] == n, "customers"].mean())) for n in names]
    return min(sizes, key=lambda item: item[1])


def _check_micro(law: Micro, start: float) -> Result:
    try:
        value, label = law.run()
    except Unavailable as exc:
        return Result(law, "rules", None, "skip", reason=str(exc), seconds=time.perf_counter() - start)
    c = Check(label, law.direction, value, value, value, 1)
    return Result(law, "rules", None, "pass" if c.passed else "fail", (c,), seconds=time.perf_counter() - start)


def check_all(laws: Iterable[Law], markets: Iterable[Market | Scenario], replications: int = 6,
              progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every law on every market (market by market, so each market's base runs are shared);
    micro laws, which need no market, once."""
    laws = list(laws)
    results: list[Result] = []
    for law in laws:
        if isinstance(law, Micro):
            results.append(check(law, None, replications))  # type: ignore[arg-type]
            if progress:
                progress(results[-1])
    for market in markets:
        for law in laws:
            if isinstance(law, Micro):
                continue
            results.append(check(law, market, replications))
            if progress:
                progress(results[-1])
    return results


def requirements(laws: Iterable[Law] = ()) -> dict[str, list[str]]:
    """What each law needs that the schema, the metrics or the rules lack now: {law id: [missing]}."""
    from sim.measures import COLUMNS
    from sim.validation import scenario_key_paths

    keys = set(scenario_key_paths())
    out: dict[str, list[str]] = {}
    for law in laws or LAWS:
        missing = [f"column {c}" for c in sorted({c for m in law.measures() for c in m.columns()} - set(COLUMNS))]
        for lever in law.levers():
            for path in lever.sets:
                generic = ".".join(["firms", "F", *path.split(".")[2:]]) if path.startswith("firms.") else path
                if not _known_key(generic, keys):
                    missing.append(f"key {path}")
        if isinstance(law, Micro):
            try:
                law.run()
            except Unavailable as exc:
                missing.append(str(exc))
        if missing:
            out[law.id] = missing
    return out


def _known_key(path: str, keys: set[str]) -> bool:
    """Whether a lever's key (firms named ``firms.F.``, as :func:`sim.validation.scenario_key_paths` does) exists."""
    return path in keys or any(k.startswith(path + ".") for k in keys)


# --------------------------------------------------------------------------- markets


#: Firm keys of money per market (not per customer or purchase): scaled with the population when
#: a market is shrunk, so that marketing and fixed costs per person stay as the file has them.
PER_MARKET_MONEY = ("acquisition.budget_per_year", "costs.fixed_per_year", "community.event_cost")


def shrink(scenario: Scenario, sets: Mapping[str, Any] | None = None) -> Scenario:
    """``scenario`` with dotted overrides (default :data:`SHRINK`); timeline events after the
    new last step are dropped, and when the population changes the firms' money per market
    (:data:`PER_MARKET_MONEY`, also in timeline events) is scaled with it."""
    from sim.api import scenario_from_dict

    data = scenario.model_dump(mode="python")
    for path, value in (SHRINK if sets is None else sets).items():
        set_key_path(data, path, value)
    steps = data["market"]["steps"]
    data["timeline"] = [e for e in data.get("timeline", []) if e["at"] <= steps]
    scale = data["market"]["population"] / scenario.market.population if scenario.market.population else 1.0
    if scale != 1.0:
        for firm in data["firms"].values():
            for key in PER_MARKET_MONEY:
                section, leaf = key.split(".")
                firm[section][leaf] *= scale
        for event in data["timeline"]:
            for path in event["set"]:
                if path.startswith("firms.") and ".".join(split_key_path(path)[2:]) in PER_MARKET_MONEY:
                    event["set"][path] *= scale
    return scenario_from_dict(data, source=f"{scenario.name} (shrunk)")


def load_market(path: str | Path, sets: Mapping[str, Any] | None = None) -> Market:
    """The scenario file ``path`` as a market, with ``sets`` applied (see :func:`shrink`)."""
    from sim.api import load_scenario

    scenario = load_scenario(path)
    if sets:
        scenario = shrink(scenario, sets)
    return Market(Path(path).stem, scenario)


def shipped_markets(names: Sequence[str] = SHIPPED, sets: Mapping[str, Any] | None = None) -> list[Market]:
    """The shipped scenario files (``scenarios/<name>.yaml``), shrunk (default :data:`SHRINK`)."""
    return [load_market(SCENARIO_DIR / f"{name}.yaml", SHRINK if sets is None else sets) for name in names]


def generated_markets(seeds: Iterable[int]) -> list[Market]:
    return [Market(f"generated-{seed}", generate_market(seed)) for seed in seeds]


_RANDOM_TRAITS = {  # trait: (low, high) of a random segment's mean
    "price_sensitivity": (0.5, 2.5),
    "quality_sensitivity": (0.5, 1.8),
    "service_sensitivity": (0.4, 2.0),
    "reward_sensitivity": (0.4, 2.0),
    "inertia": (0.1, 0.7),
    "community_propensity": (0.05, 0.6),
    "expectation": (0.95, 1.08),
}


def generate_market(seed: int) -> Scenario:
    """A random but sensible market, the same for the same ``seed``: 1-4 firms (the first focal),
    1-3 segments (presets or random trait means), list prices 6-14 with unit costs 45-70% of them,
    product and service quality 0.8-1.25, failure rates 0.02-0.1, recovery 0.1-0.7, optional
    rewards, community and marketing budgets; 2,000-5,000 people, 36-60 monthly steps."""
    from sim.api import scenario_from_dict

    rng = np.random.default_rng([seed, 0x1A55])
    r = lambda lo, hi, nd=3: round(float(rng.uniform(lo, hi)), nd)  # noqa: E731
    population = int(rng.integers(20, 51)) * 100
    steps = int(rng.integers(36, 61))
    n_seg = int(rng.integers(1, 4))
    presets = list(SEGMENT_PRESETS)
    chosen = rng.choice(len(presets), size=n_seg, replace=False)
    shares = rng.dirichlet(np.full(n_seg, 3.0))
    shares = [round(float(s), 3) for s in shares[:-1]]
    shares.append(round(1.0 - sum(shares), 3))
    segments = []
    for k in range(n_seg):
        if rng.random() < 0.6:
            segments.append({"preset": presets[chosen[k]], "share": shares[k]})
        else:
            seg: dict[str, Any] = {"name": f"segment{k + 1}", "share": shares[k]}
            for trait, (lo, hi) in _RANDOM_TRAITS.items():
                m = r(lo, hi)
                sd = round(m * (0.05 if trait == "expectation" else 0.2), 3)
                seg[trait] = {"mean": m, "sd": sd}
            segments.append(seg)
    n_firms = 1 if rng.random() < 0.15 else int(rng.integers(2, 5))
    held = r(0.5, 0.85)
    initial = rng.dirichlet(np.full(n_firms, 4.0)) * held
    firms: dict[str, Any] = {}
    for j in range(n_firms):
        price = r(6.0, 14.0, 2)
        firm: dict[str, Any] = {
            "initial_share": max(0.0, round(float(initial[j]), 3) - 0.001),
            "price": {"list": price},
            "product": {"quality": r(0.8, 1.25)},
            "service": {"quality": r(0.8, 1.25), "failure_rate": r(0.02, 0.1), "recovery_rate": r(0.1, 0.7)},
            "costs": {"unit_cost": round(price * r(0.45, 0.7), 2)},
        }
        if j == 0:
            firm["role"] = "focal"
        if rng.random() < 0.35:
            firm["rewards"] = {"enabled": True, "points_rate": r(0.02, 0.08), "redemption_threshold": float(rng.choice([10, 20, 50]))}
        if rng.random() < 0.3:
            firm["community"] = {"enabled": True, "events_per_year": float(rng.integers(2, 9)), "care": r(0.2, 0.8)}
        if rng.random() < 0.5:
            firm["acquisition"] = {"budget_per_year": round(population * r(1.0, 4.0), 0), "cost_per_contact": r(1.0, 3.0, 2)}
        firms["focal" if j == 0 else f"rival{j}"] = firm
    data = {
        "name": f"generated-{seed}",
        "title": f"Generated market {seed}",
        "market": {"population": population, "steps": steps, "step_days": 30.0, "seed": int(seed)},
        "segments": segments,
        "firms": firms,
    }
    return scenario_from_dict(data, source=f"generate_market({seed})")


# --------------------------------------------------------------------------- predicates


def has_rival(s: Scenario) -> bool:
    """needs a rival of the focal firm active from the start (the mechanism works through an alternative)"""
    return any(n != s.focal_firm and f.active for n, f in s.firms.items())


def is_alone(s: Scenario) -> bool:
    """needs a focal firm with no rival active from the start (a monopoly)"""
    return not has_rival(s)


# --------------------------------------------------------------------------- micro experiments and custom measures


def _forgiveness() -> tuple[float, str]:
    """Share of trust a failure takes from a loyal customer (trust 0.9) minus the share it
    takes from a new one (the initial trust), with expectations otherwise met (c = 1), at the
    default behaviour and a 30-day step, through ``sim.rules.trust_next``."""
    from sim import rules
    from sim.scenario import Behaviour

    b = Behaviour()
    forgiveness = getattr(b.trust, "forgiveness", None)
    fn = getattr(rules, "trust_next", None)
    if forgiveness is None or fn is None:
        raise Unavailable("needs behaviour.trust.forgiveness and sim.rules.trust_next(trust, c, failed, met_threshold, gain, loss, failure_loss, forgiveness)")
    gain, loss = rules.per_step(b.trust.gain_per_year, 30 / 365), rules.per_step(b.trust.loss_per_year, 30 / 365)
    try:
        def lost(trust: float) -> float:
            kept = float(fn(trust, 1.0, False, b.trust.met_threshold, gain, loss, b.trust.failure_loss, forgiveness))
            hit = float(fn(trust, 1.0, True, b.trust.met_threshold, gain, loss, b.trust.failure_loss, forgiveness))
            return (kept - hit) / kept

        loyal, new = lost(0.9), lost(b.trust.initial)
    except TypeError as exc:
        raise Unavailable(f"sim.rules.trust_next has another signature than "
                          f"(trust, c, failed, met_threshold, gain, loss, failure_loss, forgiveness): {exc}") from None
    return loyal - new, f"share of trust lost at a failure, loyal (0.9) {loyal:.3f} - new ({b.trust.initial:g}) {new:.3f}"


def _trust_loyal_gap(rows: pd.DataFrame, run: Run, firm: str) -> float:
    customers = run.probes["final_customers"]
    mine = customers[customers["firm"] == firm]
    loyal = mine[mine["loyalty_type"] == "trust"]
    if len(loyal) < 10 or len(mine) == 0:
        return math.nan
    return float(loyal["trust"].mean() - mine["trust"].mean())


def _within_segments(kind: str) -> Callable[[pd.DataFrame, Run, str], float]:
    """A measure of the firm's customers at the end of the run taken within each segment and
    weighted by the segments' shares of the population (fixed, the same in both runs of a pair):
    ``nps``, ``trust`` or ``repurchase_probability``. A lever that wins the firm customers of a
    segment that is harder to please lowers the firm-wide mean while it raises every segment's
    (Simpson's paradox); this compares like with like. Segments where the firm has fewer than 5
    customers are left out."""

    def measure(rows: pd.DataFrame, run: Run, firm: str) -> float:
        customers = run.probes["final_customers"]
        weights = customers["segment"].astype(str).value_counts(normalize=True)
        mine = customers[customers["firm"].astype(str) == firm]
        total = weight = 0.0
        for segment, group in mine.groupby(mine["segment"].astype(str)):
            if len(group) < 5:
                continue
            if kind == "nps":
                value = 100.0 * (float((group["recommend"] >= 9).mean()) - float((group["recommend"] <= 6).mean()))
            else:
                value = float(group[kind].mean())
            total += weights[segment] * value
            weight += weights[segment]
        return total / weight if weight > 0 else math.nan

    measure.__name__ = f"within_segments_{kind}"
    return measure


def _incentive_churn_after_end(rows: pd.DataFrame, run: Run, firm: str) -> float:
    """Leavers for reason ``rewards`` in the window after a programme's end; undefined (the law
    is vacuous) when the programme held almost nobody before it ended (incentive share < 1%)."""
    frame = run.frame
    own = frame[frame["firm"] == firm]
    start = int(rows["step"].min()) if len(rows) else 0
    before = own[(own["step"] >= start - 6) & (own["step"] < start)]
    if before.empty or float(before["share_incentive"].mean()) < 0.01:
        return math.nan
    return float(rows["churn_rewards"].sum())


def _volume_per_served(rows: pd.DataFrame, run: Run, firm: str) -> float:
    """Units bought per customer served over the window: purchase occasions over the customers
    at the start of each step plus the prospects who joined in it (those who leave in a step
    bought in it, so the end-of-step count would understate who bought)."""
    own = run.frame[run.frame["firm"] == firm].set_index("step")
    steps = rows["step"].to_numpy()
    start = own["customers"].reindex(steps - 1).fillna(0.0).to_numpy()
    served = float((start + rows["acquired_prospects"].to_numpy()).sum())
    return float(rows["purchases"].sum()) / served if served > 0 else math.nan


def _return_share(rows: pd.DataFrame, run: Run, firm: str) -> float:
    r = run.probes["returns"]
    k = r["firms"].index(firm)
    if r["chose"][k] < 5:
        return math.nan
    return float(r["back"][k] / r["chose"][k])


def _none_where_dissatisfied(rows: pd.DataFrame, run: Run, firm: str) -> float:
    """The market's share of customers with no loyalty (all firms, weighted by their customers)
    over the steps where some firm has more than 5% dissatisfied customers."""
    steps = rows.loc[(rows["customers"] > 0) & (rows["share_dissatisfied"] > 0.05), "step"].unique()
    rows = rows[rows["step"].isin(steps)]
    customers = float(rows["customers"].sum())
    return float((rows["share_none"] * rows["customers"]).sum()) / customers if customers > 0 else math.nan


def _dissatisfied_leave_first(rows: pd.DataFrame, run: Run, firm: str) -> float:
    """The dissatisfied share of the leavers who chose to leave (exits from the category for
    reasons no firm controls left out) minus the dissatisfied share of the firm's customers."""
    churned = float(rows["churned"].sum() - rows["churn_left_category"].sum())
    if churned <= 0 or rows.empty:
        return math.nan
    return float(rows["churn_dissatisfied"].sum()) / churned - float(rows["share_dissatisfied"].mean())


# --------------------------------------------------------------------------- the table of laws


def _schema_default(path: str) -> Any:
    from sim.validation import schema_default

    return float(schema_default(path))


def F(key: str) -> str:
    """A key path of the focal firm's section: F('price.list') -> 'firms.{focal}.price.list'."""
    return f"firms.{{focal}}.{key}"


#: Pins the reference (fair) price at the value the model would derive anyway, so that a price
#: changed from the start does not also move the price customers judge it against.
PIN_REFERENCE = Lever("reference price pinned at the base's fair price", {"market.reference_price": _fair_price})
OWN_PRICE_UP = Lever("own list price x1.2 from the start", {F("price.list"): times(1.2)})
OWN_PRICE_UP_MID = Lever("own list price x1.2 at mid-run (timeline)", {F("price.list"): times(1.2)}, at=MID)
RIVAL_PRICE_CUT = Lever("main rival's list price x0.8", {"firms.{rival}.price.list": times(0.8)})
RIVAL_PRICE_CUT_MID = Lever("main rival's list price x0.8 at mid-run (timeline)", {"firms.{rival}.price.list": times(0.8)}, at=MID)
BETTER_VALUE = Lever("own product and service quality x1.15", {F("product.quality"): times(1.15), F("service.quality"): times(1.15)})
FAILURES = lambda rate, recovery=None: Lever(  # noqa: E731
    f"failure rate {rate:g}" + (f", recovery rate {recovery:g}" if recovery is not None else "") + ", recovery boost at its default",
    {F("service.failure_rate"): rate, **({F("service.recovery_rate"): recovery} if recovery is not None else {}),
     F("service.recovery_boost"): lambda old, ctx: _schema_default("firms.F.service.recovery_boost")},
)
PROMISE = lambda p: Lever(f"promise {p:g}", {F("product.promise"): p})  # noqa: E731
PROMISE_MID = lambda p: Lever(f"promise {p:g} at mid-run (timeline)", {F("product.promise"): p}, at=MID)  # noqa: E731
NO_POSITIVE_WOM = Lever("no positive word of mouth", {"behaviour.word_of_mouth.positive_reach_per_year": 0.0})
NO_POSITIVE_WOM_MID = Lever("no positive word of mouth from mid-run (timeline)", {"behaviour.word_of_mouth.positive_reach_per_year": 0.0}, at=MID)
NO_NEGATIVE_WOM = Lever("no negative word of mouth", {"behaviour.word_of_mouth.negative_reach_per_year": 0.0})
POOR_FOCAL = Lever("own quality and service 0.8, failure rate 0.15, recovery 0.1",
                   {F("product.quality"): 0.8, F("service.quality"): 0.8, F("service.failure_rate"): 0.15, F("service.recovery_rate"): 0.1})
BUDGET = lambda k: Lever(f"marketing budget x{k:g}", {F("acquisition.budget_per_year"): _budget(k)})  # noqa: E731
BUDGET_MID = lambda k: Lever(f"marketing budget x{k:g} from mid-run (timeline)", {F("acquisition.budget_per_year"): _budget(k)}, at=MID)  # noqa: E731
REWARDS_OFF = Lever("no rewards programme", {F("rewards.enabled"): False})
#: A points programme its customers can reach: 5% back in points worth 1 each, redeemed from 5 points
#: (a programme whose threshold no customer reaches before its points expire pays nothing and holds nobody).
REWARDS_ON = Lever("a points programme customers can reach (5% back, redeemed from 5 points), for good",
                   {F("rewards.enabled"): True, F("rewards.start_step"): 0, F("rewards.end_step"): None,
                    F("rewards.points_rate"): 0.05, F("rewards.point_value"): 1.0, F("rewards.redemption_threshold"): 5.0})
REWARDS_END = Lever("rewards programme ends at mid-run (rewards.end_step)", {F("rewards.end_step"): lambda old, ctx: max(1, ctx.scenario.market.steps // 2)}, at=MID, via="start")
NO_LOCK_IN = Lever("no lock-in", {F("lock_in.learning_cost"): 0.0, F("lock_in.ecosystem_per_year"): 0.0, F("lock_in.contract_days"): 0.0, F("lock_in.exit_fee"): 0.0})
COMMUNITY_OFF = Lever("no community", {F("community.enabled"): False})
COMMUNITY_ON = Lever("community on", {F("community.enabled"): True})
MONOPOLY = Lever("the focal firm alone (rivals dropped)", edit=_drop_rivals)
DUOPOLY = Lever("the focal firm and its main rival only", edit=_focal_and_main_rival)
TWIN_DUOPOLY = Lever("the focal firm and an identical twin", edit=_identical_twin)
PRICE_X15 = Lever("own list price x1.5", {F("price.list"): times(1.5)})
PRICE_X15_MID = Lever("own list price x1.5 at mid-run (timeline)", {F("price.list"): times(1.5)}, at=MID)
ADD_ENTRANT = Lever("an entrant with the focal firm's offer, out of the market", edit=_add_entrant)
ENTRY_MID = Lever("the entrant enters at mid-run (timeline)", {f"firms.{ENTRANT}.active": True}, at=MID)
TWINS = Lever("two otherwise identical firms, quality and service 1.2 (focal) vs 0.85 (twin), same price", edit=_twins(1.2, 0.85))
BETTER_TWIN = Lever("two otherwise identical firms, quality and service 1.25 (focal) vs 1.0 (twin), same price", edit=_twins(1.25, 1.0))

SAT, NPS, TRUST = mean("satisfaction_avg_mean"), mean("nps"), mean("trust_mean")


def _retention_where_some_choose_to_leave(rows: pd.DataFrame, run: Run, firm: str) -> float:
    """The firm's retention rate over the window; undefined (a law on it is vacuous) where almost
    nobody leaves it by choice (under 0.1% of its customers a step, exits from the category for
    reasons no firm controls left out): retention cannot respond to a lever there."""
    customers = rows["customers"].clip(lower=1)
    chosen = float(((rows["churned"] - rows["churn_left_category"]) / customers).mean()) if len(rows) else 0.0
    if not chosen >= 0.001:
        return math.nan
    return float(rows["retention_rate"].mean())


#: Retention (long run), where some customers leave by choice.
RET = Measure("retention_rate (where some leave by choice)", window=LONG_RUN, fn=_retention_where_some_choose_to_leave,
              needs=("retention_rate", "churned", "churn_left_category", "customers"))
SHORT = lambda column: mean(column, SHORT_RUN)  # noqa: E731
CUSTOMERS = mean("customers")
CHURN_SHORT = ratio("churned", "customers", SHORT_RUN, "churn (churned / customers)")

LOCK_INS = (  # (name, statement of the lever, its keys)
    ("ecosystem", "ecosystem lock-in (lock_in.ecosystem_per_year 0 -> 40)", {F("lock_in.ecosystem_per_year"): 40.0}),
    ("learning", "a learning cost (lock_in.learning_cost 0 -> 80)", {F("lock_in.learning_cost"): 80.0}),
    ("contract", "two-year contracts with an exit fee (contract_days 0 -> 730, exit_fee 0 -> 80)",
     {F("lock_in.contract_days"): 730.0, F("lock_in.exit_fee"): 80.0}),
)

VALUE_LEVERS = (  # (name, key, low, high, the account its cost is in): each raises the firm's costs at its default cost
    ("service_quality", "service.quality", 1.0, 1.2, COST_TO_SERVE),
    ("staff", "service.staff", 1.0, 1.2, COST_TO_SERVE),
    ("speed", "service.speed", 1.0, 1.2, COST_TO_SERVE),
    ("delivery", "service.delivery", 1.0, 1.2, COST_TO_SERVE),
    ("availability", "service.availability", 0.9, 1.0, COST_TO_SERVE),
    ("guarantee", "service.guarantee", 0.0, 0.5, COST_TO_SERVE),
    ("price_protection", "price.price_protection", False, True, COST_TO_SERVE),
    ("personalisation", "product.personalisation", 0.0, 0.5, COST_TO_SERVE),
    ("ecosystem", "lock_in.ecosystem_per_year", 0.0, 20.0, COST_TO_SERVE),
    ("community", "community.enabled", False, True, COMMUNITY_COST_PER_CUSTOMER),
)


def _laws() -> list[Law]:
    laws: list[Law] = [
        # -- own price
        Paired("own_price_up_customers_down", "Raising the own list price by 20% lowers the own number of customers (long run).",
               "price", OWN_PRICE_UP, CUSTOMERS, DOWN, base=PIN_REFERENCE),
        Paired("own_price_up_volume_down", "Raising the own list price by 20% lowers the units the firm sells (long run; column `purchases`, until it exists revenue / price).",
               "price", OWN_PRICE_UP, mean(VOLUME, label="units sold"), DOWN, base=PIN_REFERENCE),
        Paired("own_price_up_satisfaction_not_up", "Raising the own list price by 20% does not raise its customers' satisfaction (long run).",
               "price", OWN_PRICE_UP, SAT, NOT_UP, base=PIN_REFERENCE),
        Paired("own_price_up_nps_not_up", "Raising the own list price by 20% does not raise its NPS (long run).", "price", OWN_PRICE_UP, NPS, NOT_UP, base=PIN_REFERENCE),
        Paired("own_price_up_retention_not_up", "Raising the own list price by 20% does not raise its retention (long run; up to 0.1 point a month: the dearer firm keeps the less price-sensitive customers, who leave less often, a selection that can lift the mean by that much).",
               "price", OWN_PRICE_UP, RET, NOT_UP, base=PIN_REFERENCE, tolerance=0.001),
        Paired("own_price_rise_customers_down_short", "A 20% own price rise at mid-run lowers the own customers in the 12 steps after it.",
               "price", OWN_PRICE_UP_MID, SHORT("customers"), DOWN),
        Paired("own_price_rise_satisfaction_not_up_short", "A 20% own price rise at mid-run does not raise satisfaction in the 12 steps after it.",
               "price", OWN_PRICE_UP_MID, SHORT("satisfaction_avg_mean"), NOT_UP),
        Paired("own_price_rise_nps_not_up_short", "A 20% own price rise at mid-run does not raise NPS in the 12 steps after it.",
               "price", OWN_PRICE_UP_MID, SHORT("nps"), NOT_UP),
        Paired("own_price_rise_retention_not_up_short", "A 20% own price rise at mid-run does not raise retention in the 12 steps after it.",
               "price", OWN_PRICE_UP_MID, SHORT("retention_rate"), NOT_UP),
        # -- a rival's price
        Paired("rival_price_cut_customers_down", "A 20% price cut by the main rival lowers the focal firm's customers (long run).",
               "price", RIVAL_PRICE_CUT, CUSTOMERS, DOWN, base=PIN_REFERENCE, applies=has_rival),
        Paired("rival_price_cut_price_churn_up", "A 20% price cut by the main rival at mid-run raises the focal firm's churn for price (churn_price / customers, 12 steps after the cut).",
               "price", RIVAL_PRICE_CUT_MID, ratio("churn_price", "customers", SHORT_RUN), UP, applies=has_rival),
        # -- value
        Paired("better_value_satisfaction_up", "Better product and service (quality x1.15) at the same price raise satisfaction (long run).",
               "value", BETTER_VALUE, SAT, UP),
        # NPS, trust and retention within segments (a better firm also wins customers of segments that are harder to please)
        *[
            Paired(f"better_value_{name}_up", f"Better product and service (quality x1.15) at the same price raise {what} within each segment (end of the run, weighted by the segments' population shares).",
                   "value", BETTER_VALUE, Measure(f"{what} within segments", window=FINAL, fn=_within_segments(kind), probe="final_customers", needs=("customers",)), UP,
                   applies=applies)
            for name, what, kind, applies in (("nps", "NPS", "nps", None), ("trust", "trust", "trust", None),
                                              ("retention", "retention (yearly repurchase probability)", "repurchase_probability", has_rival))
        ],
        Paired("better_value_retention_not_down_alone", "Better product and service (quality x1.15) at the same price do not lower a monopolist's retention (long run; alone, it keeps nearly everyone whatever it offers).",
               "value", BETTER_VALUE, RET, NOT_DOWN, applies=is_alone),
        Contrast("better_firm_more_satisfied", "Of two otherwise identical firms at the same price, the one with quality and service 1.2 has more satisfied customers than the one with 0.85 (long run).",
                 "value", TWINS, SAT, UP, FOCAL, TWIN),
        Contrast("better_firm_higher_nps", "Of two otherwise identical firms at the same price, the one with quality and service 1.2 has a higher NPS than the one with 0.85 (long run).",
                 "value", TWINS, NPS, UP, FOCAL, TWIN),
        # -- failures and recovery
        *[
            Paired(f"failures_up_{name}_down", f"More service failures (failure rate 0.05 -> 0.15) lower {what} (long run).",
                   "service", FAILURES(0.15), measure, DOWN, base=FAILURES(0.05))
            for name, what, measure in (("satisfaction", "satisfaction", SAT), ("trust", "trust", TRUST), ("retention", "retention", RET), ("clv", "customer lifetime value", mean("clv")))
        ],
        Paired("recovery_up_satisfaction_not_down", "Better recovery (recovery rate 0.3 -> 0.8, failure rate 0.15) does not lower satisfaction (long run).",
               "service", FAILURES(0.15, 0.8), SAT, NOT_DOWN, base=FAILURES(0.15, 0.3)),
        Paired("recovery_up_trust_up", "Better recovery (recovery rate 0.3 -> 0.8, failure rate 0.15) raises trust (long run).",
               "service", FAILURES(0.15, 0.8), TRUST, UP, base=FAILURES(0.15, 0.3)),
        Paired("recovered_failure_not_better_than_none", "An average recovered failure is no better than none: failure rate 0.1 with every failure recovered does not raise satisfaction over no failures (long run; at the default recovery boost, which a scenario may raise above 1 to assume the recovery paradox).",
               "service", FAILURES(0.1, 1.0), SAT, NOT_UP, base=FAILURES(0.0)),
        # -- promise
        Paired("over_promise_acquisitions_up_short", "Over-promising (promise 1.0 -> 1.4 at mid-run) wins more acquisitions in the 12 steps after (from rivals: in a monopoly the promise has no one to win buyers from).",
               "promise", PROMISE_MID(1.4), total("acquisitions", SHORT_RUN), UP, base=PROMISE(1.0), applies=has_rival),
        Paired("over_promise_retention_down", "Over-promising (promise 1.0 -> 1.4) lowers retention (long run).",
               "promise", PROMISE(1.4), RET, DOWN, base=PROMISE(1.0)),
        Shape("promise_profit_inverted_u", "Cumulative profit is an inverted U in the promise (0.7, 1.0, 1.15, 1.5, 2.0): the best level is interior and beats both ends.",
              "promise", F("product.promise"), (0.7, 1.0, 1.15, 1.5, 2.0), mean("cumulative_profit", FINAL), applies=has_rival),
        # -- word of mouth
        Paired("no_positive_wom_retention_not_up", "Without positive word of mouth the firm's retention is not higher (long run).",
               "word of mouth", NO_POSITIVE_WOM, RET, NOT_UP),
        Paired("no_positive_wom_nps_not_up", "Without positive word of mouth the firm's NPS is not higher (long run).",
               "word of mouth", NO_POSITIVE_WOM, NPS, NOT_UP),
        Paired("no_positive_wom_acquisitions_down", "When positive word of mouth stops at mid-run the firm acquires fewer customers from the prospect pool in the 12 steps after.",
               "word of mouth", NO_POSITIVE_WOM_MID, total("acquired_prospects", SHORT_RUN), DOWN),
        Paired("no_positive_wom_customers_down", "Without positive word of mouth the better of two otherwise identical firms (quality and service 1.25 against 1.0), whose promoters do most of the good talking, has fewer customers (long run).",
               "word of mouth", NO_POSITIVE_WOM, CUSTOMERS, DOWN, base=BETTER_TWIN),
        Paired("no_negative_wom_poor_firm_customers_up", "Without negative word of mouth a poor firm (quality and service x0.85, failure rate 0.15) has more customers (long run).",
               "word of mouth", NO_NEGATIVE_WOM, CUSTOMERS, UP, base=POOR_FOCAL),
        # -- marketing
        Paired("marketing_x3_acquisitions_up", "Three times the marketing budget from mid-run wins more acquisitions in the 12 steps after.",
               "acquisition", BUDGET_MID(3), total("acquisitions", SHORT_RUN), UP, base=BUDGET(1)),
        Paired("marketing_x9_acquisitions_up", "Nine rather than three times the marketing budget from mid-run wins more acquisitions in the 12 steps after.",
               "acquisition", BUDGET_MID(9), total("acquisitions", SHORT_RUN), UP, base=BUDGET(3)),
        Compound("marketing_diminishing_returns", "Marketing has diminishing returns: acquisitions gained per unit of budget from x3 to x9 are fewer than from x1 to x3 (12 steps after the budget changes at mid-run).",
                 "acquisition", {"x1": (BUDGET(1),), "x3": (BUDGET(1), BUDGET_MID(3)), "x9": (BUDGET(1), BUDGET_MID(9))}, total("acquisitions", SHORT_RUN),
                 lambda v: (v["x9"] - v["x3"]) / 6.0 - (v["x3"] - v["x1"]) / 2.0, DOWN,
                 label="gain per budget unit x3->x9 minus x1->x3"),
        Paired("marketing_x3_cost_per_acquisition_up", "Three times the marketing budget raises the cost per acquisition (acquisition cost / acquisitions, whole run).",
               "acquisition", BUDGET(3), ratio("acquisition_cost", "acquisitions"), UP, base=BUDGET(1)),
        Paired("marketing_x9_cost_per_acquisition_up", "Nine rather than three times the marketing budget raises the cost per acquisition (whole run).",
               "acquisition", BUDGET(9), ratio("acquisition_cost", "acquisitions"), UP, base=BUDGET(3)),
        # -- rewards
        Paired("points_on_share_incentive_up", "Running a points programme raises the share of incentive-loyal customers (long run).",
               "rewards", REWARDS_ON, mean("share_incentive"), UP, base=REWARDS_OFF, applies=has_rival),
        Paired("points_on_reward_cost_up", "Running a points programme raises the reward cost (whole run).",
               "rewards", REWARDS_ON, total("reward_cost"), UP, base=REWARDS_OFF),
        Paired("points_on_liability_up", "Running a points programme books a liability for the points outstanding (column `points_liability`, long run).",
               "rewards", REWARDS_ON, mean("points_liability"), UP, base=REWARDS_OFF),
        Level("programme_end_incentive_gone", "After a points programme ends at mid-run, the share of incentive-loyal customers is about 0 (< 0.02; steps after the end).",
              "rewards", (REWARDS_ON, REWARDS_END), mean("share_incentive", Window("after", offset=1)), DOWN, threshold=0.02),
        Paired("programme_end_churn_up", "Ending a points programme at mid-run raises churn (churned / customers) in the 12 steps after, versus keeping it.",
               "rewards", REWARDS_END, CHURN_SHORT, UP, base=REWARDS_ON, applies=has_rival),
        Level("programme_end_rewards_churn", "After a points programme ends at mid-run, some customers leave for the rewards they lost (churn_rewards > 0 in the 12 steps after).",
              "rewards", (REWARDS_ON, REWARDS_END), Measure("leavers for rewards after the end", window=SHORT_RUN, fn=_incentive_churn_after_end,
                                                            needs=("churn_rewards", "share_incentive")), UP, threshold=0.0, applies=has_rival),
        # -- lock-in
        *[
            law
            for name, what, keys in LOCK_INS
            for law in (
                Paired(f"lock_in_{name}_retention_up", f"Switching costs from {what} raise retention (long run).",
                       "lock-in", Lever(what, keys), RET, UP, base=NO_LOCK_IN, applies=has_rival),
                Paired(f"lock_in_{name}_satisfaction_not_up", f"Switching costs from {what} do not raise satisfaction (long run).",
                       "lock-in", Lever(what, keys), SAT, NOT_UP, base=NO_LOCK_IN),
                Paired(f"lock_in_{name}_negative_wom_not_down", f"Switching costs from {what} do not lower negative word of mouth per customer: hostages talk badly (word_of_mouth_negative / customers, whole run).",
                       "lock-in", Lever(what, keys), ratio("word_of_mouth_negative", "customers"), NOT_DOWN, base=NO_LOCK_IN),
            )
        ],
        # -- community
        Paired("community_on_attachment_up", "A community raises emotional attachment (long run).", "community", COMMUNITY_ON, mean("attachment_mean"), UP, base=COMMUNITY_OFF),
        Paired("community_on_share_trust_up", "A community raises the share of trust-loyal customers (long run).", "community", COMMUNITY_ON, mean("share_trust"), UP, base=COMMUNITY_OFF, applies=has_rival),
        Paired("community_on_cost_up", "A community costs money (community_cost, whole run).", "community", COMMUNITY_ON, total("community_cost"), UP, base=COMMUNITY_OFF),
        # -- monopoly
        Paired("monopoly_price_up_volume_per_customer_down", "A monopolist's 50% price rise lowers the units each customer buys (long run).",
               "monopoly", PRICE_X15, Measure("units per customer served", window=LONG_RUN, fn=_volume_per_served, needs=("purchases", "customers", "acquired_prospects")), DOWN, base=(MONOPOLY, PIN_REFERENCE)),
        Paired("monopoly_price_up_satisfaction_down", "A monopolist's 50% price rise lowers its customers' satisfaction (long run).",
               "monopoly", PRICE_X15, SAT, DOWN, base=(MONOPOLY, PIN_REFERENCE)),
        Paired("monopoly_price_rise_volume_per_customer_down_short", "A monopolist's 50% price rise at mid-run lowers the units each customer buys in the 12 steps after it.",
               "monopoly", PRICE_X15_MID, Measure("units per customer served", window=SHORT_RUN, fn=_volume_per_served, needs=("purchases", "customers", "acquired_prospects")), DOWN, base=MONOPOLY),
        Paired("monopoly_price_rise_satisfaction_down_short", "A monopolist's 50% price rise at mid-run lowers its customers' satisfaction in the 12 steps after it.",
               "monopoly", PRICE_X15_MID, SHORT("satisfaction_avg_mean"), DOWN, base=MONOPOLY),
        Compound("monopoly_price_up_retention_falls_less", "A 50% price rise at mid-run lowers a monopolist's retention less than the same rise lowers it with a rival in the market (12 steps after; difference of paired differences).",
                 "monopoly", {"alone": (MONOPOLY,), "alone_dearer": (MONOPOLY, PRICE_X15_MID),
                  "rivalled": (TWIN_DUOPOLY,), "rivalled_dearer": (TWIN_DUOPOLY, PRICE_X15_MID)},
                 SHORT("retention_rate"), lambda v: (v["alone_dearer"] - v["alone"]) - (v["rivalled_dearer"] - v["rivalled"]), UP,
                 label="retention change alone minus with a rival", applies=has_rival),
        # -- a rival's entry
        AnyOf("rival_entry_takes_dissatisfied_first", "A rival's entry at mid-run takes the dissatisfied first: among the incumbent's leavers in the 12 steps after entry the dissatisfied share exceeds their share of its customers, or the incumbent's satisfaction rises after entry (selection).",
              "competition", (
                  Level("entry_leavers_dissatisfied", "", "competition", (ADD_ENTRANT, ENTRY_MID),
                        Measure("dissatisfied share of leavers - of customers", window=SHORT_RUN, fn=_dissatisfied_leave_first,
                                needs=("churned", "churn_dissatisfied", "churn_left_category", "share_dissatisfied")), UP),
                  Paired("entry_satisfaction_up", "", "competition", ENTRY_MID, SHORT("satisfaction_avg_mean"), UP, base=ADD_ENTRANT),
              )),
        # -- every value lever costs money
        # (the cost to serve a customer: a lever that wins customers also spreads the fixed costs and
        # the marketing budget over more of them, so all costs per customer can fall while the lever
        # costs more per customer served)
        *[
            Paired(f"{name}_raises_cost_per_customer", f"Raising {key} ({low} -> {high}) raises the firm's cost to serve a customer at the lever's default cost ({account.label}, whole run).",
                   "cost of value", Lever(f"{key}={high}", {F(key): high}), account, UP, base=Lever(f"{key}={low}", {F(key): low}))
            for name, key, low, high, account in VALUE_LEVERS
        ],
        # -- forgiveness and memory
        Micro("loyal_forgive_failures_more", "Loyal customers forgive a failure more than new ones: a failure takes a smaller share of a loyal customer's trust (0.9) than of a new customer's (sim.rules.trust_next).",
              "memory", _forgiveness, DOWN, needs="sim.rules.trust_next with forgiveness"),
        Paired("memory_keeps_dissatisfied_leavers_away", "A customer who left a firm dissatisfied does not come straight back: with memory of former firms (the default grudge) fewer of such leavers' next choices within 6 steps go back to the firm than without it (grudge_weight 0).",
               "memory", Lever("memory of former firms at its default", {"behaviour.memory.grudge_weight": lambda old, ctx: _schema_default("behaviour.memory.grudge_weight")}),
               Measure("share of dissatisfied leavers' next choices that go back", fn=_return_share, probe="returns", needs=("customers",)), DOWN,
               base=Lever("no memory of former firms", {"behaviour.memory.grudge_weight": 0.0}), applies=has_rival),
        # -- loyalty types
        Level("none_share_where_dissatisfied", "Where dissatisfied customers are a visible group (more than 5% of some firm's customers), customers with no loyalty are one too: more than 2% of the market's customers (satisfied but not loyal, or switchers in waiting; all firms, weighted by customers, over those steps).",
              "loyalty types", None, Measure("share_none where share_dissatisfied > 0.05", window=WHOLE_RUN, fn=_none_where_dissatisfied,
                                             needs=("customers", "share_dissatisfied", "share_none")), UP, threshold=0.02, firm=ALL_FIRMS, applies=has_rival),
        Level("trust_loyal_trust_above_mean", "The focal firm's trust-loyal customers trust it more than its customers on average (end of the run).",
              "loyalty types", None, Measure("trust of trust-loyal - mean trust", window=FINAL, fn=_trust_loyal_gap, probe="final_customers", needs=("customers",)), UP),
    ]
    ids = [law.id for law in laws]
    assert len(ids) == len(set(ids)), "law ids must be unique"
    return laws


LAWS: list[Law] = _laws()
LAWS_BY_ID: dict[str, Law] = {law.id: law for law in LAWS}


def describe(laws: Iterable[Law] = ()) -> str:
    """The law table as text: id, family, kind and statement."""
    return "\n".join(f"{law.id:<48} {law.family:<14} {law.kind:<9} {law.statement}" for law in (laws or LAWS))
