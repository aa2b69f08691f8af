"""Lessons: the course's stories replayed as experiments, each with a trainer's note and claims.

A lesson is a scenario (or a scenario and a few variants of it) in ``scenarios/lessons/``,
listed in that folder's ``index.lessons`` (YAML) with a trainer's note (what to show, what to ask
the class, what the charts should reveal) and the claims the lesson makes. A lesson runs
through the experiment machinery of :mod:`sim.experiments`: a comparison of its variants
with common random numbers, or the retention-effect counterfactual. Nothing of the story
is written into the model: the claims are checked against the runs afterwards.

A claim says that one quantity is higher than another, over paired replications::

    - says: Over-promising wins more new customers in the first year
      higher: {variant: over_promise, measure: acquisitions, steps: [1, 12], stat: sum}
      than: {variant: honest}

Each side names a ``variant`` (or ``minus: [A, B]``: the difference of two variants, for
differences in differences), a ``measure`` (a column of the metrics table, or an outcome of
:data:`sim.experiments.OUTCOMES` such as ``retention_rate_annual``), a ``firm`` (default:
the focal firm), the ``steps`` window ``[first, last]`` and the ``stat`` over it (``mean``,
``sum`` or ``last``). Keys left out of ``than`` are taken from ``higher``; ``than`` may also
be a plain number. The claim holds when the mean paired difference ``higher - than`` has a
95% interval above zero.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.loader import LineMap, Problem, ScenarioError, format_path, line_of, load_yaml

INDEX_NAME = "index.lessons"  # YAML; not *.yaml, so that tools taking every *.yaml for a scenario skip it
KINDS = ("compare", "retention-effect")
STATS = ("mean", "sum", "last")
_LESSON_KEYS = {
    "title", "sections", "kind", "scenario", "variants", "replications", "gains", "headline",
    "show", "ask", "reveal", "claims",
}
_SIDE_KEYS = {"variant", "minus", "measure", "firm", "steps", "stat"}
_CLAIM_KEYS = {"says", "higher", "than"}


def default_folder() -> Path:
    """The shipped lessons: ``scenarios/lessons`` of the source tree, else of the working folder."""
    shipped = Path(__file__).resolve().parent.parent / "scenarios" / "lessons"
    return shipped if (shipped / INDEX_NAME).is_file() else Path("scenarios") / "lessons"


@dataclass(frozen=True)
class Side:
    """One side of a claim: a quantity computed per replication."""

    variants: tuple[str, ...]  # one variant, or two whose difference is taken
    measure: str
    firm: str | None = None
    steps: tuple[int, int] | None = None
    stat: str = "mean"
    constant: float | None = None

    def describe(self) -> str:
        if self.constant is not None:
            return f"{self.constant:g}"
        who = self.variants[0] if len(self.variants) == 1 else f"({self.variants[0]} - {self.variants[1]})"
        window = f", steps {self.steps[0]}-{self.steps[1]}" if self.steps else ""
        stat = f"{self.stat} " if self.steps or self.stat != "mean" else ""
        return f"{stat}{self.measure} of {self.firm or 'the focal firm'} in {who}{window}"


@dataclass(frozen=True)
class Claim:
    says: str
    higher: Side
    than: Side


@dataclass(frozen=True)
class Lesson:
    """One lesson of the index."""

    name: str
    title: str
    sections: str
    kind: str
    scenario: Path
    variants: dict[str, dict[str, Any]]
    replications: int
    show: str
    ask: str
    reveal: str
    claims: tuple[Claim, ...]
    gains: tuple[float, ...] = (0.0, 2.5, 5.0, 7.5, 10.0)
    headline: float = 5.0

    def note(self) -> str:
        """The trainer's note as plain text."""
        return f"Show: {self.show}\nAsk the class: {self.ask}\nThe charts should reveal: {self.reveal}"


@dataclass
class ClaimResult:
    claim: Claim
    difference: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def holds(self) -> bool:
        return self.ci_low > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "says": self.claim.says,
            "higher": self.claim.higher.describe(),
            "than": self.claim.than.describe(),
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "holds": self.holds,
        }


@dataclass
class LessonResult:
    lesson: Lesson
    experiment: Any  # sim.experiments.ExperimentResult
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.experiment.folder


# --------------------------------------------------------------------------- the index


