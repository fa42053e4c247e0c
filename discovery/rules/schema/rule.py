"""A whole rule, and the rules of a document: the validator's entry points, and conflicts between rules.

The validator reads the positioned tree of ``discovery.rules.tree`` (YAML or plain data alike),
checks every key and value, and reports every problem it finds into one ``Issues`` list, so a user
fixes a file in one pass. A rule with any problem is left out; the caller refuses the whole source
when there is any problem at all ("a rejected file changes nothing"). Each section of a rule has its
own module: ``match``, ``attributes`` and ``outputs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from discovery.rules.errors import RuleIssue
from discovery.rules.model import DEFAULT_PERMISSIONS, AttrSpec, GroupKey, Rule
from discovery.rules.schema.attributes import read_attributes
from discovery.rules.schema.declared import check_placeholders, declared_id_conflicts, read_devices
from discovery.rules.schema.keys import (
    DEFAULT_KIND,
    IGNORE_RULE_KEYS,
    KINDS,
    MISPLACED_IN_RULE,
    RULE_KEYS,
    RULE_KEYS_ONLY_FOR,
)
from discovery.rules.schema.match import read_match
from discovery.rules.schema.outputs import (
    read_env,
    read_group,
    read_health,
    read_mounts,
    read_nodes,
    read_permissions,
    read_stats,
)
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.tree import Issues, Src, quote

MAX_RULES = 10_000


def rules_from_tree(root: Src, issues: Issues) -> list[Rule]:
    """Rules of a whole YAML document: a mapping with one key, ``rules``, holding a list."""
    if root.kind == "seq":
        issues.add(root, "", "the top level is a list; put the rules under a 'rules:' key")
        return []
    before = len(issues.items)
    top = read_map(root, "", issues, ("rules",))
    if top is None:
        return []
    if "rules" not in top:
        if len(issues.items) == before:  # an unknown or empty key already explains the absence
            issues.add(root, "", "no 'rules:' list (write 'rules: []' for none)")
        return []
    return rules_from_list(top["rules"][1], issues, "rules")


def rules_from_list(src: Src, issues: Issues, prefix: str) -> list[Rule]:
    """Rules of a list of rule mappings; ``prefix`` starts each field path (``rules``)."""
    if src.kind != "seq":
        issues.add(src, prefix, f"expected a list of rules, got {src.kind_name}")
        return []
    elements = src.elements()
    if len(elements) > MAX_RULES:
        issues.add(src, prefix, f"{len(elements)} rules; the limit is {MAX_RULES}")
        return []
    rules = []
    for index, element in enumerate(elements):
        rule = read_rule(Reader(issues), element, index, f"{prefix}[{index}]")
        if rule is not None:
            rules.append(rule)
    return rules


def rule_conflicts(rules: Sequence[Rule]) -> list[RuleIssue]:
    """Problems between rules: groups made with different attributes, declared device IDs given twice."""
    return group_conflicts(rules) + declared_id_conflicts(rules)


def group_conflicts(rules: Sequence[Rule]) -> list[RuleIssue]:
    """Rules that make the same static group with different attributes (one issue per later rule)."""
    found: list[RuleIssue] = []
    first: dict[GroupKey, Rule] = {}
    for rule in rules:
        if rule.ignore or rule.group is None:
            continue
        key = rule.group.static_key
        if key is None:
            continue
        earlier = first.setdefault(key, rule)
        if earlier is rule:
            continue
        difference = attribute_difference(earlier.attributes, rule.attributes)
        if difference:
            found.append(
                RuleIssue(
                    rule.source,
                    rule.line,
                    rule.column,
                    f"{rule.field}.group",
                    f"group {key} is also made by {earlier.describe()} with different attributes: "
                    f"{difference} (a group has one set of attributes; give this group another name)",
                )
            )
    return found


def attribute_difference(there: Sequence[AttrSpec], here: Sequence[AttrSpec]) -> str | None:
    """The first difference between two rules' attributes, in words, or None when they agree."""
    theirs = {attr.key: attr for attr in there}
    mine = {attr.key: attr for attr in here}
    for key in sorted(set(theirs) | set(mine)):
        a, b = theirs.get(key), mine.get(key)
        if a is None and b is not None:
            return f"{quote(key)} is set only here"
        if b is None and a is not None:
            return f"{quote(key)} is missing here"
        if a is not None and b is not None and a.signature != b.signature:
            return f"{quote(key)} is {a.describe()} there and {b.describe()} here"
    return None


