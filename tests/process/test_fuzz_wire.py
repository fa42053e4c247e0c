"""Process tier, fuzzing the wire: SetConfig and Reserve with arbitrary input against the live plugin.

Every input gets an answer within the RPC deadline: success, or a gRPC error of the kind the
contract names (INVALID_ARGUMENT for config; NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION for
Reserve) with a message; never UNKNOWN (an exception escaped), never a dead or hung process, never a
traceback in the log. The budget is fixed for CI (the same examples every run, about 10 s a target);
``NDU_FUZZ_EXAMPLES=5000`` runs that many random ones per target on demand. Each test prints one
``FUZZ`` line with how many inputs it tried (``pytest -s -k fuzz``).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import CONFIG_SPEC, LOG_LEVELS, RULE_SPEC, encode_config
from plugin.host import PluginProcess, RpcError

CI_EXAMPLES = {"setconfig": 600, "reserve": 300}
EXAMPLES_ENV = "NDU_FUZZ_EXAMPLES"
WAIT_S = 10.0

RULES = """\
rules:
  - match: {vendor_id: "0403"}
    group: {vendor: ftdi, type: serial, name: ft232r}
    children: [tty]
  - match: {vendor_id: 18d1}
    group: {vendor: google, type: phone, name: pixel-7}
"""
REAL_IDS = ["usb-0403-6001-A50285BI", "usb-18d1-4ee7-29011FDH2000XY"]


def budget(target: str) -> settings:
    """The CI budget (fixed examples, no shrinking), or NDU_FUZZ_EXAMPLES random ones (shrunk on failure)."""
    wanted = os.environ.get(EXAMPLES_ENV)
    return settings(
        max_examples=int(wanted) if wanted else CI_EXAMPLES[target],
        derandomize=not wanted,  # CI: the same inputs every run, so a failure is a regression, not luck
        # Shrinking megabyte inputs can take minutes; in CI the failing input itself is reported instead.
        phases=list(Phase) if wanted else [Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class Shown(bytes):
    """A payload whose repr is short: a failure report quotes its start and size, not megabytes."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes: {bytes(self[:200])!r}>"


class ShownIds(list[str]):
    """A Reserve request whose repr is short, like Shown."""

    def __repr__(self) -> str:
        return f"<{len(self)} IDs, {sum(map(len, self))} characters: {[i[:40] for i in self[:5]]!r}>"


# -- inputs ----------------------------------------------------------------------------------------
# Megabyte text goes only where one value is (a config key's value, an ID), so a request stays below
# gRPC's 4 MiB message limit, which Nomad's requests are nowhere near.
huge_text = st.builds(lambda n, c: c * n, st.integers(10_000, 250_000), st.sampled_from(["a", "/", "\u00e9", "{"]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what MessagePack can carry
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet="\x00\n\r\t\\\"'{}$%\u2028\ufeff\udcff", max_size=8).filter(lambda t: "\udcff" not in t),
    st.binary(max_size=20),
    st.sampled_from(["", "0x18d1", "18d1,2341", "200ms", "-1s", "1e400", "NaN", "true", "rw", "tty", "{serial}",
                     "/dev/ttyUSB0", "/etc/passwd", "../../x", "*", "[", "\x00"]),
)
# HCL-shaped: what Nomad's decoder can hand over (maps, lists, scalars), nested a few levels.
hcl_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from([*RULE_SPEC, "vendor_id", "value", "unit", "command"]) | st.text(max_size=10),
                      inner, max_size=5),
    max_leaves=20,
)
rule_blocks = st.fixed_dictionaries({}, optional={key: hcl_values for key in RULE_SPEC})


def config_values(paths: dict[str, str]) -> st.SearchStrategy[Any]:
    """A config map: the schema's keys with plausible or arbitrary values, sometimes unknown keys too."""
    path_values = st.sampled_from(sorted(paths.values())) | scalars | huge_text
    per_key: dict[str, st.SearchStrategy[Any]] = {
        "rules_file": path_values,
        "state_dir": path_values,
        "rule": st.lists(rule_blocks | hcl_values, max_size=4) | hcl_values,
        "debounce": st.sampled_from(["0s", "50ms", "1h", "-5ms", "5", "fast"]) | scalars | huge_text,
        "unplugged_grace": st.sampled_from(["60s", "0s", "2562047h", "1e9h"]) | scalars,
        "log_level": st.sampled_from([*LOG_LEVELS, "WARN ", "loud"]) | scalars | huge_text,
        "strict_rules_permissions": st.booleans() | scalars,
    }
    assert set(per_key) == set(CONFIG_SPEC), "a config key without a fuzz strategy"
    known = st.fixed_dictionaries({}, optional=per_key)
    unknown = st.dictionaries(st.text(max_size=12) | st.integers(-(2**63), 2**63 - 1) | st.booleans(), hcl_values,
                              max_size=3)
    return st.builds(lambda a, b: {**b, **a}, known, unknown | st.just({}))


def payloads(paths: dict[str, str]) -> st.SearchStrategy[bytes]:
    """MessagePack as Nomad sends it (and worse: other top-level types, raw bytes, truncations)."""
    packed_maps = config_values(paths).map(lambda v: msgpack.packb(v, use_bin_type=True))
    other_values = hcl_values.map(lambda v: msgpack.packb(v, use_bin_type=True))
    return st.one_of(
        packed_maps,
        packed_maps.flatmap(lambda b: st.integers(0, max(0, len(b) - 1)).map(lambda n: b[:n])),  # cut short
        other_values,
        st.binary(max_size=200),
    ).map(Shown)


