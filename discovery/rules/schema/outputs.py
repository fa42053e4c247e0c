"""What a rule makes besides attributes: its group name, permissions, env, mounts, health check and stats command."""

from __future__ import annotations

from discovery.durations import format_duration
from discovery.rules.model import DEFAULT_INTERVAL, DEFAULT_TIMEOUT, GroupSpec, HealthSpec, MountSpec, StatsSpec
from discovery.rules.schema.keys import GROUP_KEYS, HEALTH_KEYS, MOUNT_KEYS, STATS_KEYS
from discovery.rules.schema.reader import Reader, read_map
from discovery.rules.schema.values import (
    ENV_NAME,
    GROUP_FORBIDDEN,
    MIN_INTERVAL,
    READING_NAME,
    RESERVED_ENV,
    node_path_problem,
    path_problem,
)
from discovery.rules.templates import Placeholder, Template
from discovery.rules.tree import Src, quote


def read_group(r: Reader, src: Src, field: str) -> GroupSpec | None:
    """``group: {vendor, type, name}``: three templates that must render to names Nomad accepts."""
    keys = read_map(src, field, r.issues, GROUP_KEYS)
    if keys is None:
        return None
    parts: dict[str, Template] = {}
    for key in GROUP_KEYS:
        if key not in keys:
            r.error(src, f"{field}.{key}", "missing (a group needs vendor, type and name)")
            continue
        value = keys[key][1]
        template = r.template(value, f"{field}.{key}", non_empty=True)
        if template is None:
            continue
        bad = GROUP_FORBIDDEN.search(template.literal_text)
        if bad:
            r.error(value, f"{field}.{key}", f"{quote(template.text)} contains {bad.group()!r}: "
                    "group names cannot hold '/', whitespace or control characters")  # fmt: skip
            continue
        parts[key] = template
    if len(parts) != len(GROUP_KEYS):
        return None
    return GroupSpec(parts["vendor"], parts["type"], parts["name"])


def read_permissions(r: Reader, src: Src, field: str) -> str | None:
    """``permissions:``, normalised to the order ``rwm``."""
    text = r.text(src, field)
    if text is None:
        return None
    if not text or set(text) - set("rwm") or len(set(text)) != len(text):
        r.error(src, field, f"{quote(text)}: permissions are a non-empty subset of 'rwm', e.g. 'rw'")
        return None
    return "".join(char for char in "rwm" if char in text)


def read_env(r: Reader, src: Src, field: str) -> tuple[tuple[str, Template], ...]:
    """``env:``: variable names a task may be given, each with its template."""
    keys = read_map(src, field, r.issues, None)
    if keys is None:
        return ()
    pairs, _ = r.named(keys, field, _env_name_problem, r.template)
    return tuple(pairs)


def _env_name_problem(name: str) -> str | None:
    if not ENV_NAME.match(name):
        return f"{quote(name)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
    if name in RESERVED_ENV:
        return f"{name} is reserved: docker would switch to the NVIDIA runtime"
    if name.startswith("NOMAD_"):
        return "NOMAD_ names belong to Nomad"
    return None


def read_mounts(r: Reader, src: Src, field: str) -> tuple[MountSpec, ...]:
    """``mounts:``: host paths under /dev or /sys only, checked again when rendered."""
    if src.kind != "seq":
        r.error(src, field, f"expected a list of mounts, got {src.kind_name}")
        return ()
    out = []
    for i, element in enumerate(src.elements()):
        mount = _read_mount(r, element, f"{field}[{i}]")
        if mount is not None:
            out.append(mount)
    return tuple(out)


def _read_mount(r: Reader, src: Src, field: str) -> MountSpec | None:
    keys = read_map(src, field, r.issues, MOUNT_KEYS)
    if keys is None:
        return None
    if "host_path" not in keys:
        r.error(src, f"{field}.host_path", "missing")
        return None
    host = _read_path(r, keys["host_path"][1], f"{field}.host_path", host=True)
    task = host
    if "task_path" in keys:
        task = _read_path(r, keys["task_path"][1], f"{field}.task_path", host=False)
    read_only = r.boolean(keys["read_only"][1] if "read_only" in keys else None, f"{field}.read_only", True)
    if host is None or task is None:
        return None
    return MountSpec(host, task, read_only)


def read_nodes(r: Reader, src: Src, field: str) -> tuple[Template, ...]:
    """``nodes:``: further device nodes handed over with each device, paths under /dev (checked again when rendered)."""
    if src.kind != "seq":
        r.error(src, field, f"expected a list of device node paths, got {src.kind_name}")
        return ()
    templates = (read_node(r, element, f"{field}[{i}]") for i, element in enumerate(src.elements()))
    return tuple(template for template in templates if template is not None)


