"""Typed errors of the rules engine: a rejected rules file, with every problem and where it is."""

from __future__ import annotations

from dataclasses import dataclass

# str() of a RulesError stops after this many lines; the full list stays in ``issues``.
MAX_PRINTED_ISSUES = 100


@dataclass(frozen=True)
class RuleIssue:
    """One problem (or warning) in a rules source, with its place.

    ``line`` and ``column`` count from 1 and are None when the rules came from plain data
    (the Nomad plugin config) rather than a YAML file. ``field`` is a path such as
    ``rules[1].match.vendor_id``; empty for problems with the file as a whole.
    """

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class RulesError(Exception):
    """A rules source was rejected; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues: tuple[RuleIssue, ...] = tuple(issues)
        super().__init__(self.issues)

    def __str__(self) -> str:
        lines = [str(issue) for issue in self.issues[:MAX_PRINTED_ISSUES]]
        hidden = len(self.issues) - MAX_PRINTED_ISSUES
        if hidden > 0:
            lines.append(f"... and {hidden} more")
        return "\n".join(lines)
