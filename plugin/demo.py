"""``nomad-device-usb demo``: the real plugin in a fake udev world, driven the way a Nomad client drives it.

No hardware is needed. The demo builds a umockdev world, starts the real executable with go-plugin's
environment, does the handshake, PluginInfo, ConfigSchema and SetConfig, keeps the Fingerprint
stream open while it plugs in a phone and two boards and unplugs one, plugs a Raspberry Pi HAT whose
UART is a device outside USB (a ``kind: udev`` rule) beside a car the rules declare, reserves devices, reads a
Stats message, and finally stops the plugin with Shutdown. Everything the plugin does here is what
it does under Nomad; only the kernel and udev are stand-ins.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO_RULES = """\
# The demo's rules file: the same schema as docs/rules.md.
rules:
  - name: pixel phones
    match: {vendor_id: 18d1, interface: {class: 0xff, subclass: 0x42, protocol: 0x01}}
    group: {vendor: google, type: phone, name: "pixel-7"}
    attributes: {adb: true, ram: {value: 8, unit: GiB}}
    env: {ANDROID_SERIAL: "{serial}"}
  - name: arduino uno
    match: {vendor_id: 2341, product_id: 0043}
    group: {vendor: arduino, type: board, name: uno}
    children: [tty]
    env: {ARDUINO_PORT: "{port}"}
  - name: esp32 boards (cp210x)
    match: {vendor_id: 10c4, product_id: ea60}
    group: {vendor: espressif, type: board, name: esp32-devkit}
    children: [tty]
    require_driver: true
  - name: the UART of a Raspberry Pi HAT (not USB)
    kind: udev
    match: {subsystem: tty, platform: fe201000.serial}
    group: {vendor: raspberrypi, type: serial, name: pl011}
    nodes: [/dev/gpiochip0]
    env: {HAT_UART: "{devnode}"}
  - name: a car on the test bench (udev cannot see it)
    kind: declared
    group: {vendor: doyota, type: car, name: mius}
    env: {CAR_ADDRESS: "{address}"}
    devices:
      - id: mius-bench-1
        values: {address: 192.0.2.10}
