"""The model description (docs/model.md, ODD) is complete and current: every scenario key is
in its key index with its current default, the sections cited exist, the functions named exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.validation import scenario_key_paths, schema_default

ROOT = Path(__file__).resolve().parents[1]
MODEL_MD = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "sim").glob("*.py"))
ODD_SECTIONS = ("Purpose and patterns", "Entities, state variables and scales", "Process overview and scheduling",
                "Design concepts", "Initialisation", "Input data", "Submodels")


def _index() -> dict[str, list[str]]:
    start = MODEL_MD.index("## 9. Scenario key index")
    rows: dict[str, list[str]] = {}
    for line in MODEL_MD[start:].splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*) \| (.*) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = [m.group(2), m.group(3), m.group(4)]
    return rows


INDEX = _index()


def test_odd_has_every_section():
    headings = re.findall(r"^## \d+\. (.+)$", MODEL_MD, flags=re.M)
    for section in ODD_SECTIONS:
        assert section in headings, f"docs/model.md lacks the ODD section '{section}'"


@pytest.mark.parametrize("path", scenario_key_paths())
def test_every_scenario_key_is_described(path):
    assert path in INDEX, f"scenario key '{path}' is missing from the key index of docs/model.md (section 9)"
    assert INDEX[path][0] == schema_default(path), f"docs/model.md gives '{path}' the default {INDEX[path][0]}, the schema {schema_default(path)}"
    leaf = path.rsplit(".", 1)[-1]
    body = MODEL_MD[: MODEL_MD.index("## 9. Scenario key index")]
    assert re.search(rf"`[^`\n]*\b{re.escape(leaf)}\b[^`\n]*`", body), f"'{path}' is indexed but no section of docs/model.md describes it"


def test_index_lists_no_unknown_key():
    known = set(scenario_key_paths())
    assert not set(INDEX) - known, f"docs/model.md indexes keys the schema does not have: {sorted(set(INDEX) - known)}"


def test_cited_sections_and_functions_exist():
    numbers = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", MODEL_MD, flags=re.M))
    for path, (_, sections, functions) in INDEX.items():
        for cited in re.findall(r"\d+(?:\.\d+)?", sections):
            assert cited in numbers, f"{path}: section {cited} does not exist in docs/model.md"
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", functions):
            leaf = name.rsplit(".", 1)[-1]
            assert re.search(rf"^\s*(def|class) {leaf}\b|^{leaf} *[:=]", SOURCE, flags=re.M), f"{path}: function '{name}' not found in sim/"