def load_lessons(folder: str | Path | None = None) -> dict[str, Lesson]:
    """Read and check the lessons index of ``folder`` (default: the shipped lessons).

    Every problem (unknown key, missing note, a claim naming a variant the lesson lacks,
    a missing scenario file) is reported at once as a :class:`ScenarioError`."""
    folder = Path(folder) if folder is not None else default_folder()
    path = folder / INDEX_NAME
    data, lines = load_yaml(path)
    source = str(path)
    problems: list[Problem] = []
    lessons: dict[str, Lesson] = {}
    for name, raw in data.items():
        found = _lesson(folder, source, lines, str(name), raw, problems)
        if found is not None:
            lessons[str(name)] = found
    if problems:
        raise ScenarioError(problems)
    return lessons


def _lesson(folder: Path, source: str, lines: LineMap, name: str, raw: Any, problems: list[Problem]) -> Lesson | None:
    def problem(path: tuple, message: str) -> None:
        problems.append(Problem(source, format_path((name, *path)), message, line_of(lines, (name, *path))))

    if not isinstance(raw, dict):
        problem((), "expected a mapping of lesson settings (title, kind, scenario, variants, show, ask, reveal, claims)")
        return None
    before = len(problems)
    for key in raw:
        if key not in _LESSON_KEYS:
            problem((key,), f"unknown key '{key}'; a lesson has {', '.join(sorted(_LESSON_KEYS))}")
    for key in ("title", "show", "ask", "reveal", "scenario"):
        if not isinstance(raw.get(key), str) or not raw.get(key).strip():
            problem((key,), "expected a non-empty text")
    kind = raw.get("kind", "compare")
    if kind not in KINDS:
        problem(("kind",), f"expected one of {', '.join(KINDS)}, got {kind!r}")
    scenario = folder / str(raw.get("scenario", ""))
    if isinstance(raw.get("scenario"), str) and not scenario.is_file():
        problem(("scenario",), f"scenario file {scenario} not found")
    replications = raw.get("replications", 10)
    if not isinstance(replications, int) or isinstance(replications, bool) or replications < 2:
        problem(("replications",), f"expected a whole number >= 2, got {replications!r}")
    variants: dict[str, dict[str, Any]] = {}
    raw_variants = raw.get("variants", {} if kind == "retention-effect" else None)
    if kind == "compare":
        if not isinstance(raw_variants, dict) or len(raw_variants) < 2:
            problem(("variants",), "a comparison needs two or more variants: NAME: {KEY: VALUE, ...} ({} for the scenario as it is)")
        else:
            for label, changes in raw_variants.items():
                if not isinstance(changes, dict):
                    problem(("variants", label), "expected a mapping of scenario keys to values ({} for none)")
                    continue
                variants[str(label)] = {str(k): v for k, v in changes.items()}
    elif raw_variants:
        problem(("variants",), "a retention-effect lesson has no variants; its variants are the retention gains (gains: [...])")
    gains = raw.get("gains", [0, 2.5, 5, 7.5, 10])
    headline = raw.get("headline", 5)
    if kind == "retention-effect":
        if not isinstance(gains, list) or not all(isinstance(g, (int, float)) and 0 <= g <= 100 for g in gains):
            problem(("gains",), "expected a list of retention gains in points (0-100)")
            gains = []
        variants = {f"g{float(g):g}": {} for g in sorted({0.0, float(headline), *map(float, gains)})}
    claims = []
    raw_claims = raw.get("claims")
    if not isinstance(raw_claims, list) or not raw_claims:
        problem(("claims",), "expected a list of claims (says, higher, than)")
        raw_claims = []
    for i, item in enumerate(raw_claims):
        claim = _claim(item, variants, lambda path, message, i=i: problem(("claims", i, *path), message))
        if claim is not None:
            claims.append(claim)
    if len(problems) > before:
        return None
    sections = raw.get("sections", "")
    return Lesson(
        name, raw["title"].strip(), str(sections), kind, scenario, variants, replications,
        " ".join(raw["show"].split()), " ".join(raw["ask"].split()), " ".join(raw["reveal"].split()), tuple(claims),
        tuple(float(g) for g in gains), float(headline),
    )