def read_rule(r: Reader, src: Src, index: int, field: str) -> Rule | None:
    """One rule from its source, or None when it has any problem (each one added to ``r.issues``)."""
    before = len(r.issues.items)
    keys = read_map(src, field, r.issues, RULE_KEYS, MISPLACED_IN_RULE)
    if keys is None:
        return None
    value = {key: pair[1] for key, pair in keys.items()}
    label = field  # a rule without a name is known by its place: rules[2]
    if "name" in value:
        label = r.text(value["name"], f"{field}.name", non_empty=True) or label
    kind = _read_kind(r, value.get("kind"), f"{field}.kind")
    if kind is None:
        return None  # with an unknown kind, no other key can be judged
    r.kind = kind
    for key, (key_src, _) in keys.items():
        kinds = RULE_KEYS_ONLY_FOR.get(key)
        if kinds is not None and kind not in kinds:
            r.error(key_src, f"{field}.{key}", _KIND_ONLY_MESSAGES[key].format(kind=kind))
    before_ignore = len(r.issues.items)
    ignore = r.boolean(value.get("ignore"), f"{field}.ignore", False) if kind != "declared" else False
    ignore_valid = len(r.issues.items) == before_ignore
    conditions = read_match(r, value["match"], f"{field}.match", kind) if "match" in value and kind != "declared" else ()
    rule = Rule(
        index=index,
        label=label,
        source=r.issues.source,
        line=src.line,
        column=src.column,
        field=field,
        conditions=conditions,
        kind=kind,
        ignore=ignore,
    )
    # With a bad 'ignore' it is unknown what else the rule needs: report only that.
    if ignore_valid and ignore:
        for key, (key_src, _) in keys.items():
            if key not in IGNORE_RULE_KEYS:
                r.error(key_src, f"{field}.{key}", "an ignore rule takes only 'name' and 'match'")
    elif ignore_valid and "group" not in value:
        missing = "missing: every rule that is not 'ignore: true' needs a group with vendor, type and name"
        r.error(src, f"{field}.group", missing)
    elif ignore_valid:
        rule = _with_outputs(r, rule, value, field)
        if kind == "declared":
            rule = _with_devices(r, rule, value, src, field)
    if len(r.issues.items) > before:
        return None
    return rule


# Why a rule of some kind cannot take a key that only other kinds take.
_KIND_ONLY_MESSAGES = {
    "children": "'children' is for 'kind: usb' rules only: a 'kind: {kind}' rule hands over the device's "
                "own node, plus the paths in 'nodes:'",
    "reset": "'reset' is for 'kind: usb' rules only: only a USB device can be reset",
    "require_driver": "'require_driver' is for 'kind: usb' rules only: a 'kind: {kind}' device has its node "
                      "once its driver made it (match the driver with 'match: {{driver: ...}}')",
    "ignore": "'ignore' is for 'kind: usb' and 'kind: udev' rules: a declared device is left out by not declaring it",
    "match": "a declared rule matches nothing: it lists its devices under 'devices:' "
             "(remove 'match:', or remove 'kind: declared' to match discovered devices)",
    "devices": "'devices:' lists declared devices: it needs 'kind: declared' in the same rule",
}


def _read_kind(r: Reader, src: Src | None, field: str) -> str | None:
    """``kind:``, ``usb`` when absent; None (with an error) for an unknown or not yet supported kind."""
    if src is None:
        return DEFAULT_KIND
    text = r.text(src, field, non_empty=True)
    if text is None:
        return None
    if text not in KINDS:
        r.error(src, field, f"{quote(text)} is not a kind of rule: write one of {', '.join(KINDS)} "
                "(usb when left out)")  # fmt: skip
        return None
    return text


def _with_outputs(r: Reader, rule: Rule, value: dict[str, Src], field: str) -> Rule:
    """``rule`` with everything a non-ignore rule makes of its devices (errors go to ``issues``)."""
    children = None
    if "children" in value:
        names = r.names(value["children"], f"{field}.children", allow_empty=True)
        children = frozenset(names) if names is not None else None
    permissions = DEFAULT_PERMISSIONS
    if "permissions" in value:
        permissions = read_permissions(r, value["permissions"], f"{field}.permissions") or DEFAULT_PERMISSIONS
    return replace(
        rule,
        group=read_group(r, value["group"], f"{field}.group"),
        attributes=read_attributes(r, value["attributes"], f"{field}.attributes") if "attributes" in value else (),
        children=children,
        permissions=permissions,
        env=read_env(r, value["env"], f"{field}.env") if "env" in value else (),
        mounts=read_mounts(r, value["mounts"], f"{field}.mounts") if "mounts" in value else (),
        nodes=read_nodes(r, value["nodes"], f"{field}.nodes") if "nodes" in value else (),
        health=read_health(r, value["health"], f"{field}.health") if "health" in value else None,
        stats=read_stats(r, value["stats"], f"{field}.stats") if "stats" in value else None,
        reset=r.boolean(value.get("reset"), f"{field}.reset", False),
        require_driver=r.boolean(value.get("require_driver"), f"{field}.require_driver", False),
    )


def _with_devices(r: Reader, rule: Rule, value: dict[str, Src], src: Src, field: str) -> Rule:
    """A declared rule with its ``devices:`` list, each device's placeholders checked against its values."""
    if "devices" not in value:
        r.error(src, f"{field}.devices", "missing: a declared rule lists its devices under 'devices:' "
                "(each with an 'id')")  # fmt: skip
        return rule
    devices = read_devices(r, value["devices"], f"{field}.devices")
    if devices is None:
        return rule
    rule = replace(rule, devices=devices)
    check_placeholders(r, rule)
    return rule
