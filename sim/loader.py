"""Load YAML scenario files and validate them, turning mistakes into clear errors.

The caller supplies the schema (any pydantic v2 ``BaseModel`` tree); this module
only knows how to read YAML safely and how to explain what is wrong with it.

Typical use::

    scenario = load("scenarios/base.yaml", Scenario)      # -> Scenario instance

Every user mistake ends up as a :class:`Problem` (file, line, dotted key path,
one-line message, optional hint) and all problems found are raised together in
one :class:`ScenarioError`, sorted by line::

    scenarios/x.yaml:12: firms.focal.price.list: expected a number >= 0, got -3

Two stages:

1. Reading (:func:`read_yaml`, :func:`load_yaml`).  File errors, a YAML syntax
   error, an alias bomb, a recursive alias or nesting deeper than
   ``MAX_DEPTH`` stop reading with one Problem.  Otherwise every tag outside
   the safe set (nothing is ever constructed from a tag, so no code can run),
   duplicate key and key that is not text (``yes:``, ``1:``, ``null:``) is
   reported.  Anchors, aliases and ``<<`` merge keys work.  If reading finds
   anything, schema validation does not run.
2. Validation (:func:`validate`): every pydantic error becomes a Problem with
   a one-line message.  For a union (``float | TraitSpec``) the errors of the
   one alternative that fits the kind of value given (a mapping for a model, a
   number for ``float``) are reported; if none or several fit, one Problem
   "expected a number or a mapping with keys mean, sd, got ..." is.

Line numbers come from a :class:`LineMap`, a plain ``dict`` from key-path
tuples (``("firms", "focal", "price")``, ``("timeline", 0, "at")``) to 1-based
lines, returned by :func:`read_yaml`.  It also carries ``bool_words``: the paths
whose value was a YAML 1.1 boolean word other than true/false (``yes``, ``no``,
``on``, ``off``; PyYAML reads ``y``/``n`` as text), mapped to the original text, so that validation can hint
"YAML reads 'no' as false; quote it if you meant the text".  A plain dict works
too (hints of that kind are then simply not given).
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import pydantic
import yaml
from pydantic import BaseModel
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "LineMap",
    "Problem",
    "ScenarioError",
    "format_path",
    "line_of",
    "load",
    "load_yaml",
    "load_yaml_bytes",
    "loads",
    "problems_from_validation_error",
    "read_value",
    "read_yaml",
    "validate",
]

M = TypeVar("M", bound=BaseModel)
KeyPath = tuple[Any, ...]

#: Deepest allowed nesting of mappings/lists (a scenario needs maybe 6).
MAX_DEPTH = 100
#: Most values a document may expand to once aliases are followed.
MAX_NODES = 1_000_000

STRING_SOURCE = "<string>"


# --------------------------------------------------------------------------- #
# Public data types
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file."""

    source: str
    path: str
    message: str
    line: int | None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ScenarioError(Exception):
    """All problems found in a scenario, sorted by line (file-level ones first)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = _sorted(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    """Drop exact duplicates and sort by line, keeping the order of ties."""
    return sorted(dict.fromkeys(problems), key=lambda p: p.line or 0)


class LineMap(dict[KeyPath, int]):
    """Key path -> 1-based line; ``bool_words`` maps paths to yes/no/on/off texts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bool_words: dict[KeyPath, str] = {}


