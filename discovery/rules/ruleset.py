"""The rule set: an ordered list of rules, of which the first that matches a device decides.

``match`` picks the first rule whose conditions hold and whose group name renders; an ``ignore``
rule that wins means "excluded". Matching, explaining and the warnings of ``validate`` each live in
their own module (``matching``, ``explain``, ``warnings``); this class is their one entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from discovery.model import Device
from discovery.rules import warnings
from discovery.rules.errors import RuleIssue, RulesError
from discovery.rules.explain import RuleVerdict, verdicts_for
from discovery.rules.matching import Match, first_match
from discovery.rules.model import Rule
from discovery.rules.schema.rule import rule_conflicts
from discovery.rules.udev_conditions import NodeSubsystemCondition


@dataclass(frozen=True)
class RuleSet:
    """An ordered list of rules; the first that matches a device decides."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_parts(cls, *parts: RuleSet | Iterable[Rule] | None) -> RuleSet:
        """Rules of every part, in order (None parts skipped); RulesError if their groups conflict."""
        rules: list[Rule] = []
        for part in parts:
            if part is None:
                continue
            rules.extend(part.rules if isinstance(part, RuleSet) else part)
        conflicts = rule_conflicts(rules)
        if conflicts:
            raise RulesError(conflicts)
        return cls(tuple(rules))

    def combined(self, other: RuleSet | Iterable[Rule]) -> RuleSet:
        """This set's rules, then ``other``'s (so this set takes precedence); RulesError on conflicts."""
        return RuleSet.from_parts(self, other)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def node_subsystems(self) -> frozenset[str] | Literal["all"] | None:
        """Which devices outside USB these rules can take, so a source lists those and no others.

        None without a ``kind: udev`` rule; the subsystems those rules name when each names some
        (``match: {subsystem: ...}``); else ``"all"``, every device with a node (the sources'
        ``ALL_NODE_SUBSYSTEMS``). Listing only what a rule can take keeps USB-only hosts as cheap as before.
        """
        names: set[str] = set()
        for rule in self.rules:
            if rule.kind != "udev" or rule.ignore:
                continue
            named = [c.names for c in rule.conditions if isinstance(c, NodeSubsystemCondition)]
            if not named:
                return "all"
            names.update(*named)
        return frozenset(names) if names else None

    def match(self, device: Device, device_id: str | None = None) -> Match | None:
        """The device's Match under the first rule that takes it; None if none does or it is ignored."""
        return first_match(self.rules, device, device_id)

    def explain(self, device: Device, device_id: str | None = None) -> list[RuleVerdict]:
        """How every rule judges ``device``, in order: each condition, and who won."""
        return verdicts_for(self.rules, device, device_id)

    def static_warnings(self) -> list[RuleIssue]:
        """Problems visible without devices: rules that can never win, likely placeholder typos."""
        return warnings.static_warnings(self.rules)

    def warnings_for(
        self, devices: Iterable[Device], device_ids: Mapping[str, str] | None = None
    ) -> list[RuleIssue]:
        """Warnings for ``validate``: static ones, then against the attached ``devices``."""
        return warnings.warnings_for(self.rules, devices, device_ids)
