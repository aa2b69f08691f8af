"""The scenario reference and JSON Schema are generated from the schema and kept current."""

import json
from pathlib import Path

from sim.reference import json_schema, markdown_reference
from sim.scenario import Scenario

DOCS = Path(__file__).resolve().parents[1] / "docs"



def test_committed_reference_is_current():
    committed = (DOCS / "scenario-reference.md").read_text(encoding="utf-8")
    assert committed == markdown_reference(), "docs/scenario-reference.md is stale: run `make reference`"


def test_committed_json_schema_is_current():
    committed = (DOCS / "scenario.schema.json").read_text(encoding="utf-8")
    assert committed == json_schema(), "docs/scenario.schema.json is stale: run `make reference`"


def test_every_key_has_a_unit_and_a_meaning():
    from sim.reference import _models_in

    seen, queue = set(), [Scenario]
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            children = _models_in(field.annotation)
            queue.extend(children)
            if children:
                continue  # a section: documented by its own table
            assert field.description, f"{model.__name__}.{name} has no meaning"
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            assert extra.get("unit"), f"{model.__name__}.{name} has no unit"


def test_reference_lists_every_firm_key():
    text = markdown_reference()
    for section in ("price", "product", "service", "rewards", "community", "lock_in", "acquisition", "costs"):
        for key in Scenario.model_fields["firms"].annotation.__args__[1].model_fields[section].annotation.model_fields:
            assert f"`firms.NAME.{section}.{key}`" in text


def test_json_schema_is_valid_json_with_scenario_sections():
    schema = json.loads(json_schema())
    assert set(schema["properties"]) >= {"market", "behaviour", "segments", "firms", "timeline"}
    assert schema["additionalProperties"] is False