def read_node(r: Reader, src: Src, field: str) -> Template | None:
    """One device node path under /dev (a template), or None with the error added."""
    template = r.template(src, field, non_empty=True)
    if template is None:
        return None
    # As for mounts: every placeholder probed as a plain name, so it cannot choose the root.
    probe = "".join("x" if isinstance(part, Placeholder) else part for part in template.parts)
    problem = node_path_problem(probe, shown=template.text)
    if problem is not None:
        r.error(src, field, problem)
        return None
    return template


def _read_path(r: Reader, src: Src, field: str, host: bool) -> Template | None:
    template = r.template(src, field, non_empty=True)
    if template is None:
        return None
    # Check the shape with every placeholder as a plain name; the rendered path is checked again.
    probe = "".join("x" if isinstance(part, Placeholder) else part for part in template.parts)
    # A placeholder cannot choose the root: "x" never makes "/dev/" or "/sys/" out of other text.
    problem = path_problem(probe, host, shown=template.text)
    if problem is not None:
        r.error(src, field, problem)
        return None
    return template


def read_health(r: Reader, src: Src, field: str) -> HealthSpec | None:
    """``health:``: an argv list (never a shell string), its interval and timeout."""
    keys = read_map(src, field, r.issues, HEALTH_KEYS)
    if keys is None:
        return None
    command = _read_command(r, keys, src, field, example='["/usr/bin/adb", "get-state"]')
    timing = _read_timing(r, keys, src, field)
    if command is None or timing is None:
        return None
    return HealthSpec(command, *timing)


def read_stats(r: Reader, src: Src, field: str) -> StatsSpec | None:
    """``stats:``: like ``health``, an argv list with interval and timeout, plus the reading named the summary."""
    keys = read_map(src, field, r.issues, STATS_KEYS)
    if keys is None:
        return None
    command = _read_command(r, keys, src, field, example='["/usr/local/bin/battery", "{serial}"]')
    timing = _read_timing(r, keys, src, field)
    summary = None
    if "summary" in keys:
        summary_src = keys["summary"][1]
        summary = r.text(summary_src, f"{field}.summary", non_empty=True)
        if summary is not None and not READING_NAME.match(summary):
            r.error(summary_src, f"{field}.summary", f"{quote(summary)} is not a reading name "
                    "(letters, digits, '_', '.', '-'; at most 64)")  # fmt: skip
            return None
        if summary is None:
            return None
    if command is None or timing is None:
        return None
    return StatsSpec(command, *timing, summary=summary)


def _read_command(
    r: Reader, keys: dict[str, tuple[Src, Src]], src: Src, field: str, example: str
) -> tuple[Template, ...] | None:
    """``command:``: a non-empty argv list of templates whose program is written out."""
    if "command" not in keys:
        r.error(src, f"{field}.command", "missing")
        return None
    command_src = keys["command"][1]
    sub = f"{field}.command"
    if command_src.is_scalar:
        r.error(command_src, sub, f"an argv list, not a shell string: write {example}")
        return None
    if command_src.kind != "seq" or not command_src.elements():
        r.error(command_src, sub, "expected a non-empty argv list")
        return None
    command: list[Template] = []
    ok = True
    for i, element in enumerate(command_src.elements()):
        template = r.template(element, f"{sub}[{i}]", non_empty=(i == 0))
        if template is None:
            ok = False
        elif i == 0 and not template.is_static:
            r.error(element, f"{sub}[0]", "the program must be written out, not a placeholder")
            ok = False
        else:
            command.append(template)
    return tuple(command) if ok else None


def _read_timing(r: Reader, keys: dict[str, tuple[Src, Src]], src: Src, field: str) -> tuple[float, float] | None:
    """``interval`` (at least 1s) and ``timeout`` (more than 0, at most the interval), in seconds."""
    interval_src = keys["interval"][1] if "interval" in keys else None
    timeout_src = keys["timeout"][1] if "timeout" in keys else None
    interval = r.duration(interval_src, f"{field}.interval", DEFAULT_INTERVAL)
    timeout = r.duration(timeout_src, f"{field}.timeout", DEFAULT_TIMEOUT)
    ok = True
    if interval is not None and interval < MIN_INTERVAL:
        r.error(interval_src, f"{field}.interval", f"must be at least {format_duration(MIN_INTERVAL)}")
        interval = None
    if timeout is not None and timeout <= 0:
        r.error(timeout_src, f"{field}.timeout", "must be more than 0s")
        ok = False
    elif timeout is not None and interval is not None and timeout > interval:
        longer = f"{format_duration(timeout)} is longer than the interval {format_duration(interval)}"
        r.error(timeout_src or src, f"{field}.timeout", longer)
        ok = False
    if not ok or interval is None or timeout is None:
        return None
    return interval, timeout
