"""The ID memory on disk: one small JSON file in the state directory, replaced atomically.

Where: ``state_dir`` from the plugin config, else ``$NOMAD_DEVICE_USB_STATE_DIR``, else
``/var/lib/nomad-device-usb``; the file is ``ids.json`` in it. Nomad gives device plugins no data
directory of their own, so the plugin keeps one, created 0700 when first needed.

Writing never leaves a half-written file behind, even if the plugin is killed mid-write or the
machine loses power: the data goes to a new temporary file in the same directory, is flushed to the
disk (fsync), renamed over ``ids.json`` (atomic), and the directory is synced so the rename itself
is durable. Reading is forgiving: no file yet means an empty memory; a file that cannot be read as
one (truncated by hand, another program's, a future version) is logged, set aside as
``ids.json.bad`` for a person to look at, and the memory starts empty; it is written anew at the
next change. Nothing here is ever fatal: without a usable directory the IDs are kept in memory only,
and that is logged once.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping

from discovery.state.idmemory import IdMemory, IdMemoryError

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/nomad-device-usb"
STATE_DIR_ENV = "NOMAD_DEVICE_USB_STATE_DIR"
FILE_NAME = "ids.json"
MAX_STATE_BYTES = 16 * 1024 * 1024  # 10,000 entries take about 1.5 MB; anything far larger is not ours


def state_dir_from(configured: str | None, environ: Mapping[str, str]) -> str:
    """The state directory: the config's, else the environment's, else the default."""
    return configured or environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR


class IdStore:
    """Loads and saves one IdMemory in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self._last_error: str | None = None  # logged once until it changes or a save works again

    def load(self) -> IdMemory:
        """The saved memory; an empty one when there is none or it cannot be used (logged, set aside)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            log.info("no saved device IDs yet; starting with none", extra={"state_file": self.path})
            return IdMemory()
        except OSError as exc:  # unreadable (permissions, a directory in its place): start afresh, keep the file
            log.warning("cannot read the saved device IDs; starting with none",
                        extra={"state_file": self.path, "error": exc.strerror or str(exc)})
            return IdMemory()
        try:
            if len(data) > MAX_STATE_BYTES:
                raise IdMemoryError(f"larger than {MAX_STATE_BYTES} bytes")
            memory, skipped = IdMemory.from_json(json.loads(data))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._set_aside(str(exc))
            return IdMemory()
        if skipped:
            log.warning("some saved device IDs were unusable and are forgotten",
                        extra={"state_file": self.path, "skipped": skipped, "kept": len(memory)})
            memory.changed = True  # write the cleaned file back
        log.info("saved device IDs loaded", extra={"state_file": self.path, "devices": len(memory)})
        return memory

    def peek(self) -> IdMemory:
        """The saved memory, read only (the CLI's view of the plugin's IDs): nothing is logged, moved or
        written; a missing, unreadable or foreign file is an empty memory."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_STATE_BYTES + 1)
            if len(data) > MAX_STATE_BYTES:
                return IdMemory()
            memory, _ = IdMemory.from_json(json.loads(data))
        except (OSError, ValueError, RecursionError):
            return IdMemory()
        return memory

    def _set_aside(self, problem: str) -> None:
        aside = self.path + ".bad"
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            aside = f"(could not move it: {exc.strerror or exc})"
        log.warning(
            "the saved device IDs are unreadable; starting with none (IDs are recomputed from the devices)",
            extra={"state_file": self.path, "problem": problem[:200], "set_aside_as": aside},
        )

    def save(self, memory: IdMemory) -> bool:
        """Write ``memory`` atomically and durably; False (logged once per distinct problem) when it cannot be."""
        data = json.dumps(memory.to_json(), indent=1, ensure_ascii=False).encode() + b"\n"
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".ids.", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                _remove_quietly(temporary)
                raise
            _sync_directory(self.directory)
        except OSError as exc:
            problem = f"{exc.strerror or exc}: {getattr(exc, 'filename', None) or self.directory}"
            if problem != self._last_error:
                self._last_error = problem
                log.error("cannot save device IDs; they are kept in memory only and a restart may change "
                          "the IDs of units that share a serial",
                          extra={"state_dir": self.directory, "error": problem})
            return False
        if self._last_error is not None:
            log.info("device IDs saved again", extra={"state_file": self.path})
            self._last_error = None
        memory.changed = False
        return True


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return


def _sync_directory(directory: str) -> None:
    """fsync the directory, so the rename that put the new file in place survives a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