def _claim(item: Any, variants: Mapping[str, Any], problem: Callable[[tuple, str], None]) -> Claim | None:
    if not isinstance(item, dict):
        problem((), "expected a mapping with says, higher and than")
        return None
    ok = True
    for key in item:
        if key not in _CLAIM_KEYS:
            problem((key,), f"unknown key '{key}'; a claim has says, higher and than")
            ok = False
    if not isinstance(item.get("says"), str):
        problem(("says",), "expected the claim in words")
        ok = False
    higher = _side(item.get("higher"), {}, variants, lambda p, m: problem(("higher", *p), m))
    if isinstance(item.get("than"), (int, float)) and not isinstance(item.get("than"), bool):
        than = Side((), "", constant=float(item["than"]))
    else:
        base = {} if higher is None else {"variants": higher.variants, "measure": higher.measure, "firm": higher.firm, "steps": higher.steps, "stat": higher.stat}
        than = _side(item.get("than"), base, variants, lambda p, m: problem(("than", *p), m))
    if not ok or higher is None or than is None:
        return None
    return Claim(item["says"], higher, than)


def _side(raw: Any, base: dict[str, Any], variants: Mapping[str, Any], problem: Callable[[tuple, str], None]) -> Side | None:
    if not isinstance(raw, dict):
        problem((), "expected a mapping: {variant: NAME, measure: COLUMN, steps: [FIRST, LAST], stat: mean|sum|last} or a number")
        return None
    ok = True
    for key in raw:
        if key not in _SIDE_KEYS:
            problem((key,), f"unknown key '{key}'; expected {', '.join(sorted(_SIDE_KEYS))}")
            ok = False
    values = dict(base)
    if "variant" in raw:
        values["variants"] = (str(raw["variant"]),)
    if "minus" in raw:
        minus = raw["minus"]
        if not (isinstance(minus, list) and len(minus) == 2):
            problem(("minus",), "expected two variants [A, B]: the difference A - B")
            return None
        values["variants"] = tuple(map(str, minus))
    for name in values.get("variants", ()):
        if name not in variants:
            problem(("variant",), f"unknown variant {name!r}; the lesson's variants are {', '.join(variants)}")
            ok = False
    if "variants" not in values:
        problem(("variant",), "name a variant (variant: NAME) or a difference (minus: [A, B])")
        ok = False
    if "measure" in raw:
        values["measure"] = raw["measure"]
    if not isinstance(values.get("measure"), str):
        problem(("measure",), "expected a measure: a metrics column such as retention_rate, or an outcome such as retention_rate_annual")
        ok = False
    if "firm" in raw:
        values["firm"] = str(raw["firm"])
    if "steps" in raw:
        steps = raw["steps"]
        if not (isinstance(steps, list) and len(steps) == 2 and all(isinstance(s, int) and s >= 0 for s in steps) and steps[0] <= steps[1]):
            problem(("steps",), "expected [FIRST, LAST] steps, whole numbers with FIRST <= LAST")
            ok = False
        else:
            values["steps"] = (steps[0], steps[1])
    if "stat" in raw:
        if raw["stat"] not in STATS:
            problem(("stat",), f"expected one of {', '.join(STATS)}, got {raw['stat']!r}")
            ok = False
        values["stat"] = raw["stat"]
    if not ok:
        return None
    return Side(values["variants"], values["measure"], values.get("firm"), values.get("steps"), values.get("stat", "mean"))


# --------------------------------------------------------------------------- running a lesson


def lesson_scenarios(lesson: Lesson, overrides: Mapping[str, Any] | None = None) -> list[tuple[str, Any]]:
    """The (label, scenario) variants of ``lesson``, each with ``overrides`` applied on top."""
    from sim.api import load_scenario

    overrides = dict(overrides or {})
    loaded, problems = [], []
    for label, changes in (lesson.variants.items() if lesson.kind == "compare" else [(lesson.name, {})]):
        try:
            loaded.append((label, load_scenario(lesson.scenario, {**changes, **overrides})))
        except ScenarioError as exc:
            problems += [Problem(p.source, p.path, f"lesson {lesson.name}, variant {label}: {p.message}", p.line, p.hint) for p in exc.problems]
    if problems:
        raise ScenarioError(problems)
    return loaded


