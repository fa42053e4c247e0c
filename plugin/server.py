"""The go-plugin server lifecycle: from the magic cookie to a clean exit.

Order of events (the host fails the launch if it differs):

1. check the magic cookie; without it, explain on stderr and exit 1;
2. negotiate protocol version 2;
3. ignore SIGINT (the agent's terminal Ctrl-C reaches us too), route SIGTERM
   to a clean stop;
4. create a private 0700 directory with the Unix socket inside;
5. build one grpc server, register the caller's services plus health,
   GRPCController, GRPCStdio and GRPCBroker, and start it;
6. only then write ``1|2|unix|<path>|grpc`` to stdout: the only stdout write;
7. wait for GRPCController.Shutdown or SIGTERM, stop, remove the socket.

Concurrency: a synchronous grpcio server with a thread pool. Each open stream
holds one worker for its whole life (Fingerprint, Stats, StreamStdio,
StartStream, health Watch), so the pool is sized well above that. The main
thread only waits on a self-pipe, written by the Shutdown handler or by the
SIGTERM handler; a pipe needs no lock, so it is safe to write from a signal
handler.

Child processes: fd 1 and fd 2 stay connected to the agent's pipes for the
life of the process, and the agent sees our exit only when both reach EOF. A
child that inherits them and outlives us delays that past the agent's 3 s
crash detection. Start children with explicit stdin/stdout/stderr (DEVNULL or
PIPE), never with the defaults. SIGINT is ignored here, and an ignored signal
stays ignored across exec, so a child that needs SIGINT must reset it.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from plugin.handshake import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    NOT_A_PROGRAM_MESSAGE,
    HandshakeError,
    SocketDir,
    check_cookie,
    handshake_line,
    make_socket_dir,
    negotiate_protocol,
)
from proto import (
    grpc_broker_pb2,
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2,
    grpc_stdio_pb2_grpc,
)

__all__ = [
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "MAX_WORKERS",
    "check_cookie",
    "serve",
    "serve_and_exit",
]

log = logging.getLogger(__name__)

MAX_WORKERS = 32
# How long in-flight RPCs (the Shutdown answer itself) get before cancellation.
STOP_GRACE_SECONDS = 0.5
# The on_shutdown hook may not eat the agent's 2 s budget.
SHUTDOWN_HOOK_SECONDS = 0.5
HEALTH_SERVICES = ("plugin", "")

REASON_SHUTDOWN_RPC = "shutdown rpc"
REASON_SIGTERM = "sigterm"
# One byte per reason travels through the self-pipe.
_CODE_FOR_REASON = {REASON_SHUTDOWN_RPC: b"S", REASON_SIGTERM: b"T"}
_REASON_FOR_CODE = {code: reason for reason, code in _CODE_FOR_REASON.items()}

Register = Callable[[grpc.Server], None]


class _StopRequest:
    """A self-pipe that wakes the main thread; safe from threads and signal handlers."""

    def __init__(self) -> None:
        # os.pipe() fds are non-inheritable, so children never hold them.
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def request(self, reason: str) -> None:
        try:
            os.write(self._write_fd, _CODE_FOR_REASON[reason])
        except BlockingIOError:
            # The pipe is full of earlier requests; the main thread is waking anyway.
            return

    def wait(self) -> str:
        while True:
            code = os.read(self._read_fd, 1)
            if code in _REASON_FOR_CODE:
                return _REASON_FOR_CODE[code]
            # A signal number written by the wakeup fd (see wake_on_signals): the signal may have
            # gone to another thread, so this read is what lets its Python handler run here.

    def wake_on_signals(self) -> None:
        """Any signal wakes wait(), whichever thread the kernel delivered it to (main thread only)."""
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


class _StreamHolder:
    """Keeps idle streams open until the client cancels them or the server stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[threading.Event] = set()
        self._released = False

    def hold(self, context: grpc.ServicerContext, done: threading.Event | None = None) -> None:
        """Block until the RPC ends, the server stops, or `done` is set by someone else."""
        done = done if done is not None else threading.Event()
        with self._lock:
            if self._released:
                return
            self._waiting.add(done)
        if not context.add_callback(done.set):
            done.set()  # the RPC had already ended
        done.wait()
        with self._lock:
            self._waiting.discard(done)

    def release_all(self) -> None:
        with self._lock:
            self._released = True
            waiting = list(self._waiting)
        for event in waiting:
            event.set()


class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """Answers Shutdown at once; the main thread does the stopping."""

    def __init__(self, stop: _StopRequest) -> None:
        self._stop = stop

    def Shutdown(
        self, request: grpc_controller_pb2.Empty, context: grpc.ServicerContext
    ) -> grpc_controller_pb2.Empty:
        log.debug("shutdown requested by host")
        self._stop.request(REASON_SHUTDOWN_RPC)
        return grpc_controller_pb2.Empty()


