"""One module per measurement; each has NAME, TITLE and run(plan) -> Section."""

from __future__ import annotations

from benchmarks.sections import enumeration, hotplug, idle, readings, reload, reserve, startup, storm

ALL = (startup, enumeration, hotplug, storm, reserve, idle, reload, readings)
BY_NAME = {module.NAME: module for module in ALL}