id_text = st.one_of(
    st.sampled_from(REAL_IDS),
    st.text(max_size=60),
    st.text(alphabet="usb-0123456789abcdef:.~", max_size=40),
    st.sampled_from(["", " ", "\x00", ",".join(REAL_IDS), REAL_IDS[0] + "\x00", REAL_IDS[0].upper(), "usb-" * 5000]),
)
reserve_requests = st.one_of(
    st.lists(id_text, max_size=8),
    st.lists(id_text, min_size=1000, max_size=3000),  # thousands of IDs
    huge_text.map(lambda text: [text]),
    st.builds(lambda n, c: [c * n], st.integers(500_000, 1_000_000), st.sampled_from(["a", "\u00e9", "\x00", "-"])),
).map(ShownIds)


# -- the plugin ------------------------------------------------------------------------------------
def tracebacks(plugin: PluginProcess) -> list[object]:
    return [e for e in plugin.entries if "traceback" in e] + list(plugin.bad_stderr_lines)


def answers_everything(plugin: PluginProcess) -> None:
    """The process is alive and answers a plain call at once."""
    assert plugin.proc.poll() is None, f"the plugin died: {plugin.stderr_text()[-2000:]}"
    assert plugin.plugin_info().name == "nomad-device-usb"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Paths a config may name: good, broken and others-writable rules files, odd files, directories."""
    good = tmp_path / "good.yaml"
    good.write_text(RULES)
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - match: {vendor_id: zz}\n")
    writable = tmp_path / "writable.yaml"
    writable.write_text(RULES)
    writable.chmod(0o666)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("rules: !!python/object/apply:os.system [true]\n")
    return {"good": str(good), "broken": str(broken), "writable": str(writable), "tagged": str(tagged),
            "dir": str(tmp_path), "devnull": "/dev/null", "missing": str(tmp_path / "none.yaml"), "root": "/",
            "relative": "rules.yaml", "proc": "/proc/self/status"}


@pytest.fixture
def plugin(testbed: Testbed) -> Iterator[PluginProcess]:
    with PluginProcess.start(env_extra=testbed.env()) as process:
        yield process
        if process.proc.poll() is None:
            assert process.shutdown() == 0


def run_fuzz(target: str, strategy: st.SearchStrategy[Any], call: Callable[[Any], str]) -> collections.Counter[str]:
    """Feed ``strategy``'s inputs to ``call`` (which returns the outcome's name); the outcomes counted."""
    outcomes: collections.Counter[str] = collections.Counter()

    @budget(target)
    @given(value=strategy)
    def one(value: Any) -> None:
        outcomes[call(value)] += 1

    one()
    return outcomes


def test_fuzz_setconfig_always_answers_ok_or_invalid_argument(plugin: PluginProcess, files: dict[str, str]) -> None:
    """Arbitrary SetConfig payloads: accepted, or INVALID_ARGUMENT with a message; never a crash, hang or traceback."""

    def call(payload: bytes) -> str:
        try:
            plugin.set_config(payload)
        except RpcError as exc:
            assert exc.code().name == "INVALID_ARGUMENT" and exc.details(), (exc.code(), exc.details()[:300])
            assert len(exc.details()) < 4096, len(exc.details())
            return "INVALID_ARGUMENT"
        return "OK"

    outcomes = run_fuzz("setconfig", payloads(files), call)
    answers_everything(plugin)
    plugin.set_config(encode_config({"rules_file": files["good"]}))  # and a good config still applies
    assert tracebacks(plugin) == []
    print(f"\nFUZZ setconfig: {sum(outcomes.values())} inputs, {dict(outcomes)}, crashes 0, hangs 0, tracebacks 0")


def test_fuzz_reserve_always_answers_with_a_status_and_message(
    plugin: PluginProcess, testbed: Testbed, files: dict[str, str]
) -> None:
    """Arbitrary Reserve requests: a reservation or a contract error with a message; no crash, hang or traceback."""
    plugin.set_config(encode_config({"rules_file": files["good"], "debounce": "50ms"}))
    testbed.plug(usb_devices.make_ftdi())
    testbed.plug(usb_devices.make_pixel7())
    stream = plugin.fingerprint()
    ready = stream.wait_for(lambda m: {d.ID for g in m.device_group for d in g.devices} == set(REAL_IDS), WAIT_S)
    assert ready is not None

    def call(ids: list[str]) -> str:
        try:
            plugin.reserve(ids)
        except RpcError as exc:
            name = exc.code().name
            assert name in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"), (name, exc.details())
            assert exc.details() and len(exc.details()) < 4096, (name, len(exc.details() or ""))
            return name
        return "OK"

    outcomes = run_fuzz("reserve", reserve_requests, call)
    answers_everything(plugin)
    assert plugin.reserve([REAL_IDS[0]]).container_res.envs["USB_DEVICE_IDS"] == REAL_IDS[0]
    assert stream.error is None and not stream.ended
    assert tracebacks(plugin) == []
    print(f"\nFUZZ reserve: {sum(outcomes.values())} inputs, {dict(outcomes)}, crashes 0, hangs 0, tracebacks 0")
