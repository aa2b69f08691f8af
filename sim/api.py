"""The Python API: load a scenario, run it. The command line is a thin layer over these."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from sim.loader import Problem, ScenarioError, format_path, line_of, load_yaml, load_yaml_bytes, problems_from_validation_error
from sim.scenario import Scenario, set_key_path, split_key_path


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, validate and return the scenario in ``path``.

    ``overrides`` maps dotted key paths to values applied before validation (used by the
    command line's --set). Every problem in the file is reported at once, as a
    :class:`~sim.loader.ScenarioError` naming the file, key path and line.
    """
    data, lines = load_yaml(path)
    return _with_overrides(data, lines, str(path), Path(path).stem, overrides)


def load_scenario_bytes(raw: bytes, source: str = "<upload>", overrides: dict[str, Any] | None = None) -> Scenario:
    """Like :func:`load_scenario` for the bytes of a scenario file (an upload, a test):
    the same decoding, safe reading, guards and validation; problems name ``source``."""
    data, lines = load_yaml_bytes(raw, source)
    return _with_overrides(data, lines, source, Path(source).stem, overrides)


def _with_overrides(data: dict[str, Any], lines, path: str, stem: str, overrides: dict[str, Any] | None) -> Scenario:
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_-]", "_", stem).lstrip("_-0123456789") or "scenario")
    scenario = scenario_from_dict(data, source=str(path), lines=lines)
    if not overrides:
        return scenario
    resolved = scenario.model_dump(mode="python")  # every default filled in, so defaults can be overridden too
    for key, value in overrides.items():
        try:
            set_key_path(resolved, key, value)
        except KeyError as exc:
            raise ScenarioError([Problem(str(path), key, str(exc.args[0]).split(": ", 1)[-1], None)]) from None
    return scenario_from_dict(resolved, source=f"{path} (with --set)")


def scenario_from_dict(data: dict[str, Any], source: str = "<dict>", lines: dict | None = None) -> Scenario:
    """Validate plain scenario data (as read from YAML) into a :class:`Scenario`."""
    lines = lines if lines is not None else {}
    scenario = validate_deferred(data, lines, source)
    problems = [Problem(source, format_path(path), message, line_of(lines, path)) for path, message in scenario.consistency_problems()]
    problems += _timeline_problems(scenario, lines, source)
    if problems:
        raise ScenarioError(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return scenario


def validate_deferred(data: Any, lines: dict, source: str) -> Scenario:
    """Schema validation of every key; cross-key checks are left to the caller."""
    try:
        return Scenario.model_validate(data, context={"defer_consistency": True})
    except ValidationError as exc:
        raise ScenarioError(problems_from_validation_error(exc, Scenario, lines, source)) from None


def _timeline_problems(scenario: Scenario, lines: dict, source: str) -> list[Problem]:
    """Each timeline change must name a scenario key and give it a valid value."""
    problems: list[Problem] = []
    state = scenario.model_dump(mode="python")  # every default filled in, so defaults can be changed too
    for i, event in sorted(enumerate(scenario.timeline), key=lambda item: item[1].at):
        for key, value in event.set.items():
            where = ("timeline", i, "set", key)
            try:
                split_key_path(key)
                set_key_path(state, key, value)
            except KeyError as exc:
                problems.append(Problem(source, format_path(where), str(exc.args[0]).split(": ", 1)[-1], line_of(lines, where)))
                continue
        try:
            Scenario.model_validate(copy.deepcopy(state), context={"defer_consistency": True})
        except ValidationError as exc:
            for p in problems_from_validation_error(exc, Scenario, {}, source):
                key = next((k for k in event.set if p.path == k or p.path.startswith(k + ".") or p.path.startswith(k + "[")), None)
                where = ("timeline", i, "set", key) if key else ("timeline", i)
                problems.append(Problem(source, format_path(where), f"from step {event.at}, {p.path}: {p.message}", line_of(lines, where), p.hint))
    return problems


def run(scenario: Scenario | str | Path, *, seed: int | None = None, progress: Callable[[int], None] | None = None, threads: int | None = None):
    """Build the model of ``scenario`` (a Scenario or a file path) and run every step; return the model.
    ``threads``: how many threads share a step (default: every available core; the results do not depend on it)."""
    from sim.model import LoyaltyModel

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    check_resources(scenario)
    return LoyaltyModel(scenario, seed=seed, threads=threads).run(progress)


def check_resources(scenario: Scenario, source: str = "<scenario>") -> None:
    """Raise :class:`~sim.loader.ScenarioError` (naming ``market.population`` and the memory
    estimate) when one run of ``scenario`` needs more memory than this machine has free."""
    from sim.limits import resource_problem

    problem = resource_problem(scenario)
    if problem is not None:
        raise ScenarioError([Problem(source, "market.population", problem, None)])