# --------------------------------------------------------------------------- #
# Paths and lines
# --------------------------------------------------------------------------- #

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: Sequence[Any]) -> str:
    """``("tiers", 1, "min_spend")`` -> ``"tiers[1].min_spend"``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out


def line_of(lines: Mapping[KeyPath, int], path: Sequence[Any]) -> int | None:
    """Line of the longest prefix of ``path`` present in ``lines`` (None if none is)."""
    path = tuple(path)
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


# --------------------------------------------------------------------------- #
# Reading YAML
# --------------------------------------------------------------------------- #

_YAML = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _YAML + "str", _YAML + "map", _YAML + "seq", _YAML + "merge"
_BOOL = _YAML + "bool"
_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
# Plain '=' and '<<' outside a key get these tags; SafeLoader cannot construct them.
_TEXT_TAGS = {_YAML + "value", _MERGE}


_INT, _FLOAT = _YAML + "int", _YAML + "float"
# Plain numbers YAML 1.1 reads differently from what they look like.
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_EXPONENT_TEXT = re.compile(r"^[-+]?([0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$")


def _yaml11_number_surprise(text: str, value: Any) -> str | None:
    """Why a plain number in the file would silently mean another number, or None.

    YAML 1.1 (PyYAML) reads ``012`` as the octal number 10 and ``1:30`` as the base-60
    number 90; both are refused rather than silently changed."""
    if _SEXAGESIMAL.match(text):
        return (f"YAML 1.1 reads {text} as the base-60 (time-like) number {value:g}; "
                "write the number you mean, or quote it if you meant text")
    if _OCTAL.match(text):
        decimal = int(text.replace("_", ""), 10)
        if decimal != value:
            return (f"YAML 1.1 reads {text} as the octal number {value}; write {decimal} "
                    "without the leading zero, or quote it if you meant text")
    return None


class _TooDeep(yaml.MarkedYAMLError):
    """Raised by the composer when the text nests deeper than MAX_DEPTH."""


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses to nest deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:  # +1: the scalar at the bottom
                raise _TooDeep(problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


@dataclass
class _Frame:
    """A collection node being measured: values it expands to, levels below it."""

    node: Node
    todo: Iterator[Node]
    size: int = 1
    height: int = 0


def _expansion_problem(root: Node, source: str) -> Problem | None:
    """Detect recursive aliases, alias bombs and deep nesting without expanding.

    Iterative depth-first walk over the node graph.  Aliases share node objects,
    so each distinct node is measured once and this is linear in the text.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (size, height)
    on_path = {id(root)}
    stack = [_Frame(root, iter(_children(root)))]
    while stack:
        frame = stack[-1]
        child = next(frame.todo, None)
        if child is None:  # finished: hand the totals to the parent frame
            stack.pop()
            on_path.discard(id(frame.node))
            measured[id(frame.node)] = size, height = frame.size, frame.height
            if not stack:
                return None
            frame = stack[-1]
        elif id(child) in on_path:
            return Problem(source, "", "an alias refers to a node that contains it "
                           "(recursive structures are not allowed)", _line(child))
        elif isinstance(child, ScalarNode) or id(child) in measured:
            size, height = measured.get(id(child), (1, 0))
        else:
            on_path.add(id(child))
            stack.append(_Frame(child, iter(_children(child))))
            continue
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if frame.size > MAX_NODES:
            return Problem(source, "", f"aliases expand to more than {MAX_NODES:,} values "
                           "(an 'alias bomb'?)", _line(frame.node))
        if frame.height > MAX_DEPTH:
            return Problem(source, "", f"nested more than {MAX_DEPTH} levels deep "
                           "(through aliases)", _line(frame.node))
    return None


def _describe_yaml_value(value: Any) -> str:
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, (date, datetime)):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"


