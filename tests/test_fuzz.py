"""Property-based fuzzing of scenario files (Hypothesis).

Over 10,000 generated documents per run of the suite (the ``max_examples`` below sum to
10,200), each loaded from its bytes the way the command line loads a file
(:func:`sim.api.load_scenario_bytes`: the same decoding, reading and validation as
:func:`sim.api.load_scenario` without the disk): malformed or hostile scenario documents (wrong types,
missing and unknown keys, out-of-range and non-finite numbers, huge numbers, deep nesting,
duplicate keys, YAML tags, anchors and aliases, binary junk, wrong encodings). Each must
either load or fail with a :class:`~sim.loader.ScenarioError` whose problems are one line
each and name the key path of the mistake; any other exception fails the test.

Runs are deterministic (``derandomize=True``, no example database), so CI sees the same
documents every time. ``pytest tests/test_fuzz.py --hypothesis-show-statistics`` shows how
many were tried. The nastiest cases are kept as a corpus in ``tests/corpus/`` and run
through the real command line in ``tests/test_corpus.py``.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.api import load_scenario_bytes
from sim.loader import ScenarioError, format_path
from sim.scenario import Scenario

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: File-level problems (no key path): what they may say.
FILE_LEVEL = re.compile(
    r"invalid YAML|file is empty|top level must be a mapping|not valid UTF-8|alias|nested more than|"
    r"cannot be used as a key|empty key|merge key|YAML tag|is read by YAML as"
)

BASE: dict[str, Any] = {
    "name": "fuzz",
    "market": {"population": 100, "steps": 3, "seed": 2, "network": {"mean_degree": 4}},
    "segments": [
        {"name": "a", "share": 0.6, "price_sensitivity": {"mean": 1.2, "sd": 0.1}},
        {"name": "b", "share": 0.4, "preset": "busy_inert"},
    ],
    "firms": {
        "focal": {"role": "focal", "initial_share": 0.3, "price": {"list": 10.0},
                  "rewards": {"enabled": True, "points_rate": 0.05, "tiers": [{"name": "gold", "min_annual_spend": 300, "discount": 0.05}]}},
        "rival": {"initial_share": 0.2, "serves": ["a"], "service": {"quality": 1.1}},
    },
}
TIMELINE = [{"at": 2, "set": {"firms.rival.price.list": 9.0, "behaviour.trust.initial": 0.4}}]

_FILE = "fuzzed/scenario.yaml"


def load_bytes(data: bytes) -> Scenario | ScenarioError:
    """Load ``data`` as a scenario file: a Scenario, or the ScenarioError it raised (anything
    else propagates and fails the test)."""
    try:
        return load_scenario_bytes(data, _FILE)
    except ScenarioError as exc:
        return exc


def assert_clear(outcome: Scenario | ScenarioError) -> list[str]:
    """Every problem is one line, names its file, and names a key path unless it is about the
    file as a whole. Returns the key paths named."""
    if isinstance(outcome, Scenario):
        return []
    assert outcome.problems, "a ScenarioError without problems"
    for problem in outcome.problems:
        text = str(problem)
        assert "\n" not in text and "\r" not in text, text
        assert "Traceback" not in text and text.startswith(_FILE), text
        assert problem.message.strip(), text
        if not problem.path:
            assert FILE_LEVEL.search(problem.message), f"a problem without a key path: {text}"
    return [p.path for p in outcome.problems]


# --------------------------------------------------------------------------- 1. mutated scenarios

_KEYS_BY_SECTION = {name: list(field.annotation.model_fields) for name, field in Scenario.model_fields.items() if hasattr(field.annotation, "model_fields")}

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e-308, 5e-324]),
    st.text(max_size=20),
    st.sampled_from(["no", "yes", "on", "off", "012", "1:30", "1e3", "0x1F", "~", "null", "../../etc/passwd", "a/b", "..", "", " ", "\x00"]),
)


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


hostile_values = st.one_of(
    hostile_scalars,
    st.lists(hostile_scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), hostile_scalars, max_size=3),
    st.integers(min_value=95, max_value=105).map(nested),
    st.just({}), st.just([]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw, with_timeline: bool) -> tuple[dict[str, Any], tuple, str]:
    """A valid scenario with 1-3 mutations; returns (doc, first mutated path, kind)."""
    doc = copy.deepcopy(BASE)
    if with_timeline:
        doc["timeline"] = copy.deepcopy(TIMELINE)
    first: tuple = ()
    kind = ""
    count = draw(st.integers(1, 3))
    for n in range(count):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "unknown", "rename"]))
        parent = _parent(doc, path)
        if action in ("unknown", "rename") and not (isinstance(parent, dict) and isinstance(path[-1], str)):
            action = "replace"
        if action == "replace":
            parent[path[-1]] = draw(hostile_values)
        elif action == "delete":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        elif action == "unknown":
            key = draw(st.sampled_from(["colour", "price_list", "sead", "steps_", "x" * 300, "no"]))
            parent[key] = draw(hostile_scalars)
            path = path[:-1] + (key,)
        elif action == "rename":
            parent[path[-1] + draw(st.sampled_from(["s", "_", "X"]))] = parent.pop(path[-1])
        if n == 0:
            first, kind = path, action
    return doc, first, kind if count == 1 else "several"


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=10**6).encode("utf-8")


def _related(named: list[str], path: tuple) -> bool:
    """Does one of the problems name the mutated key, a key inside it or a key around it?"""
    target = format_path(path)
    for found in named:
        if found == "" or target.startswith(found) or found.startswith(target):
            return True
    return False


def _check_mutation(doc: dict, path: tuple, kind: str) -> None:
    outcome = load_bytes(_dump(doc))
    assert_clear(outcome)
    if kind == "unknown":  # an added key is refused (unknown key, or a firm that is not a firm) by its path
        assert isinstance(outcome, ScenarioError), "an unknown key was accepted"
        named = assert_clear(outcome)
        assert "" in named or _related(named, path), (format_path(path), str(outcome))


@settings(FUZZ, max_examples=900)
@given(mutated(with_timeline=False))
def test_mutated_scenarios_load_or_fail_clearly(case):
    doc, path, kind = case
    _check_mutation(doc, path, kind)


@settings(FUZZ, max_examples=200)
@given(mutated(with_timeline=True))
def test_mutated_scenarios_with_a_timeline_load_or_fail_clearly(case):
    doc, path, kind = case
    _check_mutation(doc, path, kind)


@settings(FUZZ, max_examples=800)
@given(st.sampled_from(_paths(BASE)), hostile_scalars)
def test_one_bad_value_is_reported_at_its_key_path(path, value):
    """A single replaced value: if it is refused, a problem names that key (or the section
    that a cross-key rule, such as shares summing to 1, is about)."""
    doc = copy.deepcopy(BASE)
    _parent(doc, path)[path[-1]] = value
    outcome = load_bytes(_dump(doc))
    named = assert_clear(outcome)
    cross_reference = any("unknown segment" in p.message for p in getattr(outcome, "problems", []))  # a renamed segment
    if isinstance(outcome, ScenarioError) and not cross_reference:
        assert _related(named, path), (format_path(path), value, str(outcome))
    if isinstance(value, float) and not math.isfinite(value) and isinstance(_parent(BASE, path)[path[-1]], float):
        assert isinstance(outcome, ScenarioError), "a non-finite number was accepted"


# --------------------------------------------------------------------------- 2. YAML-ish text

KEYS = ["name", "market", "population", "steps", "step_days", "seed", "firms", "focal", "segments", "share", "price", "list",
        "timeline", "at", "set", "no", "yes", "on", "1", "null", "~", "<<", "? ", "- ", "&a x", "*a", "!!python/object:os.system", "'quoted'", "\"dq\"", "x" * 80]
VALUES = ["1", "012", "1:30", "1e3", "1.0e+3", ".nan", "-.inf", "1e400", "99999999999999999999999999", "0x1F", "true", "no", "~", "",
          "[1, 2", "{a: 1", "[", "]", "{", "}", "\"unterminated", "'x'", "|", ">", "&anchor 3", "*anchor", "*undefined", "!!binary aGk=",
          "!!python/object/apply:os.system [\"echo pwned\"]", "!!python/name:os.system", "!custom x", "!!set {a, b}", "!!omap [a: 1]",
          "2024-01-01", "2024-01-01 10:00:00", "=", "<<", "%", "@", "`", "\t", "\x00", "\x07", "\ufeff", "é", "\U0001F600", "- a", "? b", ": c",
          "---", "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "#comment", "a: b: c"]


@st.composite
def yaml_texts(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 4, 1, 3]))
        key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(VALUES))
        form = draw(st.sampled_from(["{i}{k}: {v}", "{i}{k}:", "{i}- {v}", "{i}{v}", "{i}{k}: [{v}, {v}]", "{i}{k}: {{x: {v}}}"]))
        lines.append(form.format(i=indent, k=key, v=value))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=1800)
@given(yaml_texts())
def test_yaml_token_soup_loads_or_fails_clearly(data):
    assert_clear(load_bytes(data))


# --------------------------------------------------------------------------- 3. bytes and encodings

GOOD_TEXT = "name: fuzz\ntitle: Café ünïcode test\nmarket: {population: 100, steps: 3}\n"


@settings(FUZZ, max_examples=4000)
@given(st.binary(max_size=400))
def test_binary_junk_fails_clearly(data):
    assert_clear(load_bytes(data))


@settings(FUZZ, max_examples=2500)
@given(
    st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig"]),
    st.integers(0, len(GOOD_TEXT)), st.binary(max_size=8),
)
def test_other_encodings_and_spliced_bytes_fail_clearly(encoding, cut, junk):
    data = GOOD_TEXT.encode(encoding)
    data = data[:cut] + junk + data[cut:]
    outcome = load_bytes(data)
    assert_clear(outcome)
    if encoding in ("utf-16", "utf-16-le", "utf-32"):
        assert isinstance(outcome, ScenarioError), "a UTF-16/32 file must not be read as UTF-8 text"
