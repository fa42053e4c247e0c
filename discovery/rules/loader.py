"""Loading rules: a YAML file or text, or inline rules as plain data, validated all at once.

``load_rules`` / ``parse_rules`` read a YAML rules file, ``rules_from_dicts`` reads inline rules from
the plugin config; all three validate everything at once and raise ``RulesError`` listing every
problem with file, line, column and field.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.model import Rule
from discovery.rules.ruleset import RuleSet
from discovery.rules.schema.rule import rule_conflicts, rules_from_list, rules_from_tree
from discovery.rules.tree import MAX_BYTES, Issues, PlainSrc, compose_yaml


def parse_rules(text: str | bytes, source: str = "<string>") -> RuleSet:
    """Rules from YAML text; raises RulesError listing every problem."""
    issues = Issues(source)
    if isinstance(text, (bytes, bytearray)):
        decoded = _decode(bytes(text), issues)
        if decoded is None:
            raise RulesError(issues.sorted())
        text = decoded
    elif not isinstance(text, str):
        issues.add(None, "", f"expected rules text, got {type(text).__name__}")
        raise RulesError(issues.sorted())
    root = compose_yaml(text, issues)
    rules = rules_from_tree(root, issues) if root is not None else []
    issues.items.extend(rule_conflicts(rules))
    if issues:
        raise RulesError(issues.sorted())
    return RuleSet(tuple(rules))


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Rules from a YAML file; raises RulesError (also for a missing, unreadable or huge file)."""
    source = os.fspath(path)
    issues = Issues(source)
    data = _read_file(source, issues)
    if data is None:
        raise RulesError(issues.sorted())
    return parse_rules(data, source)


def rules_from_dicts(items: Sequence[Mapping[str, object]], source: str, field_prefix: str = "rules") -> list[Rule]:
    """Rules from plain data (inline rules of the plugin config), same schema as one YAML rule.

    ``None`` values mean "absent"; numbers may come as text. There are no line numbers, but every
    problem still names its field (``rules[0].match.vendor_id``). Raises RulesError.
    """
    issues = Issues(source)
    rules = rules_from_list(PlainSrc(items), issues, field_prefix)
    issues.items.extend(rule_conflicts(rules))
    if issues:
        raise RulesError(issues.sorted())
    return rules


def _read_file(path: str, issues: Issues) -> bytes | None:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            issues.add(None, "", "is a directory, not a rules file")
            return None
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            issues.add(None, "", "is not a regular file")
            return None
        if info.st_size > MAX_BYTES:
            issues.add(None, "", f"file is {info.st_size} bytes; the limit is {MAX_BYTES} (1 MiB)")
            return None
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        issues.add(None, "", "no such file")
        return None
    except OSError as exc:
        issues.add(None, "", f"cannot read: {exc.strerror or exc}")
        return None
    if len(data) > MAX_BYTES:
        issues.add(None, "", f"file is larger than the limit of {MAX_BYTES} bytes (1 MiB)")
        return None
    return data


def _decode(data: bytes, issues: Issues) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        issues.items.append(
            RuleIssue(issues.source, line, column, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x})")
        )
        return None
