"""The house stays as drawn in STYLE.md: which package may import what, checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", package_files("discovery"), ids=lambda p: p.name)
def test_discovery_imports_no_nomad_side(path: Path) -> None:
    """discovery/ never imports grpc, msgpack, the generated protos or the plugin package."""
    forbidden = {"grpc", "grpc_health", "msgpack", "proto", "plugin", "google"}
    assert not top_level(imported_modules(path)) & forbidden


@pytest.mark.parametrize(
    ("library", "owner"),
    [("pyudev", "discovery/sources/udev.py"), ("usb", "discovery/sources/usbfs.py")],
)
def test_hardware_library_has_one_adapter(library: str, owner: str) -> None:
    """pyudev is imported only by the udev adapter, pyusb only by the usbfs fallback."""
    users = {
        str(p.relative_to(ROOT))
        for pkg in ("discovery", "plugin", "proto")
        for p in package_files(pkg)
        if library in top_level(imported_modules(p))
    }
    assert users <= {owner}


def test_grpc_stays_in_the_wire_modules() -> None:
    """In plugin/, only the server, the servicers and the host (the Nomad-client stand-in) import grpc."""
    allowed = {"server.py", "services.py", "host.py"}
    users = {p.name for p in package_files("plugin") if top_level(imported_modules(p)) & {"grpc", "grpc_health"}}
    assert users <= allowed


def test_cli_never_starts_grpc() -> None:
    """The CLI is a layer over discovery: it imports neither grpc nor the servicers."""
    for cli in sorted((ROOT / "plugin" / "cli").glob("*.py")):
        names = imported_modules(cli)
        assert not top_level(names) & {"grpc", "grpc_health"}, cli.name
        assert "plugin.services" not in names and "plugin.server" not in names, cli.name
