"""Results: table rows with our figure, the baselines' and the ratios; the printed table and the JSON."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass, field
from typing import Any

SUBJECTS = ("ours", "poller", "rescan")


@dataclass(frozen=True)
class Row:
    """One line of the table. ``None`` means the figure does not apply to that subject."""

    label: str
    unit: str
    ours: float | None
    poller: float | None = None
    rescan: float | None = None
    target: str = ""
    met: bool | None = None  # whether ours meets the target; None when there is no target
    lower_bound: tuple[str, ...] = ()  # subjects whose figure was cut off: the real one is at least this

    def ratio(self, other: float | None) -> float | None:
        if self.ours is None or other is None or other <= 0:
            return None
        return round(self.ours / other, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "unit": self.unit, "ours": self.ours, "poller": self.poller,
            "rescan": self.rescan, "ours_to_poller": self.ratio(self.poller),
            "ours_to_rescan": self.ratio(self.rescan), "target": self.target, "met": self.met,
            "lower_bound": list(self.lower_bound),
        }


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "seconds": round(self.seconds, 1), "rows": [r.to_json() for r in self.rows],
                "data": self.data, "notes": self.notes}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        model = platform.processor()
    load1, load5, _ = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1m": round(load1, 2),
        "load_average_5m": round(load5, 2),
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "count":
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def _cells(row: Row) -> list[str]:
    def value(name: str, figure: float | None) -> str:
        return (">= " if name in row.lower_bound and figure is not None else "") + _fmt(figure, row.unit)

    def ratio(name: str, figure: float | None) -> str:
        # ours divided by "at least X" is at most the printed ratio
        return ("<= " if name in row.lower_bound and figure is not None else "") + _ratio(figure)

    met = "" if row.met is None else ("yes" if row.met else "**no**")
    return [row.label, row.unit, value("ours", row.ours), value("poller", row.poller), value("rescan", row.rescan),
            ratio("poller", row.ratio(row.poller)), ratio("rescan", row.ratio(row.rescan)), row.target, met]


def render_table(sections: list[Section], meta: dict[str, Any]) -> str:
    """A Markdown table (readable as plain text too) with one row per figure."""
    poll = f"poll {meta['poll_interval_s']:g} s"
    header = ["measure", "unit", "ours", poll, "rescan/event", "ours/poll", "ours/rescan", "target", "met"]
    lines = [
        f"nomad-device-usb benchmarks, {meta['date']}, {meta['cpu']} ({meta['cores']} cores), "
        f"Linux {meta['kernel']}, Python {meta['python']}, load {meta['load_average_1m']}"
        + (" [quick]" if meta.get("quick") else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(header)) + "|",
    ]
    for section in sections:
        lines.append(f"| **{section.title}** |" + " |" * (len(header) - 1))
        lines += ["| " + " | ".join(_cells(row)) + " |" for row in section.rows]
    notes = [f"- {s.name}: {n}" for s in sections for n in s.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