class _Builder:
    """Turns a composed node tree into plain data, recording lines and problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = LineMap()
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()

    def problem(self, path: KeyPath, message: str, line: int | None) -> None:
        self.problems.append(Problem(self.source, format_path(path), message, line))

    def build(self, node: Node, path: KeyPath) -> Any:
        """Plain data for ``node`` (found at ``path``); None where there is a problem."""
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        allowed = _SEQ if isinstance(node, SequenceNode) else _MAP
        if node.tag != allowed:
            return self._bad_tag(node, path)
        if isinstance(node, SequenceNode):
            return self._sequence(node, path)
        return self._mapping(node, path)

    def _bad_tag(self, node: Node, path: KeyPath) -> None:
        self.problem(path, f"YAML tag '{_show_tag(node.tag)}' is not allowed: "
                     "scenario files are data only", _line(node))

    def _construct(self, node: ScalarNode, path: KeyPath) -> tuple[bool, Any]:
        """Construct a scalar with SafeConstructor; (False, None) on failure."""
        if node.tag in _TEXT_TAGS:
            return True, node.value
        if node.tag not in _SCALAR_TAGS:
            self._bad_tag(node, path)
            return False, None
        try:
            return True, self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            self.problem(path, f"cannot read {node.value!r} as {_show_tag(node.tag)}", _line(node))
            return False, None

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        ok, value = self._construct(node, path)
        if ok and node.style is None and node.tag in (_INT, _FLOAT):
            surprise = _yaml11_number_surprise(node.value, value)
            if surprise:
                self.problem(path, surprise, _line(node))
                return None
        if node.tag == _BOOL and node.value.lower() not in ("true", "false"):
            self.lines.bool_words[path] = node.value
        else:
            self.lines.bool_words.pop(path, None)
        return value

    def _sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[path + (index,)] = _line(item)
            items.append(self.build(item, path + (index,)))
        return items

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        first_line: dict[str, int] = {}
        explicit: list[tuple[str, int, Node]] = []
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            line = _line(key_node)
            if key in first_line:
                self.problem(path + (key,), f"duplicate key '{key}' (first at line "
                             f"{first_line[key]})", line)
                continue
            first_line[key] = line
            explicit.append((key, line, value_node))
        result = self._merged(merges, path)
        for key, line, value_node in explicit:
            self.lines[path + (key,)] = line
            result[key] = self.build(value_node, path + (key,))
        return result

    def _merged(self, merges: list[Node], path: KeyPath) -> dict[str, Any]:
        """Resolve '<<' merge keys: earlier sources win, explicit keys win over all."""
        sources: list[Node] = []
        for value_node in merges:
            if isinstance(value_node, SequenceNode):
                sources.extend(value_node.value)
            else:
                sources.append(value_node)
        result: dict[str, Any] = {}
        for node in reversed(sources):
            if not isinstance(node, MappingNode):
                self.problem(path, "'<<' (merge key) must be followed by a mapping "
                             "or a list of mappings", _line(node))
                continue
            merged = self.build(node, path)
            if isinstance(merged, dict):
                result.update(merged)
        return result

    def _key(self, node: Node, path: KeyPath) -> str | None:
        """The key as text, or None after recording why it cannot be used."""
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            self.problem(path, f"{kind} cannot be used as a key; keys must be text", _line(node))
            return None
        if node.tag == _STR:
            return node.value
        key_path = path + (node.value,) if node.value else path
        ok, value = self._construct(node, key_path)
        if not ok:
            return None
        if node.value:
            self.problem(key_path, f"key '{node.value}' is read by YAML as "
                         f"{_describe_yaml_value(value)}; quote it", _line(node))
        else:
            self.problem(path, "empty key: every entry needs a name before the ':'", _line(node))
        return None


def _syntax_problem(exc: yaml.YAMLError, text: str, source: str) -> Problem:
    """One Problem for a YAML error raised while scanning/parsing/composing."""
    if isinstance(exc, _TooDeep):
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        return Problem(source, "", f"nested more than {MAX_DEPTH} levels deep", line)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return Problem(source, "", f"invalid YAML: character {char!r} is not allowed", line)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            message = f"invalid YAML: {exc.context}, {exc.problem}"
        elif exc.context and exc.problem and exc.context_mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return Problem(source, "", _one_line(message), mark.line + 1 if mark else None)
    return Problem(source, "", _one_line(f"invalid YAML: {exc}"), None)


def read_yaml(text: str, source: str = STRING_SOURCE) -> tuple[Any, LineMap]:
    """Parse YAML safely; return plain data and the :class:`LineMap` of its keys.

    ``lines`` maps each key path (``("firms", "focal", "price")``) to the line
    of that key, each list item path (``("timeline", 0)``) to the line of the
    item, and ``()`` to the line where the document starts.  An empty document
    gives ``(None, LineMap())``.  Raises :class:`ScenarioError` listing every
    problem found while reading.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ScenarioError([_syntax_problem(exc, text, source)]) from None
    if root is None:
        return None, LineMap()
    bomb = _expansion_problem(root, source)
    if bomb is not None:
        raise ScenarioError([bomb])
    builder = _Builder(source)
    builder.lines[()] = _line(root)
    data = builder.build(root, ())
    if builder.problems:
        raise ScenarioError(builder.problems)
    return data, builder.lines


