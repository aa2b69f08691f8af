"""The scenario reference and JSON Schema, generated from the schema in :mod:`sim.scenario`."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from sim.scenario import SEGMENT_PRESETS, TRAIT_RANGES, Scenario, Trait


def json_schema() -> str:
    """JSON Schema (draft 2020-12) of a scenario file."""
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "loyalty-sim scenario"
    return json.dumps(schema, indent=2) + "\n"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list of {', '.join(_type_name(a) for a in args)}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(get_args(annotation)[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "trait" if annotation is Trait else "section"
    return getattr(annotation, "__name__", str(annotation))


def _range(field) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sym} {value:g}" if isinstance(value, (int, float)) else f"{sym} {value}")
    return ", ".join(parts)


def _default(field) -> str:
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} item(s)"
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
        return "one focal firm"
    return f"`{json.dumps(value)}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    out.append(f"\n### `{prefix or '(top level)'}`\n\n{(model.__doc__ or '').strip()}\n")
    out.append("| key | type | default | unit | range | meaning |\n|---|---|---|---|---|---|")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        unit = (field.json_schema_extra or {}).get("unit", "") if isinstance(field.json_schema_extra, dict) else ""
        path = f"{prefix}.{name}" if prefix else name
        meaning = field.description or next(((m.__doc__ or "").strip().splitlines()[0] for m in _models_in(field.annotation)), "")
        out.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {unit} | {_range(field)} | {meaning} |")
        for child in _models_in(field.annotation):
            if child is not Trait:
                suffix = "[i]" if get_origin(field.annotation) is list else (".NAME" if get_origin(field.annotation) is dict else "")
                nested.append((path + suffix, child))
    for path, child in nested:
        _section(child, path, out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found


def markdown_reference() -> str:
    """Every scenario key with its type, default, unit, range and meaning, as Markdown."""
    out = [
        "# Scenario reference",
        "",
        "Generated from the schema by `loyalty-sim reference`; do not edit by hand.",
        "Every key is optional: a missing key takes its default. Key paths are dotted;",
        "`firms.NAME` stands for any firm name, `[i]` for a list item.",
        "",
        "Units: time in steps of `market.step_days` days, durations in days, rates per year;",
        "money in the scenario's currency; indices are 1.0 at the market norm; utility in",
        "log perceived-value units (0.1 is worth about 10% more value).",
        "",
        "## Traits",
        "",
        "A customer trait (segment keys marked `trait`) is either a number (every customer of",
        "the segment has it) or a mapping `{mean: M, sd: S}` drawn per customer from a normal",
        "distribution clipped to the trait's range:",
        "",
        "| trait | range |\n|---|---|",
        *[f"| `{name}` | {lo:g} to {hi:g} |" for name, (lo, hi) in TRAIT_RANGES.items()],
        "",
        "## Segment presets",
        "",
        "`segments[i].preset` starts a segment from one of these; keys given beside it override the preset.",
        "",
        "| preset | values |\n|---|---|",
        *[
            f"| `{name}` | "
            + ", ".join(f"{k}: {v['mean']:g} ± {v['sd']:g}" if isinstance(v, dict) else f"{k}: {v:g}" for k, v in values.items())
            + " |"
            for name, values in SEGMENT_PRESETS.items()
        ],
        "",
        "## Keys",
    ]
    _section(Scenario, "", out)
    return "\n".join(out) + "\n"


__all__ = ["json_schema", "markdown_reference"]
