"""What every CLI subcommand shares: streams and styling, exit codes, one-line errors, rules and devices.

Subcommands raise :class:`CliError` for anything a person did wrong or the machine lacks; the top of
``plugin.cli.main`` turns it into ``nomad-device-usb: error: ...`` and its exit code. Rules are read with
``discovery.rules.loader.load_rules`` and devices named and matched through ``discovery.state.inventory``: the
CLI holds no second copy of that logic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from discovery.rules.errors import RulesError
from plugin.cli.errors import EXIT_BROKEN_PIPE as EXIT_BROKEN_PIPE  # re-exported: subcommands import them from here
from plugin.cli.errors import EXIT_CODES_HELP as EXIT_CODES_HELP
from plugin.cli.errors import EXIT_ENVIRONMENT as EXIT_ENVIRONMENT
from plugin.cli.errors import EXIT_FAILED as EXIT_FAILED
from plugin.cli.errors import EXIT_OK as EXIT_OK
from plugin.cli.errors import EXIT_USAGE as EXIT_USAGE
from plugin.cli.errors import PROG as PROG
from plugin.cli.errors import RULES_ENV as RULES_ENV
from plugin.cli.errors import CliError as CliError
from plugin.cli.table import Style

if TYPE_CHECKING:
    from discovery.state.idmemory import IdMemory
    from discovery.state.inventory import Entry, Inventory
    from discovery.rules.ruleset import RuleSet
    from discovery.sources.base import DeviceSource, NodeSubsystems
    from plugin.cli.holders import Holders

@dataclass
class Context:
    """Streams, presentation settings and the device source of one CLI run."""

    out: TextIO
    err: TextIO
    environ: Mapping[str, str]
    style: Style
    width: int | None
    open_source: Callable[[], DeviceSource]

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def note(self, line: str) -> None:
        """A remark for the person, on stderr, so stdout stays the command's output."""
        self.err.write(f"{PROG}: {line}\n")

    def print_json(self, value: object) -> None:
        json.dump(value, self.out, indent=2, sort_keys=False, ensure_ascii=False)
        self.out.write("\n")

    # -- rules ----------------------------------------------------------------------------
    def rules_path(self, given: str | None) -> str | None:
        """The rules file to use: ``--rules``, else $NOMAD_DEVICE_USB_RULES, else none."""
        if given:
            return given
        return self.environ.get(RULES_ENV) or None

    def load_rules(self, path: str | None) -> RuleSet:
        """The rules of ``path`` (an empty set without one); a rejected file is a one-line CliError."""
        from discovery.rules.loader import load_rules  # here, not at import: --help needs no rules engine
        from discovery.rules.ruleset import RuleSet

        if path is None:
            return RuleSet()
        try:
            return load_rules(path)
        except RulesError as exc:
            raise CliError(rules_error_line(path, exc)) from exc

    # -- devices --------------------------------------------------------------------------
    def inventory(
        self, rules: RuleSet, node_subsystems: NodeSubsystems = None, check_declared: bool = False
    ) -> Inventory:
        """Every attached device, named and matched as the plugin does; CliError(3) when USB is out of reach.

        ``node_subsystems``: which non-USB devices with a node to list too (``"all"`` for ``list --all``).
        ``check_declared`` runs the declared devices' health checks once, for their health.
        """
        from discovery.state.inventory import DeviceAccessError, enumerate_devices, take_inventory

        source = self.open_source()
        try:
            source.set_node_subsystems(node_subsystems)
            devices = enumerate_devices(source)
        except DeviceAccessError as exc:
            raise CliError(str(exc), EXIT_ENVIRONMENT) from exc
        finally:
            source.close()
        return take_inventory(rules, devices, source=source.name, check_declared=check_declared,
                              memory=self.id_memory())

    def id_memory(self) -> IdMemory:
        """The IDs the plugin saved (its state_dir: ``$NOMAD_DEVICE_USB_STATE_DIR``, else the default), read only."""
        from discovery.state.idstore import IdStore, state_dir_from

        return IdStore(state_dir_from(None, self.environ)).peek()

    def holders(self) -> Holders:
        """Which allocations hold which devices, asked of the Nomad agent the environment names (never raises)."""
        from plugin.cli.holders import find_holders  # only now: urllib and ssl are not needed for --help

        return find_holders(self.environ)

    def resolve(self, inventory: Inventory, query: str) -> Entry:
        """The one attached device ``query`` names; CliError listing candidates when it names none or several."""
        from discovery.state.inventory import find_devices, malformed_vid_pid

        if malformed_vid_pid(query):
            raise CliError(f"{query!r} is not a VID:PID: write two hex numbers of up to 4 digits each, "
                           "as lsusb prints them (e.g. 0403:6001)")
        found = find_devices(inventory, query)
        if len(found) == 1:
            return found[0]
        if not found:
            count = f"{len(inventory.entries)} attached"
            if inventory.others:  # the devices outside USB were listed too (explain, suggest)
                count = f"{len(inventory.entries)} USB and {len(inventory.others)} other devices attached"
            raise CliError(
                f"no attached device matches {query!r} ({count}; "
                f"'{PROG} list --all' shows their IDs, VID:PIDs and ports)"
            )
        names = ", ".join(f"{e.id} (port {e.device.sys_name})" for e in found)
        raise CliError(f"{query!r} matches {len(found)} attached devices: {names}; name one by its ID or port")


def rules_error_line(path: str, exc: RulesError) -> str:
    """A rejected rules file in one line: the problem, or the first of several and how to see them all."""
    issues = exc.issues
    if not issues:
        return f"{path}: rejected"
    if len(issues) == 1:
        return str(issues[0])
    return f"{path} has {len(issues)} errors, the first: {issues[0]} (all of them: {PROG} validate {quote_arg(path)})"


def quote_arg(text: str) -> str:
    """``text`` as one shell word, for commands we suggest to the reader."""
    safe = all(c.isalnum() or c in "-_./:=+@%," for c in text)
    return text if safe and text else "'" + text.replace("'", "'\"'\"'") + "'"
