"""In-process tier: serve() run on a thread, for the hooks a process test cannot reach.

Signal handling is skipped off the main thread, and the handshake line goes to
fd 1, which pytest captures; the socket path is taken from the log instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plugin import server
from plugin.handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from proto import grpc_controller_pb2, grpc_controller_pb2_grpc

DEADLINE_S = 10.0


class _Records(logging.Handler):
    """Collects log records and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def wait_for(self, message: str) -> logging.LogRecord:
        def find() -> list[logging.LogRecord]:
            return [r for r in self.records if r.getMessage() == message]

        with self._cond:
            assert self._cond.wait_for(find, DEADLINE_S), f"no log record {message!r}"
            return find()[0]


@pytest.fixture
def records() -> Iterator[_Records]:
    """Every log record emitted during the test."""
    handler = _Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


class RunningServe:
    """serve() on a thread, with a channel to it once it logs that it serves."""

    def __init__(self, tmp_path: Path, records: _Records, **kwargs: Any) -> None:
        env = {MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "2",
               "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(env, kwargs), daemon=True)
        self.thread.start()
        self.socket = Path(records.wait_for("plugin serving").__dict__["socket"])
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")

    def _run(self, env: dict[str, str], kwargs: dict[str, Any]) -> None:
        self.code = server.serve(environ=env, **kwargs)

    def health(self) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service="plugin")
        return int(stub.Check(request, timeout=DEADLINE_S).status)

    def shutdown(self) -> int | None:
        stub = grpc_controller_pb2_grpc.GRPCControllerStub(self.channel)
        stub.Shutdown(grpc_controller_pb2.Empty(), timeout=DEADLINE_S)
        self.thread.join(DEADLINE_S)
        self.channel.close()
        return self.code


def _no_services(_server: grpc.Server) -> None:
    return None


def test_serve_runs_on_shutdown_while_server_still_answers(
    tmp_path: Path, records: _Records
) -> None:
    """on_shutdown runs once, before the server stops, so it can still use the server."""
    seen: list[int] = []
    running: list[RunningServe] = []

    def hook() -> None:
        seen.append(running[0].health())

    running.append(RunningServe(tmp_path, records, register=_no_services, on_shutdown=hook))
    assert running[0].shutdown() == 0
    assert seen == [health_pb2.HealthCheckResponse.SERVING]
    assert not running[0].socket.parent.exists()


def test_serve_runs_on_serving_once_the_server_answers(tmp_path: Path, records: _Records) -> None:
    """on_serving runs once, after the server started and the handshake line went out."""
    calls: list[bool] = []
    done = threading.Event()

    def hook() -> None:
        calls.append(any(r.getMessage() == "plugin serving" for r in records.records))
        done.set()

    running = RunningServe(tmp_path, records, register=_no_services, on_serving=hook)
    assert done.wait(DEADLINE_S)
    assert running.health() == health_pb2.HealthCheckResponse.SERVING
    assert running.shutdown() == 0
    assert calls == [True]


@pytest.mark.parametrize("behaviour", ["raises", "hangs"])
def test_serve_exits_despite_bad_on_shutdown_hook(
    tmp_path: Path, records: _Records, behaviour: str
) -> None:
    """A hook that raises is logged; a hook that hangs is abandoned; serve still returns 0."""
    release = threading.Event()

    def hook() -> None:
        if behaviour == "raises":
            raise RuntimeError("hook broke")
        release.wait(DEADLINE_S)

    running = RunningServe(tmp_path, records, register=_no_services, on_shutdown=hook)
    try:
        assert running.shutdown() == 0
    finally:
        release.set()
    if behaviour == "raises":
        records.wait_for("on_shutdown hook failed")
    else:
        records.wait_for("on_shutdown hook still running, exiting anyway")


def test_serve_turns_stray_prints_into_log_entries(tmp_path: Path, records: _Records) -> None:
    """A print() during serving becomes a warn entry; sys.stdout is restored afterwards."""
    before = sys.stdout

    def register(_server: grpc.Server) -> None:
        print("oops from a servicer")

    running = RunningServe(tmp_path, records, register=register)
    assert running.shutdown() == 0
    stray = records.wait_for("stray output on stdout")
    assert stray.__dict__["output"] == "oops from a servicer"
    assert stray.levelno == logging.WARNING
    assert sys.stdout is before


def test_serve_registers_caller_services_before_start(tmp_path: Path, records: _Records) -> None:
    """The register callback gets the server before it starts and its services are reachable."""
    registered: list[Callable[..., Any]] = []

    def register(grpc_server: grpc.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
        )
        grpc_server.add_generic_rpc_handlers((handler,))
        registered.append(register)

    running = RunningServe(tmp_path, records, register=register)
    echo = running.channel.unary_unary(
        "/test.Echo/Say", request_serializer=None, response_deserializer=None
    )
    assert echo(b"ping", timeout=DEADLINE_S) == b"ping"
    assert running.shutdown() == 0
    assert len(registered) == 1


def test_serve_removes_socket_dir_when_register_fails(tmp_path: Path) -> None:
    """An exception from the register callback propagates and leaves no socket directory."""
    env = {MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    errors: list[BaseException] = []

    def register(_server: grpc.Server) -> None:
        raise RuntimeError("no servicers today")

    def run() -> None:
        try:
            server.serve(register, environ=env)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(DEADLINE_S)
    assert [str(e) for e in errors] == ["no servicers today"]
    assert list(tmp_path.iterdir()) == []
