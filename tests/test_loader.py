"""Tests for sim.loader: safe YAML reading and readable validation errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim import loader
from sim.loader import (
    LineMap,
    Problem,
    ScenarioError,
    format_path,
    line_of,
    load,
    load_yaml,
    loads,
    problems_from_validation_error,
    read_yaml,
    validate,
)

# --------------------------------------------------------------------------- #
# A toy schema with the shapes the real one uses
# --------------------------------------------------------------------------- #

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class TraitSpec(BaseModel):
    model_config = STRICT
    mean: float
    sd: Annotated[float, Field(ge=0)] = 0.0


class Tier(BaseModel):
    model_config = STRICT
    name: str
    min_spend: Annotated[float, Field(ge=0)]


class Rewards(BaseModel):
    model_config = STRICT
    kind: Literal["points", "cashback"] = "points"
    points_rate: Annotated[float, Field(ge=0, le=1)]
    tiers: list[Tier] = []


class Price(BaseModel):
    model_config = STRICT
    list: Annotated[float, Field(ge=0)]

    @field_validator("list")
    @classmethod
    def not_unlucky(cls, value: float) -> float:
        if value == 13:
            raise ValueError("a list price of 13 is not allowed")
        return value


class Firm(BaseModel):
    model_config = STRICT
    price: Price
    rewards: Rewards | None = None


class Scenario(BaseModel):
    model_config = STRICT
    name: str
    seed: int = 0
    enabled: bool = True
    firms: dict[str, Firm]
    patience: Annotated[float, Field(ge=0)] | TraitSpec = 1.0
    shocks: list[float | TraitSpec] = []


GOOD = """\
name: base          # line 1
seed: 7
firms:
  focal:
    price:
      list: 10
    rewards:
      points_rate: 0.05
      tiers:
        - name: silver
          min_spend: 100
        - {name: gold, min_spend: 500}
patience: {mean: 2, sd: 0.5}
shocks: [1.5, {mean: 0}]
"""


def problems(text: str) -> list[Problem]:
    """The problems that loading ``text`` raises (fails if there are none)."""
    with pytest.raises(ScenarioError) as info:
        loads(text, Scenario)
    return info.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def by_path(found: list[Problem]) -> dict[str, Problem]:
    return {p.path: p for p in found}


def write(tmp_path: Path, content: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- #
# Happy path, line map, helpers
# --------------------------------------------------------------------------- #


def test_valid_file_loads(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, GOOD), Scenario)
    assert isinstance(scenario, Scenario)
    assert scenario.firms["focal"].rewards.tiers[1].min_spend == 500
    assert scenario.patience == TraitSpec(mean=2, sd=0.5)
    assert scenario.shocks == [1.5, TraitSpec(mean=0)]


def test_line_map_records_keys_and_list_items() -> None:
    data, lines = read_yaml(GOOD)
    assert data["firms"]["focal"]["price"]["list"] == 10
    assert isinstance(lines, LineMap)
    assert lines[()] == 1
    assert lines[("seed",)] == 2
    assert lines[("firms", "focal", "price", "list")] == 6
    assert lines[("firms", "focal", "rewards", "tiers", 0)] == 10
    assert lines[("firms", "focal", "rewards", "tiers", 0, "min_spend")] == 11
    assert lines[("firms", "focal", "rewards", "tiers", 1, "name")] == 12
    assert lines[("shocks", 1)] == 14


def test_line_of_uses_longest_existing_prefix() -> None:
    lines = {(): 1, ("a",): 2, ("a", "b"): 3}
    assert line_of(lines, ("a", "b", "c", 0)) == 3
    assert line_of(lines, ("a", "x")) == 2
    assert line_of(lines, ("zzz",)) == 1
    assert line_of({}, ("a",)) is None


def test_format_path() -> None:
    assert format_path(("firms", "focal", "rewards", "tiers", 1, "min_spend")) == \
        "firms.focal.rewards.tiers[1].min_spend"
    assert format_path(()) == ""
    assert format_path((0, "a")) == "[0].a"
    assert format_path(("a", "odd key")) == "a['odd key']"


def test_problem_and_error_formatting() -> None:
    p = Problem("x.yaml", "a.b", "expected a number, got 'q' (string)", 12, "did you mean 'c'?")
    assert str(p) == "x.yaml:12: a.b: expected a number, got 'q' (string) (did you mean 'c'?)"
    assert str(Problem("x.yaml", "", "file not found", None)) == "x.yaml: file not found"
    err = ScenarioError([Problem("x", "b", "late", 9), Problem("x", "a", "early", 2)])
    assert [p.line for p in err.problems] == [2, 9]
    assert str(err) == "x:2: a: early\nx:9: b: late"


# --------------------------------------------------------------------------- #
# Schema errors
# --------------------------------------------------------------------------- #

MANY_MISTAKES = """\
name: base
seed: 1.5
firms:
  focal:
    price:
      list: -3
    rewards:
      pionts_rate: 0.1
      kind: cashbak
      tiers:
        - name: silver
          min_spend: abc
