"""CLI: declared devices in ``list --all`` (health checks run once), ``explain <declared ID>`` and ``validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import run_cli, world  # noqa: F401  (the fixture)
from discovery.fake.testbed import Testbed

pytestmark = pytest.mark.udev


def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"""\
rules:
  - name: cars
    kind: declared
    group: {{vendor: doyota, type: car, name: mius}}
    env: {{CAR_ADDRESS: "{{address}}"}}
    health: {{command: [/usr/bin/test, -e, "{tmp_path}/up-{{id}}"], interval: 1s, timeout: 1s}}
    devices:
      - id: mius-1
        values: {{address: 10.0.1.5}}
      - id: mius-2
        values: {{address: 10.0.1.6}}
        nodes: [/dev/null]
""")
    (tmp_path / "up-mius-2").touch()
    return path


def test_list_all_shows_declared_devices_with_their_checked_health(world: Testbed, tmp_path: Path) -> None:  # noqa: F811
    """Without --all declared devices stay out; with it each shows, healthy only when its check passes."""
    path = str(rules(tmp_path))
    plain = run_cli("list", "--rules", path, "--json")
    assert "declared" not in json.loads(plain.out)
    run = run_cli("list", "--all", "--rules", path, "--json")
    declared = {d["id"]: d for d in json.loads(run.out)["declared"]}
    assert (declared["mius-1"]["match"]["healthy"], declared["mius-2"]["match"]["healthy"]) == (False, True)
    assert declared["mius-2"]["nodes"] == ["/dev/null"] and declared["mius-1"]["values"] == {"address": "10.0.1.5"}
    text = run_cli("list", "--all", "--rules", path, "--wide").out
    assert "DECLARED DEVICES" in text and "2 declared devices, 1 healthy" in text


def test_explain_a_declared_id_shows_its_rule_check_and_reservation(world: Testbed, tmp_path: Path) -> None:  # noqa: F811
    """explain mius-2: the winning declared rule, its check, and the env and node a task would get."""
    run = run_cli("explain", "mius-2", "--rules", str(rules(tmp_path)))
    assert run.code == 0, run.err
    assert 'WINNER -> doyota/car/mius' in run.out
    assert "CAR_ADDRESS=10.0.1.6" in run.out and "DEVICE_0_NODE=/dev/null" in run.out
    assert "USB_DEVICE" not in run.out


def test_validate_reports_a_declared_rule_error_with_its_line(tmp_path: Path, testbed: Testbed) -> None:
    """A declared rule with match: is refused at its line; a good one is counted."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - kind: declared\n    match: {vendor_id: '0403'}\n"
                   "    group: {vendor: v, type: t, name: n}\n    devices: [{id: a}]\n")
    run = run_cli("validate", str(bad), "--no-devices")
    assert run.code == 1 and f"{bad}:3:5: error: rules[0].match: a declared rule matches nothing" in run.out
    good = run_cli("validate", str(rules(tmp_path)), "--no-devices")
    assert good.code == 0 and "declaring 2 devices" in good.out