"""

WAIT_S = 10.0


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(title: str) -> None:
    _say()
    _say(f"== {title}")


def _describe_fingerprint(message: Any) -> list[str]:
    if not message.device_group:
        return ["   (no device groups)"]
    lines = []
    for group in message.device_group:
        attrs = ", ".join(f"{k}={_attr_text(v)}" for k, v in sorted(group.attributes.items()))
        lines.append(f"   {group.vendor}/{group.device_type}/{group.device_name}   [{attrs}]")
        for dev in group.devices:
            state = "healthy" if dev.healthy else f"UNHEALTHY ({dev.health_description})"
            lines.append(f"      {dev.ID}: {state}")
    return lines


def _attr_text(attr: Any) -> str:
    kind = attr.WhichOneof("value")
    value = getattr(attr, kind) if kind else "?"
    if kind == "string_val":
        value = json.dumps(value)
    return f"{value} {attr.unit}".strip() if attr.unit else str(value).lower() if kind == "bool_val" else str(value)


def _device_ids(message: Any, group_name: str) -> list[str]:
    for group in message.device_group:
        if f"{group.vendor}/{group.device_type}/{group.device_name}" == group_name:
            return [d.ID for d in group.devices]
    return []


def _has(group_name: str, count: int, healthy: int | None = None) -> Callable[[Any], bool]:
    def check(message: Any) -> bool:
        for group in message.device_group:
            if f"{group.vendor}/{group.device_type}/{group.device_name}" == group_name:
                ok = len(group.devices) == count
                if healthy is not None:
                    ok = ok and sum(d.healthy for d in group.devices) == healthy
                return ok
        return count == 0

    return check


def plugin_argv() -> list[str]:
    """The installed executable when there is one beside this Python, else the module: the same code."""
    script = Path(sys.executable).parent / "nomad-device-usb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "plugin.main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nomad-device-usb demo", description=__doc__.splitlines()[0])
    parser.add_argument("--show-logs", action="store_true", help="print the plugin's log lines at the end")
    args = parser.parse_args(argv)

    from discovery.fake import node_devices, usb_devices
    from discovery.fake.testbed import Testbed, preload_library

    if not Path(preload_library()).is_absolute():  # only the bare soname: umockdev is not installed
        print("nomad-device-usb demo: umockdev's preload library is missing; apt-get install umockdev", file=sys.stderr)
        return 3

    from plugin.config import encode_config
    from plugin.host import PluginProcess, RpcError

    workdir = Path(tempfile.mkdtemp(prefix="ndu-demo-"))
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(DEMO_RULES)
    testbed = Testbed()
    plugin: PluginProcess | None = None
    try:
        _step("A fake udev world with nothing plugged in; starting the plugin as Nomad does")
        started = time.monotonic()
        plugin = PluginProcess.start(plugin_argv(), env_extra=testbed.env())
        assert plugin.handshake is not None
        _say(f"   handshake line after {time.monotonic() - started:.3f}s: {plugin.handshake.raw}")
        info = plugin.plugin_info()
        _say(f"   PluginInfo: name={info.name} version={info.plugin_version} api={list(info.plugin_api_versions)}")
        schema = plugin.config_schema()
        _say(f"   ConfigSchema: config keys {sorted(schema.spec.object.attributes)}")
        plugin.set_config(encode_config({"rules_file": str(rules_file), "debounce": "100ms", "unplugged_grace": "5m",
                                         "state_dir": str(workdir / "state")}))  # not the machine's real one
        _say(f"   SetConfig: rules_file={rules_file}")
        _say(textwrap.indent(DEMO_RULES.rstrip(), "      | "))

        stream = plugin.fingerprint()
        first = stream.next_message(WAIT_S)
        if first is None:
            raise RuntimeError("no first fingerprint")
        _step("Fingerprint stream opened: first message (sent at once, even when empty)")
        _say("\n".join(_describe_fingerprint(first)))

        _step("Plugging in a Pixel 7 phone, an Arduino Uno and an ESP32 board (CP2102)")
        testbed.plug(usb_devices.make_pixel7())
        testbed.plug(usb_devices.make_arduino_uno())
        esp32 = usb_devices.make_cp210x(serial="58A1F3C2")
        handle = testbed.plug(esp32)
        latest = stream.wait_for(
            lambda m: _has("google/phone/pixel-7", 1)(m) and _has("arduino/board/uno", 1)(m)
            and _has("espressif/board/esp32-devkit", 1, 1)(m),
            WAIT_S,
        )
        if latest is None:
            raise RuntimeError("the plugged devices never reached the Fingerprint stream")
        _say("\n".join(_describe_fingerprint(latest)))

        _step("Reserve: what a task asking for device \"google/phone/pixel-7\" gets")
        phone_ids = _device_ids(latest, "google/phone/pixel-7")
        _print_reservation(plugin.reserve(phone_ids).container_res)

        _step("Unplugging the ESP32 board")
        testbed.unplug(handle)
        latest = stream.wait_for(_has("espressif/board/esp32-devkit", 1, 0), WAIT_S)
        if latest is None:
            raise RuntimeError("the unplug never reached the Fingerprint stream")
        _say("\n".join(_describe_fingerprint(latest)))
        esp_ids = _device_ids(latest, "espressif/board/esp32-devkit")
        try:
            plugin.reserve(esp_ids)
            _say("   Reserve of the unplugged board unexpectedly succeeded")
        except RpcError as exc:
            _say(f"   Reserve {esp_ids[0]} -> {exc.code().name}: {exc.details()}")

        _step("Plugging the ESP32 back in, on another port with a new device number")
        testbed.plug(usb_devices.make_cp210x(serial="58A1F3C2", port="1-6", devnum=21))
        latest = stream.wait_for(_has("espressif/board/esp32-devkit", 1, 1), WAIT_S)
        if latest is None:
            raise RuntimeError("the replug never reached the Fingerprint stream")
        _say("\n".join(_describe_fingerprint(latest)))
        _say(f"   same ID as before: {_device_ids(latest, 'espressif/board/esp32-devkit') == esp_ids}")
        _print_reservation(plugin.reserve(esp_ids).container_res)

        _step("Plugging in a Raspberry Pi HAT: its UART is a kind: udev device; the car is declared in the rules")
        testbed.plug(node_devices.make_raspberry_pi_hat())
        latest = stream.wait_for(lambda m: _has("raspberrypi/serial/pl011", 1, 1)(m) and _has("doyota/car/mius", 1, 1)(m),
                                 WAIT_S)
        if latest is None:
            raise RuntimeError("the HAT's UART or the declared car never reached the Fingerprint stream")
        _say("\n".join(line for line in _describe_fingerprint(latest) if "raspberrypi" in line or "doyota" in line
                       or line.lstrip().startswith(("tty-", "mius-"))))
        for group in ("raspberrypi/serial/pl011", "doyota/car/mius"):
            _say(f"   Reserve {group}:")
            _print_reservation(plugin.reserve(_device_ids(latest, group)).container_res)

        _step("Stats: one message of the stream Nomad reads every collection_interval")
        stats_call = plugin.stats(1.0)
        message = next(stats_call)
        stats_call.cancel()
        for group in message.groups:
            for dev_id, dev in sorted(group.instance_stats.items()):
                values = {k: _stat_text(v) for k, v in sorted(dev.stats.attributes.items())}
                _say(f"   {group.vendor}/{group.type}/{group.name} {dev_id}: {_stat_text(dev.summary)}  {values}")

        _step("Shutdown")
        stream.cancel()
        code = plugin.shutdown()
        bad = len(plugin.bad_stderr_lines)
        verdict = "all hclog JSON" if not bad else f"{bad} of them NOT valid hclog JSON"
        _say(f"   plugin exited with {code}; it wrote {len(plugin.entries) + bad} log lines on stderr, {verdict}")
        _say("   (run with --show-logs to see them)" if not args.show_logs else "")
        if args.show_logs:
            for entry in plugin.entries:
                _say("   " + json.dumps(entry))
        return 0
    except Exception as exc:  # show what went wrong, with the plugin's own words
        print(f"nomad-device-usb demo: failed: {exc}", file=sys.stderr)
        if plugin is not None:
            sys.stderr.write(plugin.stderr_text()[-4000:])
        return 1
    finally:
        if plugin is not None:
            plugin.kill()
        testbed.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_reservation(res: Any) -> None:
    for dev in res.devices:
        _say(f"   device  {dev.host_path} -> {dev.task_path} ({dev.permissions})")
    for mount in res.mounts:
        _say(f"   mount   {mount.host_path} -> {mount.task_path}{' (ro)' if mount.read_only else ''}")
    for key, value in sorted(res.envs.items()):
        _say(f"   env     {key}={value}")


def _stat_text(value: Any) -> str:
    for field in ("string_val", "bool_val", "int_numerator_val", "float_numerator_val"):
        if value.HasField(field):
            inner = getattr(value, field).value
            return f"{inner}{value.unit}" if value.unit else str(inner)
    return "-"


if __name__ == "__main__":
    sys.exit(main())
