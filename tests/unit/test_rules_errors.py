"""Every kind of rules error: reported with file, line, column and field, all at once."""

from __future__ import annotations

import pytest

from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.loader import parse_rules

G = "group: {vendor: v, type: t, name: n}"


def issues_of(text: str, source: str = "rules.yaml") -> list[RuleIssue]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, source)
    return list(caught.value.issues)


# (id, rules text, field, message fragment, line, text the column points at)
ERRORS = [
    ("bad-hex", f"rules:\n  - match: {{vendor_id: zz12}}\n    {G}\n",
     "rules[0].match.vendor_id", '"zz12" is not a hex USB id', 2, 'zz12'),
    ("id-too-big", f"rules:\n  - match: {{product_id: 0x12345}}\n    {G}\n",
     "rules[0].match.product_id", "out of range for a USB id (0x0 to 0xffff)", 2, '0x12345'),
    ("id-negative", f"rules:\n  - match: {{product_id: -1}}\n    {G}\n",
     "rules[0].match.product_id", '"-1" is not a hex USB id', 2, '-1'),
    ("id-in-list", f"rules:\n  - match: {{product_id: [4ee7, xyz]}}\n    {G}\n",
     "rules[0].match.product_id[1]", '"xyz" is not a hex USB id', 2, 'xyz'),
    ("id-empty-list", f"rules:\n  - match: {{product_id: []}}\n    {G}\n",
     "rules[0].match.product_id", "empty list", 2, '['),
    ("id-mapping", f"rules:\n  - match: {{product_id: {{a: 1}}}}\n    {G}\n",
     "rules[0].match.product_id", "expected a value or a list, got a mapping", 2, '{a: 1'),
    ("class-too-big", f"rules:\n  - match: {{device_class: 0x100}}\n    {G}\n",
     "rules[0].match.device_class", "out of range for a class code (0x0 to 0xff)", 2, '0x100'),
    ("interface-empty", f"rules:\n  - match: {{interface: {{}}}}\n    {G}\n",
     "rules[0].match.interface", "at least one of class, subclass, protocol", 2, '{}'),
    ("unknown-match-key", f"rules:\n  - match: {{vendorid: 18d1}}\n    {G}\n",
     "rules[0].match.vendorid", 'unknown key "vendorid"; did you mean "vendor_id"?', 2, 'vendorid: 18d1'),
    ("match-key-at-rule-level", f"rules:\n  - vendor_id: 18d1\n    {G}\n",
     "rules[0].vendor_id", "it belongs under 'match:'", 2, 'vendor_id: 18d1'),
    ("unknown-rule-key", f"rules:\n  - {G}\n    requires_driver: true\n",
     "rules[0].requires_driver", 'unknown key "requires_driver"; did you mean "require_driver"?', 3, 'requires_'),
    ("unknown-key-no-suggestion", f"rules:\n  - {G}\n    zzzz: 1\n",
     "rules[0].zzzz", "valid keys: name, match", 3, 'zzzz: 1'),
    ("unknown-top-key", "rulez: []\n", "rulez", 'did you mean "rules"?', 1, 'rulez: ['),
    ("unclosed-bracket", f"rules:\n  - match: {{serial: '[abc'}}\n    {G}\n",
     "rules[0].match.serial", "unclosed '['", 2, "'[abc'"),
    ("empty-glob", f"rules:\n  - match: {{product: ''}}\n    {G}\n",
     "rules[0].match.product", "empty pattern", 2, "''"),
    ("glob-not-text", f"rules:\n  - match: {{serial: {{a: b}}}}\n    {G}\n",
     "rules[0].match.serial", "expected a value or a list, got a mapping", 2, '{a: b'),
    ("bad-property-name", f"rules:\n  - match: {{properties: {{'A B': x}}}}\n    {G}\n",
     "rules[0].match.properties.A B", "not a udev property name", 2, "'A B': x"),
    ("bad-subsystem", f"rules:\n  - match: {{subsystem: 'TTY!'}}\n    {G}\n",
     "rules[0].match.subsystem", "not a subsystem name", 2, "'TTY!'"),
    ("rule-not-mapping", "rules:\n  - just text\n", "rules[0]", "expected a mapping, got text", 2, 'just text'),
    ("rules-not-list", "rules: {a: 1}\n", "rules", "expected a list of rules, got a mapping", 1, '{a: 1'),
    ("rules-null", "rules:\n", "rules", "has no value", 1, 'rules:'),
    ("top-level-list", f"- {G}\n", "", "put the rules under a 'rules:' key", 1, '- group: {vendor: v'),
    ("top-level-scalar", "hello\n", "", "expected a mapping, got text", 1, 'hello'),
    ("no-rules-key", "{}\n", "", "no 'rules:' list", 1, '{'),
    ("missing-group", "rules:\n  - match: {vendor_id: 1}\n", "rules[0].group", "needs a group", 2, 'match:'),
    ("missing-group-name", "rules:\n  - group: {vendor: v, type: t}\n",
     "rules[0].group.name", "missing", 2, '{vendor: v'),
    ("slash-in-group", "rules:\n  - group: {vendor: v, type: t, name: a/b}\n",
     "rules[0].group.name", "contains '/'", 2, 'a/b'),
    ("space-in-group", "rules:\n  - group: {vendor: 'a b', type: t, name: n}\n",
     "rules[0].group.vendor", "contains ' '", 2, "'a b'"),
    ("empty-group-part", "rules:\n  - group: {vendor: '', type: t, name: n}\n",
     "rules[0].group.vendor", "must not be empty", 2, "''"),
    ("group-not-mapping", "rules:\n  - group: google/phone/pixel\n",
     "rules[0].group", "expected a mapping, got text", 2, 'google/phone/pixel'),
    ("bad-template", "rules:\n  - group: {vendor: v, type: t, name: 'p-{serial'}\n",
     "rules[0].group.name", "unclosed '{'", 2, "'p-{serial'"),
    ("unknown-placeholder", "rules:\n  - group: {vendor: v, type: t, name: 'p-{serial number}'}\n",
     "rules[0].group.name", "unknown placeholder {serial number}", 2, "'p-{serial number"),
    ("format-spec", "rules:\n  - group: {vendor: v, type: t, name: 'p-{busnum:03d}'}\n",
     "rules[0].group.name", "unknown placeholder {busnum:03d}", 2, "'p-{busnum:03d"),
    ("lone-brace", "rules:\n  - group: {vendor: v, type: t, name: 'p}'}\n",
     "rules[0].group.name", "single '}'", 2, "'p"),
    ("ignore-not-bool", "rules:\n  - ignore: maybe\n",
     "rules[0].ignore", 'expected true or false, got "maybe"', 2, 'maybe'),
    ("ignore-with-group", f"rules:\n  - ignore: true\n    {G}\n",
     "rules[0].group", "an ignore rule takes only 'name' and 'match'", 3, 'group: {vendor: v'),
    ("empty-name", f"rules:\n  - name: ''\n    {G}\n", "rules[0].name", "must not be empty", 2, "''"),
    ("attr-key", f"rules:\n  - {G}\n    attributes: {{'a b': 1}}\n",
     "rules[0].attributes.a b", "not an attribute name", 3, "'a b': 1"),
    ("unit-unknown", f"rules:\n  - {G}\n    attributes: {{ram: {{value: 8, unit: gigs}}}}\n",
     "rules[0].attributes.ram.unit", '"gigs" is not a unit Nomad knows', 3, 'gigs'),
    ("unit-case", f"rules:\n  - {G}\n    attributes: {{ram: {{value: 8, unit: gib}}}}\n",
     "rules[0].attributes.ram.unit", 'did you mean "GiB"?', 3, 'gib'),
    ("unit-on-string", f"rules:\n  - {G}\n    attributes: {{m: {{value: abc, unit: GiB, type: string}}}}\n",
     "rules[0].attributes.m.unit", "a unit goes only with a number", 3, 'GiB'),
    ("unit-on-bool", f"rules:\n  - {G}\n    attributes: {{m: {{value: true, unit: W}}}}\n",
     "rules[0].attributes.m.unit", "not a bool value", 3, 'W'),
    ("unit-on-text", f"rules:\n  - {G}\n    attributes: {{m: {{value: abc, unit: W}}}}\n",
     "rules[0].attributes.m.value", '"abc" is not a number', 3, 'abc'),
    ("unit-template-untyped", f"rules:\n  - {G}\n    attributes: {{m: {{value: '{{speed}}', unit: W}}}}\n",
     "rules[0].attributes.m.value", "needs 'type: int' or 'type: float'", 3, "'{speed"),
    ("attr-type", f"rules:\n  - {G}\n    attributes: {{m: {{value: 1, type: integer}}}}\n",
     "rules[0].attributes.m.type", '"integer" is not a type', 3, 'integer'),
    ("attr-static-convert", f"rules:\n  - {G}\n    attributes: {{m: {{value: x1, type: int}}}}\n",
     "rules[0].attributes.m.value", '"x1" is not a whole number', 3, 'x1'),
    ("attr-nan", f"rules:\n  - {G}\n    attributes: {{m: .nan}}\n",
     "rules[0].attributes.m", "NaN and infinity", 3, '.nan'),
    ("attr-int64", f"rules:\n  - {G}\n    attributes: {{m: 99999999999999999999}}\n",
     "rules[0].attributes.m", "does not fit in 64 bits", 3, '99999999999999999999'),
    ("attr-list", f"rules:\n  - {G}\n    attributes: {{m: [1, 2]}}\n",
     "rules[0].attributes.m", "got a list", 3, '[1'),
    ("attr-no-value", f"rules:\n  - {G}\n    attributes: {{m: {{unit: W}}}}\n",
     "rules[0].attributes.m.value", "missing", 3, '{unit: W'),
    ("permissions-bad", f"rules:\n  - {G}\n    permissions: rwx\n",
     "rules[0].permissions", "non-empty subset of 'rwm'", 3, 'rwx'),
    ("permissions-empty", f"rules:\n  - {G}\n    permissions: ''\n",
     "rules[0].permissions", "non-empty subset of 'rwm'", 3, "''"),
    ("permissions-repeat", f"rules:\n  - {G}\n    permissions: rr\n",
     "rules[0].permissions", "non-empty subset of 'rwm'", 3, 'rr'),
    ("env-name", f"rules:\n  - {G}\n    env: {{1X: a}}\n", "rules[0].env.1X", "not an environment variable", 3, '1X'),
    ("env-dash", f"rules:\n  - {G}\n    env: {{A-B: a}}\n", "rules[0].env.A-B", "not an environment", 3, 'A-B'),
    ("env-nvidia", f"rules:\n  - {G}\n    env: {{NVIDIA_VISIBLE_DEVICES: all}}\n",
     "rules[0].env.NVIDIA_VISIBLE_DEVICES", "reserved", 3, 'NVIDIA_VISIBLE_DEVICES: all'),
    ("env-nomad", f"rules:\n  - {G}\n    env: {{NOMAD_FOO: x}}\n", "rules[0].env.NOMAD_FOO", "Nomad", 3, 'NOMAD'),
    ("env-not-map", f"rules:\n  - {G}\n    env: [A]\n", "rules[0].env", "expected a mapping, got a list", 3, '[A'),
    ("env-nul", f"rules:\n  - {G}\n    env: {{A: \"x\\0y\"}}\n", "rules[0].env.A", "NUL", 3, '"x\\0y"'),
    ("children-bad", f"rules:\n  - {G}\n    children: [tty, 'a b']\n",
     "rules[0].children[1]", "not a subsystem name", 3, "'a b'"),
    ("mount-relative-host", f"rules:\n  - {G}\n    mounts: [{{host_path: dev/ttyUSB0}}]\n",
     "rules[0].mounts[0].host_path", "must be an absolute path", 3, 'dev/ttyUSB0'),
    ("mount-outside-dev", f"rules:\n  - {G}\n    mounts: [{{host_path: /etc/shadow}}]\n",
     "rules[0].mounts[0].host_path", "must be under /dev or /sys", 3, '/etc/shadow'),
    ("mount-dev-itself", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev}}]\n",
     "rules[0].mounts[0].host_path", "must be under /dev or /sys", 3, '/dev'),
    ("mount-dotdot", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev/../etc/shadow}}]\n",
     "rules[0].mounts[0].host_path", "must be normalised", 3, '/dev/../etc/shadow'),
    ("mount-trailing-slash", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev/serial/}}]\n",
     "rules[0].mounts[0].host_path", "must be normalised", 3, '/dev/serial/'),
    ("mount-double-slash", f"rules:\n  - {G}\n    mounts: [{{host_path: //dev/x}}]\n",
     "rules[0].mounts[0].host_path", "must be normalised", 3, '//dev/x'),
    ("mount-placeholder-root", f"rules:\n  - {G}\n    mounts: [{{host_path: '/{{ID_ROOT}}/x'}}]\n",
     "rules[0].mounts[0].host_path", "must be under /dev or /sys", 3, "'/{ID_ROOT"),
    ("mount-placeholder-dev", f"rules:\n  - {G}\n    mounts: [{{host_path: '/de{{ID_V}}/x'}}]\n",
     "rules[0].mounts[0].host_path", "must be under /dev or /sys", 3, "'/de{ID_V"),
    ("mount-relative-task", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev/x, task_path: x}}]\n",
     "rules[0].mounts[0].task_path", "must be an absolute path", 3, 'x}'),
    ("mount-task-root", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev/x, task_path: /}}]\n",
     "rules[0].mounts[0].task_path", "must not be '/'", 3, '/}'),
    ("mount-missing-host", f"rules:\n  - {G}\n    mounts: [{{task_path: /dev/x}}]\n",
     "rules[0].mounts[0].host_path", "missing", 3, '{task_path: /dev/x'),
    ("mount-not-list", f"rules:\n  - {G}\n    mounts: {{host_path: /dev/x}}\n",
     "rules[0].mounts", "expected a list of mounts", 3, '{host_path: /dev/x'),
    ("mount-read-only", f"rules:\n  - {G}\n    mounts: [{{host_path: /dev/x, read_only: 2}}]\n",
     "rules[0].mounts[0].read_only", "expected true or false", 3, '2'),
    ("health-shell-string", f"rules:\n  - {G}\n    health: {{command: 'adb get-state'}}\n",
     "rules[0].health.command", "an argv list, not a shell string", 3, "'adb get-state'"),
    ("health-empty-argv", f"rules:\n  - {G}\n    health: {{command: []}}\n",
     "rules[0].health.command", "non-empty argv list", 3, '['),
    ("health-templated-program", f"rules:\n  - {G}\n    health: {{command: ['{{serial}}']}}\n",
     "rules[0].health.command[0]", "program must be written out", 3, "'{serial"),
    ("health-missing-command", f"rules:\n  - {G}\n    health: {{interval: 5s}}\n",
     "rules[0].health.command", "missing", 3, '{interval: 5s'),
    ("duration-bad", f"rules:\n  - {G}\n    health: {{command: [a], interval: 5 sec}}\n",
     "rules[0].health.interval", '"5 sec" is not a duration', 3, '5 sec'),
    ("duration-no-unit", f"rules:\n  - {G}\n    health: {{command: [a], interval: 30}}\n",
     "rules[0].health.interval", "30 has no unit", 3, '30'),
    ("duration-too-short", f"rules:\n  - {G}\n    health: {{command: [a], interval: 100ms}}\n",
     "rules[0].health.interval", "at least 1s", 3, '100ms'),
    ("timeout-zero", f"rules:\n  - {G}\n    health: {{command: [a], timeout: 0s}}\n",
     "rules[0].health.timeout", "more than 0s", 3, '0'),
    ("timeout-over-interval", f"rules:\n  - {G}\n    health: {{command: [a], interval: 5s, timeout: 1m}}\n",
     "rules[0].health.timeout", "1m is longer than the interval 5s", 3, '1m'),
    ("stats-shell-string", f"rules:\n  - {G}\n    stats: {{command: 'battery {{serial}}'}}\n",
     "rules[0].stats.command", "an argv list, not a shell string", 3, "'battery"),
    ("stats-missing-command", f"rules:\n  - {G}\n    stats: {{summary: level}}\n",
     "rules[0].stats.command", "missing", 3, '{summary: level'),
    ("stats-timeout-over-interval", f"rules:\n  - {G}\n    stats: {{command: [a], interval: 5s, timeout: 6s}}\n",
     "rules[0].stats.timeout", "6s is longer than the interval 5s", 3, '6s'),
    ("stats-summary-not-a-name", f"rules:\n  - {G}\n    stats: {{command: [a], summary: 'battery level'}}\n",
     "rules[0].stats.summary", "is not a reading name", 3, "'battery level'"),
    ("stats-unknown-key", f"rules:\n  - {G}\n    stats: {{command: [a], unit: C}}\n",
     "rules[0].stats.unit", 'unknown key "unit"', 3, 'unit'),
    ("attribute-reserved", f"rules:\n  - {G}\n    attributes: {{healthy_count: 3}}\n",
     "rules[0].attributes.healthy_count", "is set by the plugin", 3, 'healthy_count'),
    ("reset-not-bool", f"rules:\n  - {G}\n    reset: 1\n", "rules[0].reset", "expected true or false", 3, '1'),
    ("null-value", f"rules:\n  - {G}\n    env:\n", "rules[0].env", "has no value", 3, 'env:'),
    ("duplicate-key", f"rules:\n  - {G}\n    reset: true\n    reset: false\n",
     "rules[0].reset", "duplicate key (first at line 3)", 4, 'reset: false'),
    ("custom-tag", f"rules:\n  - {G}\n    env: {{A: !python/object:os.system x}}\n",
     "", 'YAML tag "!python/object:os.system" is not accepted', 3, '!python/object:os.system x'),
    ("non-scalar-key", f"rules:\n  - {G}\n    env: {{[a]: x}}\n", "rules[0].env", "keys must be plain text", 3, '[a'),
    ("bad-merge", f"rules:\n  - {G}\n    env: {{<<: [1]}}\n", "rules[0].env", "'<<' must name a mapping", 3, '1'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "field", "message", "line", "token"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_table(text: str, field: str, message: str, line: int, token: str) -> None:
    """Each bad input gives one error naming its field, what is wrong, and where (line, and column of ``token``)."""
    issues = issues_of(text)
    assert len(issues) == 1, [str(i) for i in issues]
    issue = issues[0]
    assert (issue.file, issue.field) == ("rules.yaml", field)
    assert message in issue.message
    assert (issue.line, issue.column) == (line, text.splitlines()[line - 1].index(token) + 1)


def test_errors_str_has_file_line_column_field_message() -> None:
    """str() of an issue reads ``file:line:col: field: message``."""
    text = "rules:\n  - name: x\n    group: {vendor: v, type: t, name: n}\n" * 1
    text += "  - match:\n      vendor_id: zz12\n    group: {vendor: v, type: t, name: m}\n"
    issues = issues_of(text)
    assert [str(i) for i in issues] == ['rules.yaml:5:18: rules[1].match.vendor_id: "zz12" is not a hex USB id']


def test_errors_all_reported_at_once_in_file_order() -> None:
    """Problems in several rules and fields all come back from one parse, sorted by position."""
    text = (
        "rules:\n"
        "  - match: {vendor_id: zz}\n"
        "    group: {vendor: v, type: t, name: n}\n"
        "    permissions: x\n"
        "  - match: {product_id: qq}\n"
        "    group: {vendor: v, type: t}\n"
        "    env: {1A: b}\n"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "r.yaml")
    error = caught.value
    assert [(i.line, i.field) for i in error.issues] == [
        (2, "rules[0].match.vendor_id"),
        (4, "rules[0].permissions"),
        (5, "rules[1].match.product_id"),
        (6, "rules[1].group.name"),
        (7, "rules[1].env.1A"),
    ]
    assert str(error).count("\n") == 4


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("rules: [\n  {a: 1\n", "not valid YAML", 3),
        ("rules:\n  - a: b\n c: d\n", "not valid YAML", 3),
        ("rules: []\n---\nrules: []\n", "not valid YAML: expected a single document", 2),
        ("rules: *nowhere\n", "not valid YAML: found undefined alias", 1),
        ("rules: []\n\x07\n", "not valid YAML", 2),
        ("\t- a\n", "not valid YAML", 1),
        ("", "empty file", None),
        ("# only a comment\n\n", "empty file", None),
        ("[" * 5000, "nested too deeply", None),
    ],
    ids=["unclosed-flow", "bad-indent", "two-documents", "undefined-alias", "control-char", "tab", "empty",
         "comment-only", "deep-nesting"],
)  # fmt: skip
def test_errors_not_yaml_gives_the_yaml_line(text: str, message: str, line: int | None) -> None:
    """Text that is not one YAML document is one error with the YAML parser's line."""
    issues = issues_of(text)
    assert len(issues) == 1
    assert message in issues[0].message
    assert issues[0].line == line


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("rules: !!python/object/apply:os.system []\n", [(1, 8, "!!python/object/apply:os.system")]),
        (f"rules:\n  - !!python/object:x {{{G}}}\n", [(2, 5, "!!python/object:x")]),
        (f"rules:\n  - {G}\n    env: !!map {{A: b}}\n", [(3, 10, "!!map")]),
        (f"rules:\n  - {G}\n    name: !!str x\n", [(3, 11, "!!str")]),
        (f"rules:\n  - {G}\n    name: ! x\n", [(3, 11, "!")]),
        (f"rules:\n  - {G}\n    !!str name: x\n", [(3, 5, "!!str")]),
        ("!!map\nrules: []\n", [(1, 1, "!!map")]),
        (f"rules: !!seq\n  - {G}\n    children: !custom [tty]\n", [(1, 8, "!!seq"), (3, 15, "!custom")]),
        ("x: &a !!str y\nrules: [*a, *a, *a]\n", [(1, 4, "!!str")]),  # the node starts at its anchor
    ],
    ids=["on-rules-list", "on-a-rule", "on-a-mapping", "on-a-scalar", "non-specific", "on-a-key", "on-the-document",
         "every-one", "under-an-anchor"],
)  # fmt: skip
def test_errors_every_yaml_tag_is_refused_with_its_place(text: str, tags: list[tuple[int, int, str]]) -> None:
    """A tag on a scalar, list, mapping, key or the document is an error at its line and column, each one once."""
    issues = issues_of(text)
    assert [(i.line, i.column, i.field) for i in issues] == [(line, column, "") for line, column, _ in tags]
    for issue, (_, _, tag) in zip(issues, tags, strict=True):
        assert issue.message == f'YAML tag "{tag}" is not accepted: rules are plain YAML (remove the tag)'


