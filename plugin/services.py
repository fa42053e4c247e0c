"""The BasePlugin and DevicePlugin servicers: protobuf in, protobuf out, domain errors to gRPC status.

Concurrency: the synchronous grpcio server gives each stream a worker thread. Streams never touch
discovery's device table; they read immutable Snapshots and wait on discovery's condition variable
for a newer version. Discovery starts on first use (Fingerprint, Reserve or Stats), not in SetConfig:
the validation launch calls SetConfig twice and is then stopped, and must stay cheap.

The Fingerprint and Stats streams never end or fail on their own while the process lives: Nomad
disables a plugin whose Fingerprint stream ends. Trouble is logged and shows as device health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import grpc

from plugin import __version__
from proto import base_pb2, base_pb2_grpc, device_pb2, device_pb2_grpc

# Registering these servicers needs grpc and the protos only: the handshake line waits for that
# much. The config decoder, the schema builder and discovery load on first use, after the line is out
# (plugin.plugin_mode loads them in the background meanwhile).
if TYPE_CHECKING:
    from discovery.reservation import ReservationError
    from discovery.state.snapshot import Snapshot
    from discovery.loop.watcher import Discovery
    from plugin.runtime import Runtime

log = logging.getLogger(__name__)

PLUGIN_NAME = "nomad-device-usb"
RETRY_START_S = 5.0
MIN_STATS_INTERVAL_S = 0.1
DEVICE_API_VERSION = "v0.1.0"
MAX_STATUS_CHARS = 2000  # of an error message sent back; gRPC drops a reply whose message passes 16 KiB
MAX_LOGGED_IDS_CHARS = 1000  # of the requested IDs in one log line


def expected_start_errors() -> tuple[type[Exception], ...]:
    """What starting discovery may meet on a real machine: no udev or usbfs (SourceError, OSError), a
    rules file that went bad since SetConfig (RulesError). Logged without a traceback: they are not bugs."""
    from discovery.rules.errors import RulesError
    from discovery.sources.base import SourceError

    return (SourceError, OSError, RulesError)


def _status_for(exc: ReservationError) -> grpc.StatusCode:
    """The gRPC code a refused reservation gets (the one place domain errors meet status codes)."""
    from discovery.reservation import DeviceUnavailableError, EmptyRequestError, UnknownDeviceError

    codes: dict[type[ReservationError], grpc.StatusCode] = {
        EmptyRequestError: grpc.StatusCode.INVALID_ARGUMENT,
        UnknownDeviceError: grpc.StatusCode.NOT_FOUND,
        DeviceUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
    }
    return codes.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION)


class BasePluginServicer(base_pb2_grpc.BasePluginServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def PluginInfo(self, request: base_pb2.PluginInfoRequest, context: grpc.ServicerContext) -> base_pb2.PluginInfoResponse:
        return base_pb2.PluginInfoResponse(
            type=base_pb2.DEVICE,
            plugin_api_versions=[DEVICE_API_VERSION],
            plugin_version=__version__,
            name=PLUGIN_NAME,
        )

    def ConfigSchema(
        self, request: base_pb2.ConfigSchemaRequest, context: grpc.ServicerContext
    ) -> base_pb2.ConfigSchemaResponse:
        from plugin.config import CONFIG_SPEC
        from plugin.schema import spec_to_proto

        return base_pb2.ConfigSchemaResponse(spec=spec_to_proto(CONFIG_SPEC))

    def SetConfig(self, request: base_pb2.SetConfigRequest, context: grpc.ServicerContext) -> base_pb2.SetConfigResponse:
        from discovery.rules.errors import RulesError
        from plugin.config import ConfigError, decode_config

        try:
            config = decode_config(request.msgpack_config)
            self._runtime.configure(config)
            log.debug(
                "config applied",
                extra={
                    "rules_file": config.rules_file or "",
                    "inline_rules": len(config.inline_rules),
                    "debounce_s": config.debounce,
                    "unplugged_grace_s": config.unplugged_grace,
                },
            )
        except (ConfigError, RulesError) as exc:
            log.error("plugin config rejected", extra={"error": str(exc)})
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, status_message(str(exc)))
        return base_pb2.SetConfigResponse()


class DevicePluginServicer(device_pb2_grpc.DevicePluginServicer):
    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock

    def Fingerprint(
        self, request: device_pb2.FingerprintRequest, context: grpc.ServicerContext
    ) -> Iterator[device_pb2.FingerprintResponse]:
        from plugin.fingerprint import build_fingerprint

        cancelled = threading.Event()
        discovery = self._discovery_or_none()
        if discovery is None:
            # Discovery could not start (no udev monitor, no usbfs): an empty answer releases
            # Nomad's start-up gate; we keep trying, and the stream stays open meanwhile.
            yield device_pb2.FingerprintResponse()
            context.add_callback(cancelled.set)
            while discovery is None and not cancelled.wait(RETRY_START_S):
                discovery = self._discovery_or_none()
            if discovery is None:
                return
        active = discovery

        def on_cancel() -> None:
            cancelled.set()
            active.wake_waiters()

        context.add_callback(on_cancel)
        snapshot: Snapshot | None = None
        sent_key: object = None
        while not cancelled.is_set():
            try:
                if snapshot is None:
                    snapshot = discovery.current()
                elif discovery.stopped:
                    cancelled.wait(0.5)  # shutting down: the server cancels this stream next
                    continue
                else:
                    snapshot = discovery.wait_newer(snapshot.version, None, cancelled.is_set)
                key = snapshot.fingerprint_key()
                if key == sent_key:
                    continue
                message = build_fingerprint(snapshot)
            except Exception:  # never end the stream: Nomad would disable the plugin until restart
                log.exception("building a fingerprint failed; the stream stays open")
                cancelled.wait(1.0)
                continue
            sent_key = key
            log.debug("fingerprint sent", extra={"version": snapshot.version, "groups": len(message.device_group)})
            yield message

    def _discovery_or_none(self) -> Discovery | None:
        try:
            return self._runtime.discovery()
        except expected_start_errors() as exc:  # the machine or the rules file said no: say what, not where in the code
            log.error("device discovery could not start; retrying", extra={"error": str(exc)})
            return None
        except Exception:  # a bug: logged with its traceback; the caller keeps its stream alive
            log.exception("device discovery could not start; retrying")
            return None

    def Reserve(self, request: device_pb2.ReserveRequest, context: grpc.ServicerContext) -> device_pb2.ReserveResponse:
        from discovery.reservation import ReservationError, plan_reservation

        ids = list(request.device_ids)
        try:
            plan = plan_reservation(ids, self._runtime.snapshot_for_reservation(ids))
        except ReservationError as exc:
            code = _status_for(exc)
            shown = _shown_ids(ids)
            log.warning("reservation refused", extra={"device_ids": shown, "error": str(exc)})
            context.abort(code, status_message(str(exc)))
        except expected_start_errors() as exc:  # discovery cannot start here and now: say so, no traceback
            log.error("reservation failed: device discovery is not available", extra={"error": str(exc)})
            context.abort(grpc.StatusCode.UNAVAILABLE, f"device discovery is not available: {exc}")
        except Exception as exc:  # a bug: say so instead of an opaque UNKNOWN
            log.exception("reservation failed", extra={"device_ids": _shown_ids(ids)})
            context.abort(grpc.StatusCode.UNAVAILABLE, f"device discovery is not available: {exc}")
        log.info("devices reserved", extra={"device_ids": _shown_ids(ids), "nodes": len(plan.devices)})
        res = device_pb2.ContainerReservation(
            envs=plan.envs,
            mounts=[
                device_pb2.Mount(task_path=m.task_path, host_path=m.host_path, read_only=m.read_only)
                for m in plan.mounts
            ],
            devices=[
                device_pb2.DeviceSpec(task_path=d.task_path, host_path=d.host_path, permissions=d.permissions)
                for d in plan.devices
            ],
        )
        return device_pb2.ReserveResponse(container_res=res)  # always present: Nomad crashes without it

    def Stats(self, request: device_pb2.StatsRequest, context: grpc.ServicerContext) -> Iterator[device_pb2.StatsResponse]:
        from plugin.stats import build_stats

        interval = request.collection_interval.ToTimedelta().total_seconds() or 1.0
        interval = max(interval, MIN_STATS_INTERVAL_S)
        cancelled = threading.Event()
        context.add_callback(cancelled.set)
        while not cancelled.is_set():
            discovery = self._discovery_or_none()
            if discovery is None:
                cancelled.wait(RETRY_START_S)  # logged once per attempt, not once per interval
                continue
            try:
                message = build_stats(discovery.current(), self._clock(), discovery.readings())
            except Exception:  # like Fingerprint: an error here would stop stats for the agent's lifetime
                log.exception("building stats failed; the stream stays open")
                message = None
            if message is not None:
                yield message
            cancelled.wait(interval)


def status_message(text: str) -> str:
    """An error message fit for a gRPC status: gRPC drops a reply whose message passes 16 KiB, so a longer one
    is cut (the log line keeps it whole)."""
    if len(text) <= MAX_STATUS_CHARS:
        return text
    return f"{text[:MAX_STATUS_CHARS]}... ({len(text) - MAX_STATUS_CHARS} more characters in the plugin's log)"


def _shown_ids(ids: list[str]) -> str:
    """The requested IDs for a log line: all of a normal request, the start of a hostile one."""
    text = ",".join(ids)
    return text if len(text) <= MAX_LOGGED_IDS_CHARS else f"{text[:MAX_LOGGED_IDS_CHARS]}... ({len(ids)} IDs)"


def register(server: grpc.Server, runtime: Runtime) -> None:
    base_pb2_grpc.add_BasePluginServicer_to_server(BasePluginServicer(runtime), server)
    device_pb2_grpc.add_DevicePluginServicer_to_server(DevicePluginServicer(runtime), server)

