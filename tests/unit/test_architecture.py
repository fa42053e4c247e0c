"""The house stays as drawn in STYLE.md and the README: which module may import what, checked on the source with ast."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("discovery", "plugin", "proto")
GRPC = {"grpc", "grpc_health"}
FAKE_WORLD = "discovery.fake"
# What the plugin and the CLI run. The demo builds a fake world on purpose; the go-plugin host is
# the Nomad side of the wire (tests, demo, benchmarks, VM tier) and is checked on its own below.
NOT_PRODUCTION = {"discovery/fake", "plugin/demo.py"}


# A string that names one of our modules ("plugin.config", "discovery.fake.testbed"): code that
# imports by name (plugin_mode's first-use list, the CLI's subcommands and demo) holds such strings.
OUR_MODULE_NAME = re.compile(r"(discovery|plugin|proto)(\.[A-Za-z_]\w*)+")
IMPORT_CALLS = {"import_module", "__import__"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count too).

    Imports by name count as well: the constant given to ``importlib.import_module`` or ``__import__``,
    and any string constant that is a dotted name inside our own packages (kept in a tuple, say, and
    imported later), so a module named only in a string is checked like one in an import statement.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # ``from pkg import module``
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in IMPORT_CALLS and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and OUR_MODULE_NAME.fullmatch(node.value):
            names.add(node.value)
    return names


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def under(names: set[str], prefix: str) -> set[str]:
    """The names that are ``prefix`` or a module inside it."""
    return {n for n in names if n == prefix or n.startswith(prefix + ".")}


def production_files() -> list[Path]:
    return [
        p for pkg in ("discovery", "plugin") for p in package_files(pkg)
        if not any(rel(p) == x or rel(p).startswith(x + "/") for x in NOT_PRODUCTION)
    ]


@pytest.mark.parametrize("path", [p for pkg in PACKAGES for p in package_files(pkg)], ids=rel)
def test_imports_are_absolute(path: Path) -> None:
    """No relative imports, so every check here sees every import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    assert not [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]


@pytest.mark.parametrize("path", package_files("discovery"), ids=rel)
def test_discovery_imports_no_nomad_side(path: Path) -> None:
    """discovery/ never imports grpc, msgpack, the generated protos or the plugin package."""
    forbidden = {"grpc", "grpc_health", "msgpack", "proto", "plugin", "google"}
    assert not top_level(imported_modules(path)) & forbidden


@pytest.mark.parametrize("path", production_files(), ids=rel)
def test_production_code_never_imports_the_fake_world(path: Path) -> None:
    """The plugin and the CLI never import discovery.fake (testbed, fake devices, recordings, memory source)."""
    assert not under(imported_modules(path), FAKE_WORLD)


def test_demo_and_host_stay_outside_the_serving_path() -> None:
    """Only the CLI's demo hand-over (by module name, at run time) reaches the demo; nothing imports the host."""
    demo_users = {rel(p) for p in production_files() if under(imported_modules(p), "plugin.demo")}
    host_users = {rel(p) for p in production_files() if under(imported_modules(p), "plugin.host")}
    assert demo_users == {"plugin/cli/main.py"}
    assert not host_users


@pytest.mark.parametrize(
    ("library", "owner"),
    [("pyudev", "discovery/sources/udev.py"), ("usb", "discovery/sources/usbfs.py")],
)
def test_hardware_library_has_one_adapter(library: str, owner: str) -> None:
    """pyudev is imported only by the udev source, pyusb only by the usbfs source."""
    users = {rel(p) for pkg in PACKAGES for p in package_files(pkg) if library in top_level(imported_modules(p))}
    assert users <= {owner}


def discovery_modules(path: Path) -> set[str]:
    """The discovery modules or subpackages a file imports: ``model``, ``rules``, ``sources``, ..."""
    return {n.split(".")[1] for n in imported_modules(path) if n.startswith("discovery.")}


@pytest.mark.parametrize("path", package_files("discovery/sources"), ids=rel)
def test_sources_know_only_the_device_model(path: Path) -> None:
    """A device source turns a library's view into UsbDevice records; it knows nothing of rules or the loop."""
    assert discovery_modules(path) <= {"model", "sources"}


@pytest.mark.parametrize("path", package_files("discovery/rules"), ids=rel)
def test_rules_engine_stands_alone(path: Path) -> None:
    """The rules engine reads the device model and durations only: no sources, no table, no loop."""
    assert discovery_modules(path) <= {"model", "durations", "rules"}


@pytest.mark.parametrize("path", package_files("discovery/checks"), ids=rel)
def test_checks_know_nothing_of_the_table_or_the_loop(path: Path) -> None:
    """Health checks and stats commands run one argv for one device: no sources, no table, no loop."""
    assert discovery_modules(path) <= {"checks", "rules", "model", "durations"}


@pytest.mark.parametrize("path", package_files("discovery/state"), ids=rel)
def test_device_table_never_imports_the_loop(path: Path) -> None:
    """The table and its snapshots are filled by whoever runs them (the loop, the CLI's inventory), never the reverse."""
    assert "loop" not in discovery_modules(path)


def test_only_the_plugin_runs_the_event_loop() -> None:
    """The loop's thread (discovery.loop.watcher) is started by the plugin's runtime and services, not by the CLI."""
    users = {rel(p) for p in production_files() if under(imported_modules(p), "discovery.loop.watcher")}
    assert users == {"plugin/runtime.py", "plugin/services.py", "plugin/plugin_mode.py"}


def test_only_plugin_imports_grpc() -> None:
    """grpc is imported in plugin/ (by the server, the servicers and the host) and by generated proto code only."""
    users = {rel(p) for pkg in PACKAGES for p in package_files(pkg) if top_level(imported_modules(p)) & GRPC}
    generated = {u for u in users if u.startswith("proto/") and u.endswith("_pb2_grpc.py")}
    assert users - generated == {"plugin/server.py", "plugin/services.py", "plugin/host.py"}


@pytest.mark.parametrize(
    "path", ["plugin/fingerprint.py", "plugin/stats.py", "discovery/reservation.py", "plugin/handshake.py"]
)
def test_builders_are_pure(path: str) -> None:
    """The builders take their clock and data as arguments: no grpc, no threads, no reading the time."""
    names = top_level(imported_modules(ROOT / path))
    assert not names & (GRPC | {"time", "threading", "datetime"})


def test_cli_never_starts_grpc() -> None:
    """The CLI is a layer over discovery: it imports neither grpc nor the server, the servicers or the host."""
    for cli in sorted((ROOT / "plugin" / "cli").glob("*.py")):
        names = imported_modules(cli)
        assert not top_level(names) & GRPC, cli.name
        assert not names & {"plugin.services", "plugin.server", "plugin.host"}, cli.name