def test_errors_empty_rules_list_is_valid() -> None:
    """``rules: []`` is a valid file that matches nothing."""
    assert parse_rules("rules: []\n").rules == ()


def test_errors_too_many_rules() -> None:
    """More than 10,000 rules is refused."""
    text = "rules:\n" + "  - ignore: true\n" * 10_001
    issues = issues_of(text)
    assert [i.message for i in issues] == ["10001 rules; the limit is 10000"]


def test_errors_file_over_one_mib() -> None:
    """Text larger than 1 MiB is refused before parsing."""
    text = "rules: []\n" + "#" * (1024 * 1024)
    assert "limit is 1048576" in issues_of(text)[0].message


def test_errors_alias_fanout_stays_cheap() -> None:
    """A YAML alias bomb costs no more than the schema walks (and is then refused by the rule cap)."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]")
    text = "\n".join(lines) + "\nrules: *a11\n"
    issues = issues_of(text)
    assert {i.field for i in issues} >= {"a"}


def test_errors_conflicting_static_groups() -> None:
    """Two rules naming the same fixed group with different attributes is an error at the later rule."""
    text = (
        "rules:\n"
        "  - match: {product_id: 0043}\n"
        "    group: {vendor: arduino, type: board, name: uno}\n"
        "    attributes: {rev: 3}\n"
        "  - match: {product_id: 0001}\n"
        "    group: {vendor: arduino, type: board, name: uno}\n"
        "    attributes: {rev: 2}\n"
    )
    issues = issues_of(text)
    assert len(issues) == 1
    assert (issues[0].line, issues[0].field) == (5, "rules[1].group")
    assert "group arduino/board/uno is also made by rules[0] (rules.yaml:2)" in issues[0].message
    assert '"rev" is 3 there and 2 here' in issues[0].message


@pytest.mark.parametrize(
    ("first", "second", "conflict"),
    [
        ("{rev: 3}", "{rev: 3}", False),
        ("{}", "{}", False),
        ("{rev: 3}", "{}", True),
        ("{}", "{rev: 3}", True),
        ("{rev: 3}", "{rev: 3.0}", True),
        ("{rev: {value: 8, unit: GiB}}", "{rev: {value: 8, unit: MiB}}", True),
        ("{m: '{ID_MODEL}'}", "{m: '{ID_MODEL}'}", False),
        ("{m: '{ID_MODEL}'}", "{m: '{ID_VENDOR}'}", True),
    ],
    ids=["same", "none", "missing-later", "only-later", "int-vs-float", "units", "same-template", "other-template"],
)
def test_errors_group_conflict_compares_attributes(first: str, second: str, conflict: bool) -> None:
    """Rules may share a fixed group only when their attributes are the same."""
    text = (
        f"rules:\n  - match: {{product_id: 1}}\n    group: {{vendor: a, type: b, name: c}}\n    attributes: {first}\n"
        f"  - match: {{product_id: 2}}\n    group: {{vendor: a, type: b, name: c}}\n    attributes: {second}\n"
    )
    if conflict:
        assert issues_of(text)[0].field == "rules[1].group"
    else:
        assert len(parse_rules(text).rules) == 2


def test_errors_templated_groups_are_not_compared() -> None:
    """Groups with placeholders differ per device; they are not checked for conflicts at load time."""
    text = (
        "rules:\n"
        "  - {match: {product_id: 1}, group: {vendor: a, type: b, name: '{serial}'}, attributes: {x: 1}}\n"
        "  - {match: {product_id: 2}, group: {vendor: a, type: b, name: '{serial}'}, attributes: {x: 2}}\n"
    )
    assert len(parse_rules(text).rules) == 2


def test_errors_bytes_that_are_not_utf8() -> None:
    """Bytes that are not UTF-8 are one error pointing at the bad byte."""
    with pytest.raises(RulesError) as caught:
        parse_rules(b"rules: []\n# caf\xe9\n", "r.yaml")
    (issue,) = caught.value.issues
    assert (issue.line, issue.column, issue.message) == (2, 6, "not UTF-8 text (byte 0xe9)")


def test_errors_str_is_capped_but_issues_are_complete() -> None:
    """str() stops after 100 issues; the list keeps all of them."""
    text = "rules:\n" + "  - {match: {vendor_id: zz}, group: {vendor: v, type: t, name: n}}\n" * 150
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    error = caught.value
    assert len(error.issues) == 150
    lines = str(error).splitlines()
    assert len(lines) == 101 and lines[-1] == "... and 50 more"