class StdioServicer(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """Keeps the stdio stream open and silent: our output goes to stderr as JSON."""

    def __init__(self, holder: _StreamHolder) -> None:
        self._holder = holder

    def StreamStdio(
        self, request: object, context: grpc.ServicerContext
    ) -> Iterator[grpc_stdio_pb2.StdioData]:
        self._holder.hold(context)
        return iter(())


class BrokerServicer(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """Reads and ignores broker offers; the device API never brokers connections.

    The reading happens on a helper thread while the handler waits on the
    holder, so a stop ends the stream at once instead of after the grace time.
    """

    def __init__(self, holder: _StreamHolder) -> None:
        self._holder = holder

    def StartStream(
        self,
        request_iterator: Iterator[grpc_broker_pb2.ConnInfo],
        context: grpc.ServicerContext,
    ) -> Iterator[grpc_broker_pb2.ConnInfo]:
        drained = threading.Event()
        reader = threading.Thread(
            target=_drain, args=(request_iterator, drained), name="broker-drain", daemon=True
        )
        reader.start()
        self._holder.hold(context, drained)
        return iter(())


def _drain(request_iterator: Iterator[grpc_broker_pb2.ConnInfo], drained: threading.Event) -> None:
    """Read the host's side to its end, then let the handler finish the stream."""
    try:
        for info in request_iterator:
            log.debug("ignoring broker offer", extra={"service_id": info.service_id})
    except grpc.RpcError:
        log.debug("broker stream ended")
    finally:
        drained.set()


class _StdoutToLog(io.TextIOBase):
    """Stands in for sys.stdout so a stray print becomes a log entry, not stdout bytes."""

    encoding = "utf-8"

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._lock = threading.Lock()
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._logger.warning("stray output on stdout", extra={"output": line})
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._pending = self._pending, ""
        if line:
            self._logger.warning("stray output on stdout", extra={"output": line})


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run_hook(on_shutdown: Callable[[], None]) -> None:
    """Run the caller's shutdown hook in a daemon thread, giving up after a deadline."""

    def call() -> None:
        try:
            on_shutdown()
        except Exception:  # the hook's failure must not stop us from exiting
            log.exception("on_shutdown hook failed")

    worker = threading.Thread(target=call, name="on-shutdown", daemon=True)
    worker.start()
    worker.join(SHUTDOWN_HOOK_SECONDS)
    if worker.is_alive():
        log.warning("on_shutdown hook still running, exiting anyway",
                    extra={"waited_s": SHUTDOWN_HOOK_SECONDS})


def _build_server(
    register: Register, stop: _StopRequest, holder: _StreamHolder
) -> tuple[grpc.Server, health.HealthServicer]:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="grpc-worker")
    )
    register(server)
    health_servicer = health.HealthServicer()
    for service in HEALTH_SERVICES:
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(
        ControllerServicer(stop), server
    )
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(StdioServicer(holder), server)
    grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(BrokerServicer(holder), server)
    return server, health_servicer


def _serve_on(
    sockets: SocketDir,
    register: Register,
    on_shutdown: Callable[[], None] | None,
    stop: _StopRequest,
    on_serving: Callable[[], None] | None = None,
) -> int:
    holder = _StreamHolder()
    # A failing register callback or bind propagates: serve()'s finally
    # removes the socket directory and serve_and_exit logs the error.
    server, health_servicer = _build_server(register, stop, holder)
    server.add_insecure_port(f"unix:{sockets.socket}")
    server.start()
    try:
        _write_all(1, handshake_line(sockets.socket).encode())
    except OSError as exc:
        log.error("cannot write handshake line to stdout", extra={"error": str(exc)})
        server.stop(None)
        return 1
    log.info("plugin serving", extra={"socket": str(sockets.socket), "pid": os.getpid()})
    if on_serving is not None:
        on_serving()

    reason = stop.wait()
    log.info("plugin stopping", extra={"reason": reason})
    if on_shutdown is not None:
        _run_hook(on_shutdown)
    holder.release_all()
    health_servicer.enter_graceful_shutdown()
    server.stop(STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 1.0)
    log.info("plugin stopped", extra={"reason": reason})
    return 0


def serve(
    register: Register,
    *,
    on_shutdown: Callable[[], None] | None = None,
    environ: Mapping[str, str] | None = None,
    on_serving: Callable[[], None] | None = None,
) -> int:
    """Run the plugin until the host shuts it down; return the exit code.

    `register` adds the caller's servicers to the grpc server before it starts.
    `on_shutdown` runs once when a stop begins (Shutdown RPC or SIGTERM), before
    the server stops, so long-lived work (discovery, open streams) can end; it
    gets SHUTDOWN_HOOK_SECONDS. `on_serving` runs once the handshake line is out (it must not
    block: start a thread). Logging must already be set up.
    """
    env = os.environ if environ is None else environ
    if not check_cookie(env):
        sys.stderr.write(NOT_A_PROGRAM_MESSAGE)
        sys.stderr.flush()
        return 1
    try:
        negotiate_protocol(env)
    except HandshakeError as exc:
        log.error("protocol negotiation failed", extra={"error": str(exc)})
        return 1

    # From here on nothing but the handshake may reach fd 1.
    saved_stdout, stray = sys.stdout, _StdoutToLog(logging.getLogger("plugin.stdout"))
    sys.stdout = stray
    stop = _StopRequest()
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.request(REASON_SIGTERM))
        stop.wake_on_signals()
    try:
        sockets = make_socket_dir(env)
        try:
            return _serve_on(sockets, register, on_shutdown, stop, on_serving)
        finally:
            sockets.remove()
    except HandshakeError as exc:
        log.error("cannot create plugin socket", extra={"error": str(exc)})
        return 1
    finally:
        if _in_main_thread():
            # Before closing the pipe, so a late SIGTERM cannot write to a closed fd.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
        stop.close()
        stray.flush()
        sys.stdout = saved_stdout


def serve_and_exit(
    register: Register,
    *,
    on_shutdown: Callable[[], None] | None = None,
    on_serving: Callable[[], None] | None = None,
) -> NoReturn:
    """Serve, then end the process at once with serve's exit code.

    os._exit skips joining the grpc worker threads: a servicer that ignores the
    stop would otherwise keep the process alive past the agent's 2 s deadline.
    Everything worth keeping was flushed and cleaned up by then.
    """
    try:
        code = serve(register, on_shutdown=on_shutdown, on_serving=on_serving)
    except Exception:  # top of the process: log as one JSON entry, then exit 1
        log.exception("plugin failed to start")
        code = 1
    logging.shutdown()
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                continue
    os._exit(code)
