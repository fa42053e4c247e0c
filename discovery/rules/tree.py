"""Rules input as one positioned tree, whether it came from YAML text or from plain data.

YAML is composed (``yaml.compose``), never loaded: nodes keep their line, column and raw scalar text,
so ``vendor_id: 2341`` can be read as the hex id 0x2341 instead of the integer 2341, and no YAML tag
ever constructs an object. A tag written in the document (``!!python/...``, ``!!str``, ``!custom``),
on a scalar, a list or a mapping, is refused outright, each with its line and column: rules are plain
YAML, and a tag the validator would quietly ignore on a list or mapping must not look accepted.

Plain data (inline rules from the Nomad plugin config) gets the same interface without positions;
there ``None`` means "absent", as cty sends unset attributes.

The schema validator walks this tree only where the schema expects something, so YAML aliases that
repeat a node many times cost no more than the schema's depth.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from discovery.rules.errors import RuleIssue

MAX_BYTES = 1024 * 1024  # a rules file above 1 MiB is refused before it is parsed

_TAG = "tag:yaml.org,2002:"
_KIND_OF_TAG = {
    _TAG + "str": "str",
    _TAG + "int": "int",
    _TAG + "float": "float",
    _TAG + "bool": "bool",
    _TAG + "null": "null",
    _TAG + "timestamp": "str",  # "2024-01-01" is text to us, not a date
}
_MERGE_TAG = _TAG + "merge"
_SHORT_TAG = "!!"  # how a document writes the tag:yaml.org,2002: prefix
# Only used for the scalar converters (int, float, bool), which never construct objects.
_CONSTRUCTOR = yaml.constructor.SafeConstructor()

KIND_NAMES = {
    "map": "a mapping",
    "seq": "a list",
    "str": "text",
    "int": "a number",
    "float": "a number",
    "bool": "true/false",
    "null": "an empty value",
    "other": "an unsupported value",
}


def quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes with escapes, shortened for messages."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return json.dumps(text, ensure_ascii=False)


class Issues:
    """Collects every problem found in one source, so all of them are reported at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[RuleIssue] = []

    def add(self, at: Src | None, field: str, message: str) -> None:
        line = at.line if at is not None else None
        column = at.column if at is not None else None
        self.items.append(RuleIssue(self.source, line, column, field, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def sorted(self) -> list[RuleIssue]:
        return sort_issues(self.items)


def sort_issues(items: list[RuleIssue]) -> list[RuleIssue]:
    """Issues in file order (by source, line, column); those without a position keep their order."""
    return sorted(items, key=lambda i: (i.file, i.line or 0, i.column or 0))


class Src:
    """One value of the input: a mapping, a list or a scalar, with its position when known.

    ``kind`` is one of map, seq, str, int, float, bool, null, other. ``value`` is the Python value
    of a scalar; ``text`` its text as written (YAML) or its canonical text (plain data).
    """

    kind: str
    value: Any
    text: str
    line: int | None
    column: int | None

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    @property
    def is_scalar(self) -> bool:
        return self.kind in ("str", "int", "float", "bool")

    def entries(self, issues: Issues, field: str) -> list[tuple[str, Src, Src]]:
        """(key, key source, value source) of a mapping, in order; bad keys go to ``issues``."""
        raise NotImplementedError

    def elements(self) -> list[Src]:
        """The items of a list."""
        raise NotImplementedError


class YamlSrc(Src):
    """A composed YAML node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.line = node.start_mark.line + 1
        self.column = node.start_mark.column + 1
        self.value = None
        self.text = ""
        if isinstance(node, MappingNode):
            self.kind = "map"
        elif isinstance(node, SequenceNode):
            self.kind = "seq"
        else:
            assert isinstance(node, ScalarNode)
            self._scalar(node)

    def _scalar(self, node: ScalarNode) -> None:
        self.text = str(node.value)
        kind = _KIND_OF_TAG.get(node.tag, "other")
        self.kind = kind
        try:
            if kind == "int":
                self.value = _CONSTRUCTOR.construct_yaml_int(node)
            elif kind == "float":
                self.value = _CONSTRUCTOR.construct_yaml_float(node)
            elif kind == "bool":
                self.value = _CONSTRUCTOR.construct_yaml_bool(node)
            elif kind == "str":
                self.value = self.text
        except (ValueError, TypeError, yaml.YAMLError):  # "!!int zz" and friends
            self.kind = "other"
        if self.kind == "other":
            self.value = f"YAML tag {node.tag}"

    def entries(self, issues: Issues, field: str) -> list[tuple[str, Src, Src]]:
        out: list[tuple[str, Src, Src]] = []
        seen: dict[str, Src] = {}
        explicit, merged = self._pairs(issues, field)
        for key_src, value_src, from_merge in explicit + merged:
            if key_src.kind not in ("str", "int", "float", "bool", "null"):
                issues.add(key_src, field, f"keys must be plain text, not {key_src.kind_name}")
                continue
            key = key_src.text
            if key in seen:
                if not from_merge:
                    first = seen[key]
                    issues.add(key_src, _join(field, key), f"duplicate key (first at line {first.line})")
                continue
            seen[key] = key_src
            out.append((key, key_src, value_src))
        return out

    def _pairs(
        self, issues: Issues, field: str
    ) -> tuple[list[tuple[Src, Src, bool]], list[tuple[Src, Src, bool]]]:
        """Explicit pairs, then pairs from ``<<:`` merge keys (explicit keys win, as in YAML)."""
        explicit: list[tuple[Src, Src, bool]] = []
        merged: list[tuple[Src, Src, bool]] = []
        visited: set[int] = {id(self.node)}
        pending: list[tuple[Node, Node]] = list(self.node.value)
        first = True
        while pending:
            batch, pending = pending, []
            for key_node, value_node in batch:
                if key_node.tag == _MERGE_TAG:
                    sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                    for merged_node in sources:
                        if not isinstance(merged_node, MappingNode):
                            issues.add(YamlSrc(merged_node), field, "'<<' must name a mapping")
                            continue
                        if id(merged_node) not in visited:  # a merge that includes itself
                            visited.add(id(merged_node))
                            pending.extend(merged_node.value)
                    continue
                pair = (YamlSrc(key_node), YamlSrc(value_node), not first)
                (explicit if first else merged).append(pair)
            first = False
        return explicit, merged

    def elements(self) -> list[Src]:
        return [YamlSrc(node) for node in self.node.value]


class PlainSrc(Src):
    """A value of plain Python data (mappings, lists, tuples, str, int, float, bool, None)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.line = None
        self.column = None
        self.value = data
        self.text = ""
        if isinstance(data, Mapping):
            self.kind = "map"
        elif isinstance(data, (list, tuple)):
            self.kind = "seq"
        elif data is None:
            self.kind = "null"
        elif isinstance(data, bool):
            self.kind, self.text = "bool", "true" if data else "false"
        elif isinstance(data, int):
            self.kind, self.text = "int", str(data)
        elif isinstance(data, float):
            self.kind = "float"
            # cty numbers may arrive as 2341.0; their text is what the user wrote, 2341
            integral = math.isfinite(data) and data == int(data)
            self.text = str(int(data)) if integral else repr(data)
        elif isinstance(data, str):
            self.kind, self.text = "str", data
        elif isinstance(data, bytes):
            try:
                self.kind, self.text = "str", data.decode("utf-8")
                self.value = self.text
            except UnicodeDecodeError:
                self.kind, self.value = "other", "bytes that are not UTF-8"
        else:
            self.kind = "other"
            self.value = f"value of type {type(data).__name__}"

    def entries(self, issues: Issues, field: str) -> list[tuple[str, Src, Src]]:
        out: list[tuple[str, Src, Src]] = []
        for key, value in self.data.items():
            if value is None:  # absent, the way cty sends unset optional attributes
                continue
            if isinstance(key, bytes):
                key = key.decode("utf-8", "replace")
            if not isinstance(key, str):
                issues.add(None, field, f"keys must be text, not {type(key).__name__} {key!r:.40}")
                continue
            out.append((key, PlainSrc(key), PlainSrc(value)))
        return out

    def elements(self) -> list[Src]:
        return [PlainSrc(item) for item in self.data]


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


class _TagRecordingLoader(yaml.SafeLoader):
    """PyYAML's safe composer, noting every tag written in the document (composed nodes cannot tell
    ``!!str x`` from ``x``, so the parser's events are read as they pass)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.written_tags: list[tuple[str, Any]] = []  # (tag, start mark)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        tag = getattr(event, "tag", None)  # an alias event has none
        if tag is not None:
            self.written_tags.append((tag, event.start_mark))
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _compose(text: str) -> tuple[Node | None, list[tuple[str, Any]]]:
    loader = _TagRecordingLoader(text)
    try:
        return loader.get_single_node(), loader.written_tags
    finally:
        loader.dispose()


def _tag_issue(issues: Issues, tag: str, mark: Any) -> None:
    shown = _SHORT_TAG + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    _add_at(issues, mark, f"YAML tag {quote(shown)} is not accepted: rules are plain YAML (remove the tag)")


def compose_yaml(text: str, issues: Issues) -> Src | None:
    """The document in ``text`` as a tree; None (with the problem in ``issues``) if there is none.

    A document with tags is refused before its rules are read: every tag is reported (line and
    column), and nothing else, as with a syntax error.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        issues.add(None, "", f"file is {size} bytes; the limit is {MAX_BYTES} (1 MiB)")
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        # A tag is written with a "!": without one in the text, libyaml's composer cannot miss a tag.
        node = _compose_fast(text) if "!" not in text else _NOT_COMPOSED
    except Exception:  # noqa: BLE001 - the pure-Python composer below says what is wrong, in its own words
        node = _NOT_COMPOSED
    tags: list[tuple[str, Any]] = []
    try:
        if node is _NOT_COMPOSED:
            node, tags = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # PyYAML's context ("while scanning a quoted scalar") reads first, then the problem.
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        _add_at(issues, mark, f"not valid YAML: {problem}")
        return None
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        issues.items.append(RuleIssue(issues.source, line, column, "", f"not valid YAML: {exc.reason} ({shown})"))
        return None
    except yaml.YAMLError as exc:
        issues.add(None, "", f"not valid YAML: {exc}")
        return None
    except RecursionError:
        # The pure-Python composer recurses once per nesting level; no rules file nests this deep.
        issues.add(None, "", "not valid rules: YAML nested too deeply")
        return None
    if tags:
        for tag, mark in tags:
            _tag_issue(issues, tag, mark)
        return None
    if node is None:
        issues.add(None, "", "empty file: expected a top-level 'rules:' list (write 'rules: []' for none)")
        return None
    return YamlSrc(node)


_NOT_COMPOSED = object()


def _compose_fast(text: str) -> Any:
    """The same node tree through libyaml when PyYAML has it (a rules file parses about 15x faster).

    Only a document libyaml accepts is taken from it; anything it rejects goes through the
    pure-Python composer, whose messages and positions the error reports are written for.
    """
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return _NOT_COMPOSED
    return yaml.compose(text, Loader=loader)


def _add_at(issues: Issues, mark: Any, message: str) -> None:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    issues.items.append(RuleIssue(issues.source, line, column, "", message))


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1
