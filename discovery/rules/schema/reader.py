"""Reading the positioned tree for the validator: mappings with known keys, and checked scalars and lists.

Every problem goes into one ``Issues`` list (nothing raises), so a user fixes a file in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TypeVar

from discovery.durations import DurationError, parse_duration
from discovery.rules.conditions import Glob, GlobError, compile_glob
from discovery.rules.schema.values import SUBSYSTEM_NAME, parse_hex_id
from discovery.rules.templates import Template, TemplateError, parse_template, placeholder_problem
from discovery.rules.tree import Issues, Src, quote

T = TypeVar("T")


def read_map(
    src: Src,
    field: str,
    issues: Issues,
    keys: Sequence[str] | None,
    elsewhere: dict[str, str] | None = None,
    refused: dict[str, str] | None = None,
) -> dict[str, tuple[Src, Src]] | None:
    """Key -> (key source, value source) of a mapping; with ``keys``, unknown keys are errors.

    ``elsewhere`` says where a key written at the wrong level belongs; ``refused`` gives the whole
    message for keys this mapping knows but does not take here (a key of another kind of rule).
    """
    if src.kind != "map":
        issues.add(src, field, f"expected a mapping, got {src.kind_name}")
        return None
    result: dict[str, tuple[Src, Src]] = {}
    for key, key_src, value_src in src.entries(issues, field):
        if keys is not None and key not in keys:
            message = (refused or {}).get(key) or _unknown_key(key, keys, elsewhere or {})
            issues.add(key_src, _join(field, key), message)
            continue
        if value_src.kind == "null":
            issues.add(key_src, _join(field, key), "has no value (give one, or remove the key)")
            continue
        result[key] = (key_src, value_src)
    return result


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _unknown_key(key: str, valid: Sequence[str], elsewhere: dict[str, str]) -> str:
    message = f"unknown key {quote(key)}"
    if key in elsewhere:
        return f"{message}: it belongs {elsewhere[key]}"
    close = difflib.get_close_matches(key.lower(), valid, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {quote(close[0])}?"
    return f"{message} (valid keys: {', '.join(valid)})"


class Reader:
    """Reads checked values out of one source, adding every problem to ``issues``."""

    def __init__(self, issues: Issues, kind: str = "usb") -> None:
        self.issues = issues
        self.kind = kind  # the kind of the rule being read: which placeholders its templates may use

    def error(self, at: Src | None, field: str, message: str) -> None:
        self.issues.add(at, field, message)

    def text(self, src: Src, field: str, non_empty: bool = False) -> str | None:
        if src.kind == "other":
            self.error(src, field, f"unsupported {src.value}")
            return None
        if not src.is_scalar:
            self.error(src, field, f"expected text, got {src.kind_name}")
            return None
        if "\x00" in src.text:
            self.error(src, field, "contains a NUL character")
            return None
        if non_empty and not src.text.strip():
            self.error(src, field, "must not be empty")
            return None
        return src.text

    def boolean(self, src: Src | None, field: str, default: bool) -> bool:
        if src is None:
            return default
        if src.kind == "bool":
            return bool(src.value)
        if src.kind == "str" and src.text.strip().lower() in ("true", "false"):
            return src.text.strip().lower() == "true"
        self.error(src, field, f"expected true or false, got {self.shown(src)}")
        return default

    def shown(self, src: Src) -> str:
        return quote(src.text) if src.is_scalar else src.kind_name

    def items(self, src: Src, field: str, allow_empty: bool = False) -> list[tuple[Src, str]] | None:
        """A scalar as a one-item list, or a list's items, each with its field path."""
        if src.is_scalar or src.kind == "other":
            return [(src, field)]
        if src.kind != "seq":
            self.error(src, field, f"expected a value or a list, got {src.kind_name}")
            return None
        elements = src.elements()
        if not elements and not allow_empty:
            self.error(src, field, "empty list (leave the condition out to match any device)")
            return None
        return [(element, f"{field}[{i}]") for i, element in enumerate(elements)]

    def converted(self, src: Src, field: str, convert: Callable[[str], T]) -> list[T] | None:
        """A value or a list of them, each text through ``convert`` (whose ValueError is the item's error);
        None when any item is wrong, every error reported."""
        items = self.items(src, field)
        if items is None:
            return None
        values: list[T] = []
        ok = True
        for element, sub in items:
            text = self.text(element, sub)
            if text is None:
                ok = False
                continue
            try:
                values.append(convert(text))
            except ValueError as exc:
                self.error(element, sub, str(exc))
                ok = False
        return values if ok else None

    def hex_set(self, src: Src, field: str, maximum: int, what: str) -> frozenset[int] | None:
        values = self.converted(src, field, lambda text: parse_hex_id(text, maximum, what))
        return frozenset(values) if values is not None else None

    def globs(self, src: Src, field: str) -> tuple[Glob, ...] | None:
        globs = self.converted(src, field, _glob)
        return tuple(globs) if globs is not None else None

    def named(
        self,
        keys: dict[str, tuple[Src, Src]],
        field: str,
        name_problem: Callable[[str], str | None],
        read: Callable[[Src, str], T | None],
    ) -> tuple[list[tuple[str, T]], bool]:
        """The ``name: value`` entries of a mapping (from ``read_map``) whose name ``name_problem`` accepts
        (None; else its message is the entry's error) and whose value ``read`` takes, and whether all did."""
        out: list[tuple[str, T]] = []
        ok = True
        for name, (key_src, value_src) in keys.items():
            sub = f"{field}.{name}"
            problem = name_problem(name)
            if problem is not None:
                self.error(key_src, sub, problem)
                ok = False
                continue
            value = read(value_src, sub)
            if value is None:
                ok = False
                continue
            out.append((name, value))
        return out, ok

    def names(self, src: Src, field: str, allow_empty: bool) -> list[str] | None:
        items = self.items(src, field, allow_empty=allow_empty)
        if items is None:
            return None
        names: list[str] = []
        ok = True
        for element, sub in items:
            text = self.text(element, sub)
            if text is not None and not SUBSYSTEM_NAME.match(text):
                self.error(element, sub, f"{quote(text)} is not a subsystem name (tty, hidraw, usb, ...)")
                text = None
            if text is None:
                ok = False
            else:
                names.append(text)
        return names if ok else None

    def template(self, src: Src, field: str, non_empty: bool = False) -> Template | None:
        text = self.text(src, field, non_empty=non_empty)
        if text is None:
            return None
        try:
            template = parse_template(text)
        except TemplateError as exc:
            self.error(src, field, f"{quote(text)}: {exc}")
            return None
        problems = [p for name in template.placeholders if (p := placeholder_problem(name, self.kind))]
        if problems:
            self.error(src, field, f"{quote(text)}: {problems[0]}")
            return None
        return template

    def duration(self, src: Src | None, field: str, default: float) -> float | None:
        if src is None:
            return default
        if src.kind in ("int", "float"):
            self.error(src, field, f"{src.text} has no unit (write e.g. \"{src.text}s\")")
            return None
        text = self.text(src, field)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except DurationError as exc:
            self.error(src, field, str(exc))
            return None


def _glob(text: str) -> Glob:
    try:
        return compile_glob(text)
    except GlobError as exc:
        raise ValueError(f"{quote(text)}: {exc}") from None