def run_lesson(
    lesson: Lesson,
    *,
    replications: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path = "results",
    jobs: int = 1,
    scheduler: str | None = None,
    seed: int | None = None,
    exp_id: str | None = None,
    progress=None,
    charts: bool = True,
) -> LessonResult:
    """Run ``lesson`` (its comparison or retention effect), check its claims, write ``lesson.json``
    into the experiment folder and, with ``charts``, draw the experiment's charts."""
    from sim import experiments

    n = replications or lesson.replications
    variants = lesson_scenarios(lesson, overrides)
    common = {"out": Path(out) / "lessons" / lesson.name, "jobs": jobs, "scheduler": scheduler, "seed": seed, "exp_id": exp_id or None, "progress": progress}
    if lesson.kind == "compare":
        experiment = experiments.compare(variants, n, **common)
    else:
        experiment = experiments.retention_effect(variants[0][1], n, gains=lesson.gains, headline=lesson.headline, **common)
    focal = variants[0][1].focal_firm
    metrics = pd.read_csv(experiment.folder / "metrics.csv")
    result = LessonResult(lesson, experiment, [check_claim(c, metrics, experiment.runs, focal) for c in lesson.claims])
    record = {
        "lesson": lesson.name,
        "title": lesson.title,
        "sections": lesson.sections,
        "scenario": str(lesson.scenario),
        "overrides": {k: v for k, v in (overrides or {}).items()},
        "note": {"show": lesson.show, "ask": lesson.ask, "reveal": lesson.reveal},
        "claims": [c.as_dict() for c in result.claims],
    }
    tmp = experiment.folder / ".lesson.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, experiment.folder / "lesson.json")
    if charts:
        from sim.experiment_charts import plot_experiment

        plot_experiment(experiment.folder)
    return result


def side_values(side: Side, metrics: pd.DataFrame, runs: pd.DataFrame, focal: str) -> pd.Series:
    """The side's value per replication (indexed by replication)."""
    firm = side.firm or focal
    per_variant = [_variant_values(variant, side, firm, metrics, runs) for variant in side.variants]
    if len(per_variant) == 1:
        return per_variant[0]
    a, b = per_variant
    return (a - b).dropna()


def _variant_values(variant: str, side: Side, firm: str, metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    from sim.experiments import OUTCOMES

    if side.measure in OUTCOMES and side.steps is None:
        own = runs[(runs["variant"] == variant) & (runs["firm"] == firm)]
        if own.empty:
            raise KeyError(f"no runs of variant {variant!r} for firm {firm!r}")
        return own.set_index("replication")[side.measure].astype(float)
    if side.measure not in metrics.columns:
        raise KeyError(f"unknown measure {side.measure!r}: not a metrics column nor an outcome")
    own = metrics[(metrics["variant"] == variant) & (metrics["firm"] == firm)]
    if own.empty:
        raise KeyError(f"no runs of variant {variant!r} for firm {firm!r}")
    if side.steps is not None:
        own = own[(own["step"] >= side.steps[0]) & (own["step"] <= side.steps[1])]
    own = own.sort_values(["replication", "step"])
    grouped = own.groupby("replication")[side.measure]
    values = {"mean": grouped.mean, "sum": grouped.sum, "last": grouped.last}[side.stat]()
    return values.astype(float)


def check_claim(claim: Claim, metrics: pd.DataFrame, runs: pd.DataFrame, focal: str) -> ClaimResult:
    """The mean paired difference ``higher - than`` over replications, with its 95% interval."""
    from sim.experiments import interval

    high = side_values(claim.higher, metrics, runs, focal)
    if claim.than.constant is not None:
        diff = high - claim.than.constant
    else:
        low = side_values(claim.than, metrics, runs, focal)
        diff = (high - low).dropna()
    values = diff.to_numpy(dtype=np.float64)
    mean, ci_low, ci_high = interval(values)
    return ClaimResult(claim, mean, ci_low, ci_high, int(values.size))


def claim_line(result: ClaimResult) -> str:
    mark = "holds" if result.holds else "NOT SHOWN"
    return f"[{mark}] {result.claim.says}: difference {_fmt(result.difference)} [{_fmt(result.ci_low)}, {_fmt(result.ci_high)}], n = {result.n}"


def _fmt(value: float) -> str:
    return f"{value:+.3g}" if abs(value) < 1000 else f"{value:+,.0f}"


__all__ = [
    "Claim",
    "ClaimResult",
    "Lesson",
    "LessonResult",
    "Side",
    "check_claim",
    "claim_line",
    "default_folder",
    "lesson_scenarios",
    "load_lessons",
    "run_lesson",
]
