"""``validate FILE``: every error with its line and column, then warnings against the attached devices.

Errors come from ``load_rules`` (the loader the plugin uses), warnings from ``RuleSet.warnings_for``
on the same inventory ``list`` shows. A file that cannot be read as rules at all (missing, a
directory, binary, too large) is one line on stderr; a file with rule errors lists them on stdout,
one per line, like a compiler. Exit 1 on any error (and on warnings with ``--strict``). Run as root,
a file that users other than root could change is an error, as the plugin (also root) refuses it,
and so is a health or stats command whose program they could change (found on this shell's PATH),
which the plugin would not run.
"""

from __future__ import annotations

import argparse
import os

from discovery.checks.command_trust import refusal, untrusted_program
from discovery.checks.health import check_environment
from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.loader import load_rules
from discovery.rules.ruleset import RuleSet
from discovery.rules.trust import ROOT_UID, refuse, untrusted_reasons
from plugin.cli.context import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, CliError, Context


def run(ctx: Context, args: argparse.Namespace) -> int:
    path: str = args.file
    refused = _trust_issues(ctx, path)
    try:
        rules = load_rules(path)
    except RulesError as exc:
        return _rejected(ctx, args, path, refused + list(exc.issues))
    refused += _command_issues(ctx, rules)
    if refused:
        return _rejected(ctx, args, path, refused)
    warnings: list[RuleIssue]
    checked: int | None = None
    skipped = ""
    if args.no_devices:
        warnings = rules.static_warnings()
    else:
        try:
            inventory = ctx.inventory(rules, rules.node_subsystems())  # what the plugin would see
        except CliError as exc:
            if exc.code != EXIT_ENVIRONMENT:
                raise
            # the file itself can still be checked where USB cannot be seen (a CI runner)
            warnings, skipped = rules.static_warnings(), str(exc)
        else:
            checked = len(inventory.all_entries)
            warnings = rules.warnings_for([e.device for e in inventory.all_entries], inventory.ids_by_sys_path())
    warnings = _sorted(warnings)
    failed = bool(warnings) and args.strict
    if args.json:
        ctx.print_json({
            "file": path,
            "valid": True,
            "ok": not failed,
            "rules": len(rules.rules),
            "kinds": {kind: [r.kind for r in rules.rules].count(kind) for kind in dict.fromkeys(r.kind for r in rules.rules)},
            "attached_devices": checked,
            "errors": [],
            "warnings": [_issue_json(w) for w in warnings],
        })
        return EXIT_FAILED if failed else EXIT_OK
    if skipped:
        ctx.note(f"warning: {skipped}; checking the file without devices")
    for issue in warnings:
        ctx.print(_issue_line(issue, "warning", ctx))
    ctx.print(_summary(path, rules, warnings, checked, args.strict, ctx))
    return EXIT_FAILED if failed else EXIT_OK


def _trust_issues(ctx: Context, path: str) -> list[RuleIssue]:
    """As root, what makes the plugin (running as root too) refuse the file: its owner or modes.

    Run as another user, the same findings are a note on stderr: the file may be fine where the
    plugin runs (a checkout, CI), but the plugin would refuse it as it stands here.
    """
    reasons = untrusted_reasons(path)
    if not reasons:
        return []
    if os.geteuid() == ROOT_UID:
        return list(refuse(path, reasons).issues)
    for reason in reasons:
        ctx.note(f"note: a plugin running as root would refuse this file: {reason}")
    return []


def _command_issues(ctx: Context, rules: RuleSet) -> list[RuleIssue]:
    """As root, each health or stats command whose program users other than root could change, at its rule.

    The plugin (root) would not run it (``discovery.checks.command_trust``). Run as another user,
    as for the file itself: notes on stderr of what a root plugin would refuse.
    """
    environment = check_environment()
    root = os.geteuid() == ROOT_UID
    issues: list[RuleIssue] = []
    for rule in rules.rules:
        commands = [(rule.line, rule.column, f"{rule.field}.health", "health", rule.health),
                    (rule.line, rule.column, f"{rule.field}.stats", "stats", rule.stats)]
        commands += [(d.line, d.column, f"{d.field}.health", "health", d.health) for d in rule.devices]
        for line, column, field, kind, spec in commands:
            if spec is None:
                continue
            reasons = untrusted_program(spec.command[0].literal_text, environment, f"{kind} command", euid=ROOT_UID)
            what = "health check" if kind == "health" else "stats command"
            for reason in reasons:
                if root:
                    issues.append(RuleIssue(rule.source, line, column, f"{field}.command", refusal(what, [reason])))
                else:
                    ctx.note(f"note: a plugin running as root would not run {field}.command: {reason}")
    return issues


def _rejected(ctx: Context, args: argparse.Namespace, path: str, issues: list[RuleIssue]) -> int:
    if args.json:
        ctx.print_json({
            "file": path,
            "valid": False,
            "ok": False,
            "rules": None,
            "attached_devices": None,
            "errors": [_issue_json(i) for i in issues],
            "warnings": [],
        })
        return EXIT_FAILED
    if len(issues) == 1 and not issues[0].field and _unreadable(issues[0]):
        raise CliError(str(issues[0]))
    for issue in issues:
        ctx.print(_issue_line(issue, "error", ctx))
    count = len(issues)
    ctx.print(ctx.style.paint(f"{path}: invalid, {count} error{'s' if count != 1 else ''}", "red", "bold"))
    return EXIT_FAILED


def _unreadable(issue: RuleIssue) -> bool:
    """The file cannot be read as text at all: nothing to point at inside it."""
    return issue.line is None or issue.message.startswith("not UTF-8")


def _sorted(issues: list[RuleIssue]) -> list[RuleIssue]:
    return sorted(issues, key=lambda i: (i.line if i.line is not None else 0, i.column or 0))


def _issue_line(issue: RuleIssue, severity: str, ctx: Context) -> str:
    where = issue.file
    if issue.line is not None:
        where += f":{issue.line}"
        if issue.column is not None:
            where += f":{issue.column}"
    label = ctx.style.paint(severity, "red" if severity == "error" else "yellow", "bold")
    field = f" {issue.field}:" if issue.field else ""
    return f"{where}: {label}:{field} {issue.message}"


def _issue_json(issue: RuleIssue) -> dict[str, object]:
    return {"file": issue.file, "line": issue.line, "column": issue.column, "field": issue.field or None,
            "message": issue.message}


def _summary(path: str, rules: RuleSet, warnings: list[RuleIssue], checked: int | None, strict: bool,
             ctx: Context) -> str:
    count = len(rules.rules)
    text = f"{path}: valid, {count} rule{'s' if count != 1 else ''}"
    kinds = [rule.kind for rule in rules.rules]
    if any(kind != "usb" for kind in kinds):  # say which kinds only once a file has more than USB rules
        text += " (" + ", ".join(f"{kinds.count(kind)} kind: {kind}" for kind in dict.fromkeys(kinds)) + ")"
    declared = sum(len(rule.devices) for rule in rules.rules)
    if declared:
        text += f" declaring {declared} device{'s' if declared != 1 else ''}"
    if warnings:
        text += f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        if strict:
            text += " (--strict: warnings fail)"
    text += f" (checked against {checked} attached device{'s' if checked != 1 else ''})" if checked is not None \
        else " (not checked against devices)"
    return ctx.style.paint(text, "red" if warnings and strict else ("yellow" if warnings else "green"))