def read_value(text: str, source: str = STRING_SOURCE) -> Any:
    """One value written as YAML (a --set on the command line): the same safe reading and
    the same guards as a scenario file (no tags, no octal or base-60 surprises)."""
    data, _ = read_yaml(text, source)
    return data


def _require_mapping(data: Any, lines: Mapping[KeyPath, int], source: str) -> None:
    """The document must be a non-empty mapping of settings."""
    if data is None:
        raise ScenarioError([Problem(source, "", "file is empty: expected a mapping of "
                                     "scenario settings (key: value lines)", None)])
    if not isinstance(data, dict):
        raise ScenarioError([Problem(source, "", "the top level must be a mapping of "
                                     f"key: value lines, got {_show(data, kind=True)}",
                                     lines.get((), 1))])


def _read_text(path: Path, source: str) -> str:
    def fail(message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError([Problem(source, "", message, line)])

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("file not found") from None
    except IsADirectoryError:
        raise fail("is a directory, not a scenario file") from None
    except PermissionError:
        raise fail("cannot read file: permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read file: {exc.strerror or exc}") from None
    return _decode(raw, source)


def _decode(raw: bytes, source: str) -> str:
    def fail(message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError([Problem(source, "", message, line)])

    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        looks = ""
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
            looks, line = " (it looks like UTF-16 or UTF-32)", 1
        raise fail(f"file is not valid UTF-8 text (byte 0x{byte}){looks}; save it as UTF-8",
                   line) from None


def load_yaml(path: str | Path) -> tuple[dict[str, Any], LineMap]:
    """Read a UTF-8 YAML file whose top level must be a mapping (see :func:`read_yaml`)."""
    source = str(path)
    data, lines = read_yaml(_read_text(Path(path), source), source)
    _require_mapping(data, lines, source)
    return data, lines


def load_yaml_bytes(raw: bytes, source: str = STRING_SOURCE) -> tuple[dict[str, Any], LineMap]:
    """Like :func:`load_yaml` for the bytes of a file (an upload, a test): decoded as UTF-8."""
    data, lines = read_yaml(_decode(raw, source), source)
    _require_mapping(data, lines, source)
    return data, lines


# --------------------------------------------------------------------------- #
# Showing values and types to people
# --------------------------------------------------------------------------- #


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show(value: Any, kind: bool = False) -> str:
    """A short, YAML-flavoured rendering of a value; ``kind`` adds its type."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        text, what = ("true" if value else "false"), "boolean"
    elif isinstance(value, float) and value != value:
        text, what = "nan", "number"
    elif isinstance(value, float) and value in (float("inf"), float("-inf")):
        text, what = ("inf" if value > 0 else "-inf"), "number"
    elif isinstance(value, int) and abs(value) >= 10**21:
        digits = str(abs(value))
        text, what = f"{'-' if value < 0 else ''}{digits[:6]}...({len(digits)} digits)", "number"
    elif isinstance(value, (int, float)):
        text, what = repr(value), "number"
    elif isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        text, what = repr(short), "string"
    elif isinstance(value, (date, datetime)):
        text, what = value.isoformat(), "date"
    elif isinstance(value, Mapping) or isinstance(value, BaseModel):
        return "a mapping"
    elif isinstance(value, (list, tuple, set, frozenset)):
        return "a list"
    else:
        text, what = _one_line(repr(value))[:40], type(value).__name__
    return f"{text} ({what})" if kind else text


def _show_number(value: Any) -> str:
    """Bounds read better as 0 than as 0.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _show(value)


def _quote(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else _show(value)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """Keys accepted in the YAML for ``model`` (alias if set) -> annotation."""
    keys = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        keys[alias or name] = info.annotation
    return keys


def _describe_keys(model: type[BaseModel], limit: int = 6) -> str:
    keys = list(_field_keys(model))
    shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
    return f"a mapping with keys {shown}" if keys else "a mapping"


def _describe(tp: Any) -> str:
    """Describe the values an annotation accepts, e.g. 'a number or a list'."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    members = _union_members(tp)
    if members:
        return " or ".join(dict.fromkeys(_describe(m) for m in members))
    if _is_model(tp):
        return _describe_keys(tp)
    if origin is Literal:
        return "one of " + ", ".join(_quote(v) for v in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(_quote(m.value) for m in tp)
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              date: "a date", datetime: "a date and time", type(None): "an empty value"}
    if tp in simple:
        return simple[tp]
    container = origin or tp
    if isinstance(container, type) and issubclass(container, Mapping):
        return "a mapping"
    if isinstance(container, type) and issubclass(container, (list, tuple, set, frozenset)):
        return "a list"
    return getattr(tp, "__name__", _one_line(str(tp)))


# --------------------------------------------------------------------------- #
# Following a pydantic error location through the schema
# --------------------------------------------------------------------------- #


def _strip(tp: Any) -> Any:
    """Remove Annotated, type aliases and Optional (X | None -> X)."""
    while True:
        if isinstance(tp, typing.TypeAliasType):
            tp = tp.__value__
        elif typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (Union, types.UnionType):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _union_members(tp: Any) -> tuple[Any, ...] | None:
    """Members of a real union (two or more besides None), else None."""
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return None
    members = tuple(m for m in typing.get_args(tp) if m is not type(None))
    return members if len(members) > 1 else None


def _match_member(members: tuple[Any, ...], label: Any) -> Any:
    """The union member pydantic's loc label refers to (Any if unsure)."""
    stripped = [_strip(m) for m in members]
    for member in stripped:  # model members are labelled with the class name
        if _is_model(member) and member.__name__ == label:
            return member
    for member in stripped:  # discriminated unions are labelled with the tag
        if _is_model(member) and any(
            typing.get_origin(_strip(a)) is Literal and label in typing.get_args(_strip(a))
            for a in _field_keys(member).values()
        ):
            return member
    label_text = str(label).lower()
    for member in stripped:
        origin = typing.get_origin(member) or member
        name = "literal" if origin is Literal else getattr(origin, "__name__", "").lower()
        if name and re.search(rf"(^|[^a-z]){re.escape(name)}($|[^a-z])", label_text):
            return member
    return Any


def _child_type(tp: Any, key: Any) -> Any:
    """Annotation of ``tp[key]`` for containers; Any when unknown."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[key] if isinstance(key, int) and 0 <= key < len(args) else Any
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return args[1] if len(args) == 2 else Any
    if isinstance(origin, type) and issubclass(origin, (list, set, frozenset, Sequence)):
        return args[0] if args else Any
    return Any


@dataclass(frozen=True)
class _UnionStep:
    path: KeyPath  # data path of the value the union applies to
    label: str  # pydantic's label of the member that produced the error
    members: tuple[Any, ...]


@dataclass(frozen=True)
class _Located:
    error: dict[str, Any]
    path: KeyPath  # data path (union labels removed)
    tp: Any  # annotation expected at that path (Any if unknown)
    parent: type[BaseModel] | None  # model owning path[-1], if any
    unions: tuple[_UnionStep, ...] = field(default=())
    is_key: bool = False  # the error is about a dict key, not its value

    @property
    def type(self) -> str:
        return self.error["type"]


def _locate(model_cls: type[BaseModel], error: Mapping[str, Any]) -> _Located:
    """Walk ``model_cls`` along ``error['loc']``, separating data keys from union labels."""
    tp: Any = model_cls
    path: list[Any] = []
    parent: type[BaseModel] | None = None
    unions: list[_UnionStep] = []
    is_key = False
    container: Any = Any  # the annotation holding the current path's last part
    for part in error["loc"]:
        tp = _strip(tp)
        members = _union_members(tp)
        if members is not None:
            unions.append(_UnionStep(tuple(path), str(part), members))
            tp = _match_member(members, part)
            continue
        if part == "[key]":  # the dict key itself is invalid
            is_key = True
            tp = (typing.get_args(container) or (Any, Any))[0]
            continue
        container = tp
        if _is_model(tp):
            parent = tp
            tp = _field_keys(tp).get(part, Any)
        else:
            parent = None
            tp = _child_type(tp, part)
        path.append(part)
    return _Located(dict(error), tuple(path), _strip(tp), parent, tuple(unions), is_key)


# --------------------------------------------------------------------------- #
# Messages for pydantic errors
# --------------------------------------------------------------------------- #

_EXPECTED = {
    "float_type": "a number", "float_parsing": "a number",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping (key: value lines)", "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "dataclass_type": "a mapping (key: value lines)",
    "list_type": "a list", "tuple_type": "a tuple", "set_type": "a set",
    "frozen_set_type": "a set", "none_required": "an empty value",
    "date_type": "a date (YYYY-MM-DD)", "datetime_type": "a date and time",
}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "less_than_equal": ("<=", "le"),
           "greater_than": (">", "gt"), "less_than": ("<", "lt")}
_MISMATCH_EXTRA = {"literal_error", "enum", "none_required", "is_instance_of"}


def _is_mismatch(error_type: str) -> bool:
    """Does this error mean 'wrong kind of value' (as opposed to a bad value)?"""
    return error_type.endswith("_type") or error_type in _MISMATCH_EXTRA


def _closest(word: Any, choices: Iterable[Any]) -> str | None:
    """The choice most like ``word`` (difflib), if any is close enough."""
    if not isinstance(word, str):
        return None
    match = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return match[0] if match else None


def _close(word: Any, choices: Iterable[Any]) -> str | None:
    """A "did you mean ...?" hint, or None."""
    match = _closest(word, choices)
    return f"did you mean '{match}'?" if match else None


def _allowed_values(loc: _Located) -> list[Any] | None:
    if typing.get_origin(loc.tp) is Literal:
        return list(typing.get_args(loc.tp))
    if isinstance(loc.tp, type) and issubclass(loc.tp, enum.Enum):
        return [m.value for m in loc.tp]
    return None


Message = tuple[str, str | None]  # (message, hint)


def _missing_message(loc: _Located) -> Message:
    return (f"missing required key '{loc.path[-1]}'" if loc.path else "missing value"), None


def _extra_message(loc: _Located) -> Message:
    key = loc.path[-1] if loc.path else "?"
    allowed = list(_field_keys(loc.parent)) if loc.parent else []
    hint = _close(key, allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else None)
    return f"unknown key '{key}'", hint


def _bound_message(loc: _Located) -> Message:
    op, name = _BOUNDS[loc.type]
    bound = _show_number((loc.error.get("ctx") or {}).get(name))
    return f"expected a number {op} {bound}, got {_show(loc.error.get('input'))}", None


def _finite_message(loc: _Located) -> Message:
    return f"expected a finite number, got {_show(loc.error.get('input'))}", None


def _choice_message(loc: _Located) -> Message:
    value = loc.error.get("input")
    allowed = _allowed_values(loc)
    options = (", ".join(_quote(v) for v in allowed) if allowed
               else (loc.error.get("ctx") or {}).get("expected", "?"))
    return f"expected one of {options}, got {_show(value)}", _close(value, allowed or [])


_NAME_LIKE = re.compile(r"^\^\[A-Za-z\]\[A-Za-z0-9_-\]\{0,(\d+)\}\$$")


def _pattern_message(loc: _Located) -> Message:
    pattern = str((loc.error.get("ctx") or {}).get("pattern", ""))
    name = _NAME_LIKE.match(pattern)
    if name:
        expected = (f"a name of at most {int(name.group(1)) + 1} letters, digits, - and _ "
                    "that starts with a letter")
    else:
        expected = f"text matching the pattern {pattern}"
    return f"expected {expected}, got {_show(loc.error.get('input'))}", None


def _validator_message(loc: _Located) -> Message:
    msg = loc.error["msg"]
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, "), None


def _tag_message(loc: _Located) -> Message:
    ctx = loc.error.get("ctx") or {}
    disc = ctx.get("discriminator", "")
    if loc.type == "union_tag_not_found":
        return f"missing key {disc} (it says which kind of entry this is)", None
    tags = str(ctx.get("expected_tags", ""))
    hint = _close(ctx.get("tag"), [t.strip(" '") for t in tags.split(",")])
    return f"unknown {disc} {_quote(ctx.get('tag'))}: expected one of {tags}", hint


def _length_message(loc: _Located) -> Message:
    ctx = loc.error.get("ctx") or {}
    bound = "at least", "min_length"
    if loc.type == "too_long":
        bound = "at most", "max_length"
    return f"expected {bound[0]} {ctx.get(bound[1])} item(s), got {ctx.get('actual_length')}", None


def _type_message(loc: _Located) -> Message:
    value = loc.error.get("input")
    expected = _EXPECTED[loc.type]
    if loc.type in ("model_type", "model_attributes_type") and _is_model(loc.tp):
        expected = _describe_keys(loc.tp)
    hint = None
    if loc.type == "string_type" and isinstance(value, (int, float, date)) \
            and not isinstance(value, bool):
        hint = "quote the value to make it text"
    elif loc.type in ("float_type", "int_type") and isinstance(value, str) and _EXPONENT_TEXT.match(value):
        hint = (f"YAML 1.1 reads {value} as text, not a number: write it with a dot and a sign, "
                f"e.g. {_exponent_example(value)}, or as a plain number")
    elif loc.type in ("float_type", "int_type") and isinstance(value, str) and re.fullmatch(r"[-+]?0[0-9_]*[89][0-9_]*", value):
        hint = f"YAML 1.1 reads {value} (a leading zero) as text; write {int(value.replace('_', ''))}"
    elif loc.type in ("tuple_type", "set_type", "frozen_set_type") and isinstance(value, list):
        hint = "YAML has no tuples or sets, so a strict schema must accept a list here"
    return f"expected {expected}, got {_show(value, kind=True)}", hint


def _exponent_example(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[:1] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}"


def _generic_message(loc: _Located) -> Message:
    """Pydantic's own message, reworded a little ('Input should be' -> 'expected')."""
    value = loc.error.get("input")
    text = re.sub(r"^Input should be ", "expected ", loc.error["msg"])
    if isinstance(value, (str, int, float, bool)) and "got" not in text:
        text += f", got {_show(value)}"
    return text, None


_MESSAGES: dict[str, Callable[[_Located], Message]] = {
    "missing": _missing_message,
    "extra_forbidden": _extra_message,
    **{kind: _bound_message for kind in _BOUNDS},
    "finite_number": _finite_message,
    "literal_error": _choice_message,
    "enum": _choice_message,
    "string_pattern_mismatch": _pattern_message,
    "value_error": _validator_message,
    "assertion_error": _validator_message,
    "union_tag_invalid": _tag_message,
    "union_tag_not_found": _tag_message,
    "too_short": _length_message,
    "too_long": _length_message,
    **{kind: _type_message for kind in _EXPECTED},
}


def _message(loc: _Located) -> Message:
    """(message, hint) for one located pydantic error."""
    return _MESSAGES.get(loc.type, _generic_message)(loc)


def _bool_hint(path: KeyPath, value: Any, bool_words: Mapping[KeyPath, str]) -> str | None:
    word = bool_words.get(path)
    if word is None or not isinstance(value, bool):
        return None
    return f"YAML reads '{word}' as {'true' if value else 'false'}; quote it if you meant the text"


def _join_hints(*hints: str | None) -> str | None:
    return "; ".join(h for h in hints if h) or None


class _ProblemMaker:
    """Turns located errors into Problems, collapsing union alternatives."""

    def __init__(self, lines: Mapping[KeyPath, int], source: str) -> None:
        self.lines = lines
        self.source = source
        self.bool_words: Mapping[KeyPath, str] = getattr(lines, "bool_words", {})

    def make(self, path: KeyPath, message: str, value: Any, hint: str | None,
             with_bool_hint: bool = True) -> Problem:
        bool_hint = _bool_hint(path, value, self.bool_words) if with_bool_hint else None
        return Problem(self.source, format_path(path), _one_line(message),
                       line_of(self.lines, path), _join_hints(hint, bool_hint))

    def misspelt_sibling(self, path: KeyPath) -> str | None:
        """For a missing key, a present sibling key that looks like a typo of it."""
        siblings = [p[-1] for p in self.lines if len(p) == len(path) and p[:-1] == path[:-1]]
        match = _closest(path[-1], [s for s in siblings if isinstance(s, str)])
        return f"found '{match}' instead: a typo?" if match else None

    def single(self, loc: _Located) -> Problem:
        message, hint = _message(loc)
        if loc.type == "missing" and loc.path:
            hint = self.misspelt_sibling(loc.path)
        if loc.is_key:
            message = f"invalid key: {message}"
        bool_ok = loc.type not in ("missing", "extra_forbidden") and not loc.is_key
        return self.make(loc.path, message, loc.error.get("input"), hint, bool_ok)

    def all(self, located: list[_Located], depth: int = 0) -> list[Problem]:
        """Problems for errors that passed through ``depth`` unions so far."""
        problems = [self.single(loc) for loc in located if len(loc.unions) <= depth]
        groups: dict[KeyPath, list[_Located]] = {}
        for loc in located:
            if len(loc.unions) > depth:
                groups.setdefault(loc.unions[depth].path, []).append(loc)
        for union_path, group in groups.items():
            problems += self.union(union_path, group, depth)
        return problems

    def union(self, path: KeyPath, group: list[_Located], depth: int) -> list[Problem]:
        """Report the one member that fits the value's kind, else one collapsed Problem."""
        by_label: dict[str, list[_Located]] = {}
        for loc in group:
            by_label.setdefault(loc.unions[depth].label, []).append(loc)
        wrong_kind = {label for label, locs in by_label.items() if any(
            _is_mismatch(l.type) and l.path == path and len(l.unions) == depth + 1
            for l in locs)}
        fitting = [label for label in by_label if label not in wrong_kind]
        if len(fitting) == 1:
            return self.all(by_label[fitting[0]], depth + 1)
        return [self.collapsed(path, group, depth, fitting)]

    def collapsed(self, path: KeyPath, group: list[_Located], depth: int,
                  fitting: list[str]) -> Problem:
        members = group[0].unions[depth].members
        here = [l for l in group if l.path == path and len(l.unions) == depth + 1]
        value = here[0].error.get("input") if here else None
        wanted = [_match_member(members, label) for label in fitting] if fitting else members
        expected = " or ".join(dict.fromkeys(_describe(m) for m in wanted))
        got = _show(value, kind=True) if here else "a value that fits none of them"
        literals = [v for m in members if typing.get_origin(_strip(m)) is Literal
                    for v in typing.get_args(_strip(m))]
        return self.make(path, f"expected {expected}, got {got}", value, _close(value, literals))


def problems_from_validation_error(exc: pydantic.ValidationError, model_cls: type[BaseModel],
                                   lines: Mapping[KeyPath, int], source: str) -> list[Problem]:
    """One Problem per error (per location for unions), sorted by line."""
    located = [_locate(model_cls, err) for err in exc.errors(include_url=False)]
    return _sorted(_ProblemMaker(lines, source).all(located))


def validate(model_cls: type[M], data: Any, lines: Mapping[KeyPath, int],
             source: str = STRING_SOURCE) -> M:
    """``model_cls.model_validate(data)``, raising :class:`ScenarioError` on any error."""
    try:
        return model_cls.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = problems_from_validation_error(exc, model_cls, lines, source)
    raise ScenarioError(problems)


def load(path: str | Path, model_cls: type[M]) -> M:
    """Read, parse and validate a scenario file."""
    data, lines = load_yaml(path)
    return validate(model_cls, data, lines, str(path))


def loads(text: str, model_cls: type[M], source: str = STRING_SOURCE) -> M:
    """Like :func:`load` for YAML given as a string (presets, tests)."""
    data, lines = read_yaml(text, source)
    _require_mapping(data, lines, source)
    return validate(model_cls, data, lines, source)