colour: red
"""


def test_all_problems_reported_at_once_sorted_with_lines() -> None:
    found = problems(MANY_MISTAKES)
    assert [p.line for p in found] == sorted(p.line for p in found)
    got = {p.path: (p.line, p.message) for p in found}
    assert got == {
        "seed": (2, "expected an integer, got 1.5 (number)"),
        "firms.focal.price.list": (6, "expected a number >= 0, got -3"),
        "firms.focal.rewards.points_rate": (7, "missing required key 'points_rate'"),
        "firms.focal.rewards.pionts_rate": (8, "unknown key 'pionts_rate'"),
        "firms.focal.rewards.kind": (9, "expected one of 'points', 'cashback', got 'cashbak'"),
        "firms.focal.rewards.tiers[0].min_spend": (12, "expected a number, got 'abc' (string)"),
        "colour": (13, "unknown key 'colour'"),
    }


def test_did_you_mean_hints() -> None:
    found = by_path(problems(MANY_MISTAKES))
    assert found["firms.focal.rewards.pionts_rate"].hint == "did you mean 'points_rate'?"
    assert found["firms.focal.rewards.kind"].hint == "did you mean 'cashback'?"
    assert "pionts_rate" in found["firms.focal.rewards.points_rate"].hint
    # nothing close: list what is allowed instead
    assert found["colour"].hint == \
        "allowed keys: name, seed, enabled, firms, patience, shocks"


def test_missing_key_points_at_enclosing_mapping() -> None:
    p = only("name: x\nfirms:\n  focal:\n    price: {}\n")
    assert (p.path, p.line, p.message) == ("firms.focal.price.list", 4,
                                           "missing required key 'list'")
    top = only("firms: {}\n")
    assert (top.path, top.line, top.message) == ("name", 1, "missing required key 'name'")


def test_custom_validator_message() -> None:
    p = only("name: x\nfirms: {a: {price: {list: 13}}}\n")
    assert p.message == "a list price of 13 is not allowed"
    assert p.path == "firms.a.price.list"


def test_type_errors_name_what_was_expected() -> None:
    found = by_path(problems("name: 3\nenabled: 2\nfirms: [a]\n"))
    assert found["name"].message == "expected a string, got 3 (number)"
    assert found["name"].hint == "quote the value to make it text"
    assert found["enabled"].message == "expected true or false, got 2 (number)"
    assert found["firms"].message == "expected a mapping (key: value lines), got a list"
    p = only("name: x\nfirms: {a: 5}\n")
    assert p.message == "expected a mapping with keys price, rewards, got 5 (number)"


def test_infinite_and_nan_numbers() -> None:
    found = by_path(problems("name: x\nfirms: {a: {price: {list: .inf}}}\nshocks: [.nan]\n"))
    assert found["firms.a.price.list"].message == "expected a finite number, got inf"
    assert found["shocks[0]"].message == "expected a finite number, got nan"


def test_union_with_scalar_collapses_to_one_problem() -> None:
    p = only("name: x\nfirms: {}\npatience: lots\n")
    assert (p.path, p.line) == ("patience", 3)
    assert p.message == "expected a number or a mapping with keys mean, sd, got 'lots' (string)"


def test_union_reports_the_member_that_fits_the_value() -> None:
    # a mapping was clearly meant as a TraitSpec: report its errors only
    found = by_path(problems("name: x\nfirms: {}\npatience:\n  mean: high\n  sd: -1\n  sdd: 2\n"))
    assert set(found) == {"patience.mean", "patience.sd", "patience.sdd"}
    assert found["patience.mean"].line == 4
    assert found["patience.sd"].message == "expected a number >= 0, got -1"
    assert found["patience.sdd"].hint == "did you mean 'sd'?"
    # a number was clearly meant as a number
    p = only("name: x\nfirms: {}\npatience: -2\n")
    assert (p.path, p.message) == ("patience", "expected a number >= 0, got -2")


def test_union_inside_list() -> None:
    found = problems("name: x\nfirms: {}\nshocks:\n  - 1\n  - oops\n  - {mean: 1, sd: z}\n")
    assert [(p.path, p.line) for p in found] == [("shocks[1]", 5), ("shocks[2].sd", 6)]


def test_messages_are_single_lines_without_urls() -> None:
    for p in problems(MANY_MISTAKES + "patience: [1]\n"):
        assert "\n" not in str(p)
        assert "pydantic" not in str(p) and "http" not in str(p)


def test_problems_from_validation_error_directly() -> None:
    data, lines = read_yaml("name: x\nfirms: {a: {price: {list: 1}, bogus: 1}}\n", "t.yaml")
    with pytest.raises(Exception) as info:
        Scenario.model_validate(data)
    [p] = problems_from_validation_error(info.value, Scenario, lines, "t.yaml")
    assert str(p) == "t.yaml:2: firms.a.bogus: unknown key 'bogus' (allowed keys: price, rewards)"


def test_validate_non_mapping_data() -> None:
    with pytest.raises(ScenarioError) as info:
        validate(Scenario, None, {}, "x.yaml")
    assert str(info.value).startswith("x.yaml: expected a mapping with keys name, seed")


# --------------------------------------------------------------------------- #
# YAML-level problems
# --------------------------------------------------------------------------- #


def test_bool_word_hint() -> None:
    found = by_path(problems("name: no\nfirms: {}\npatience: yes\n"))
    assert found["name"].message == "expected a string, got false (boolean)"
    assert found["name"].hint == "YAML reads 'no' as false; quote it if you meant the text"
    assert found["patience"].hint == "YAML reads 'yes' as true; quote it if you meant the text"
    # 'true' is meant as a boolean: no such hint
    assert only("name: true\nfirms: {}\n").hint is None
    # a quoted 'no' is text
    assert loads("name: 'no'\nfirms: {}\n", Scenario).name == "no"


def test_bool_words_are_recorded_in_line_map() -> None:
    _, lines = read_yaml("a: on\nb: true\nc: [off]\n")
    assert lines.bool_words == {("a",): "on", ("c", 0): "off"}


def test_duplicate_keys() -> None:
    found = problems("name: x\nfirms:\n  a: {price: {list: 1}}\n  a: {price: {list: 2}}\nname: y\n")
    assert [(p.path, p.line, p.message) for p in found] == [
        ("firms.a", 4, "duplicate key 'a' (first at line 3)"),
        ("name", 5, "duplicate key 'name' (first at line 1)"),
    ]


def test_non_string_keys() -> None:
    found = problems("yes: 3\n1: x\nnull: 2\n2024-01-02: d\n? [a]\n: 4\nok: 1\n")
    assert [(p.line, p.message) for p in found] == [
        (1, "key 'yes' is read by YAML as the boolean true; quote it"),
        (2, "key '1' is read by YAML as the number 1; quote it"),
        (3, "key 'null' is read by YAML as null (no value); quote it"),
        (4, "key '2024-01-02' is read by YAML as the date 2024-01-02; quote it"),
        (5, "a list cannot be used as a key; keys must be text"),
    ]
    assert read_yaml("'yes': 3\n'1': x\n")[0] == {"yes": 3, "1": "x"}


def test_unsafe_tags_are_rejected_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (f"name: !!python/object/apply:os.system ['touch {marker}']\n"
            "firms: !custom {}\n"
            "x: !!python/name:os.system\n"
            "y: !!binary aGVsbG8=\n"
            "!!python/name:os.system : 1\n")
    found = problems(text)
    assert not marker.exists()
    assert [(p.line, p.path) for p in found] == [
        (1, "name"), (2, "firms"), (3, "x"), (4, "y"), (5, "")]
    assert found[0].message == ("YAML tag '!!python/object/apply:os.system' is not allowed: "
                                "scenario files are data only")
    assert found[1].message.startswith("YAML tag '!custom' is not allowed")


def test_standard_tags_are_fine() -> None:
    assert read_yaml("a: !!str 12\nb: !!float 1\n")[0] == {"a": "12", "b": 1.0}
    p = only("name: x\nfirms: {}\nseed: !!int abc\n")
    assert (p.line, p.message) == (3, "cannot read 'abc' as !!int")


@pytest.mark.parametrize(("text", "line", "words"), [
    ("name: x\nfirms\nseed: 2\n", 3, "could not find expected ':'"),
    ("name: [a, b\nseed: 1\n", 2, "expected ',' or ']'"),
    ("name: x\n  seed: 1\n", 2, "mapping values are not allowed here"),
    ("name: x\nfirms:\n\tfocal: 1\n", 3, "'\\t'"),
    ("a: *nowhere\n", 1, "undefined alias"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
])
def test_syntax_errors_give_one_problem_with_line(text: str, line: int, words: str) -> None:
    p = only(text)
    assert p.line == line
    assert p.message.startswith("invalid YAML: ") and words in p.message
    assert "\n" not in p.message


def test_merge_keys_and_anchors() -> None:
    text = ("name: x\n"
            "firms:\n"
            "  a: &base\n"
            "    price: {list: 5}\n"
            "    rewards: {points_rate: 0.1}\n"
            "  b:\n"
            "    <<: *base\n"
            "    price: {list: -1}\n")
    p = only(text)
    assert (p.path, p.line) == ("firms.b.price.list", 8)
    data, lines = read_yaml(text)
    assert data["firms"]["b"]["rewards"] == {"points_rate": 0.1}
    assert lines[("firms", "b", "rewards")] == 5  # where the merged value was written


def test_alias_bomb_is_caught_quickly() -> None:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    start = time.perf_counter()
    p = only(text)
    assert time.perf_counter() - start < 0.5
    assert "alias" in p.message and f"{loader.MAX_NODES:,}" in p.message


def test_modest_aliases_are_fine() -> None:
    data, _ = read_yaml("a: &a [1, 2]\nb: [*a, *a, *a]\n")
    assert data["b"] == [[1, 2]] * 3


def test_recursive_alias() -> None:
    p = only("a: &a [1, *a]\n")
    assert "contains it" in p.message and p.line == 1


def test_deep_nesting() -> None:
    depth = loader.MAX_DEPTH
    assert read_yaml("[" * depth + "1" + "]" * depth)[0] is not None
    too_deep = only("a:\n  " + "[" * depth + "1" + "]" * depth + "\n")
    assert too_deep.line == 2 and too_deep.message == f"nested more than {depth} levels deep"
    # deep enough to hit RecursionError in PyYAML's composer if it were not guarded
    assert "nested" in only("[" * 1_000).message


def test_deep_nesting_through_aliases() -> None:
    text = "a: &a " + "[" * 30 + "]" * 30 + "\n" + "".join(
        f"{c}: &{c} {'[' * 30}*{p}{']' * 30}\n" for p, c in zip("abc", "bcd"))
    p = only(text)
    assert p.message == f"nested more than {loader.MAX_DEPTH} levels deep (through aliases)"


def test_control_characters() -> None:
    p = only("name: x\nfirms: {}\nseed: \x07\n")
    assert p.line == 3 and "not allowed" in p.message


# --------------------------------------------------------------------------- #
# File-level problems
# --------------------------------------------------------------------------- #


def file_problem(path: Path | str) -> Problem:
    with pytest.raises(ScenarioError) as info:
        load_yaml(path)
    [p] = info.value.problems
    assert p.source == str(path) and p.path == ""
    return p


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    p = file_problem(path)
    assert (p.message, p.line) == ("file not found", None)
    assert str(p) == f"{path}: file not found"


def test_directory(tmp_path: Path) -> None:
    assert "directory" in file_problem(tmp_path).message


@pytest.mark.parametrize("content", ["", "\n\n", "# just a comment\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    assert file_problem(write(tmp_path, content)).message.startswith("file is empty")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    p = file_problem(write(tmp_path, "# header\n- a\n- b\n"))
    assert p.line == 2
    assert p.message == "the top level must be a mapping of key: value lines, got a list"
    assert "got 'hello' (string)" in file_problem(write(tmp_path, "hello\n")).message


def test_not_utf8(tmp_path: Path) -> None:
    p = file_problem(write(tmp_path, b"name: x\nfirms: {}\nseed: caf\xe9\n"))
    assert p.line == 3
    assert p.message.startswith("file is not valid UTF-8 text (byte 0xe9)")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    data, lines = load_yaml(write(tmp_path, "\ufeffname: café\nfirms: {}\n"))
    assert data["name"] == "café" and lines[("firms",)] == 2


def test_source_is_the_path_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nfirms: {}\nseed: two\n")
    with pytest.raises(ScenarioError) as info:
        load(str(path), Scenario)
    assert str(info.value) == f"{path}:3: seed: expected an integer, got 'two' (string)"


# --------------------------------------------------------------------------- #
# Other schema shapes: discriminated unions, Literal dict keys, aliases, tuples
# --------------------------------------------------------------------------- #


class Cash(BaseModel):
    model_config = STRICT
    kind: Literal["cash"]
    amount: float


class Points(BaseModel):
    model_config = STRICT
    kind: Literal["points"]
    rate: float


class Extras(BaseModel):
    model_config = STRICT
    perks: list[Annotated[Cash | Points, Field(discriminator="kind")]] = []
    weights: dict[Literal["price", "quality"], float] = {}
    max_visits: int = Field(0, alias="max-visits")
    window: tuple[float, float] = (0.0, 1.0)


def extras_problems(text: str) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        loads(text, Extras)
    return {p.path: str(p).split(": ", 2)[2] for p in info.value.problems}


def test_discriminated_union() -> None:
    text = "perks:\n  - {kind: cash}\n  - {kind: pionts, rate: 1}\n  - {kind: points, rate: x}\n"
    assert extras_problems(text) == {
        "perks[0].amount": "missing required key 'amount'",
        "perks[1]": "unknown 'kind' 'pionts': expected one of 'cash', 'points' "
                    "(did you mean 'points'?)",
        "perks[2].rate": "expected a number, got 'x' (string)",
    }


def test_dict_keys_aliases_and_tuples() -> None:
    text = "weights: {prise: 1}\nmax_visits: 3\nwindow: [0, 2]\n"
    assert extras_problems(text) == {
        "weights.prise": "invalid key: expected one of 'price', 'quality', got 'prise' "
                         "(did you mean 'price'?)",
        "max_visits": "unknown key 'max_visits' (did you mean 'max-visits'?)",
        "window": "expected a tuple, got a list (YAML has no tuples or sets, "
                  "so a strict schema must accept a list here)",
    }
    assert loads("max-visits: 3\n", Extras).max_visits == 3
