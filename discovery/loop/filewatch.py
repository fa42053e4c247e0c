"""Tell when one file changes, through inotify on its directory (so editors that replace the file by rename count).

The watcher's select loop waits on ``fileno()``; nothing polls. Where inotify cannot be had, ``fileno()``
is None and ``changed()`` compares the file's stat, which the caller then does about once a second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)

# inotify constants from <sys/inotify.h>.
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT_HEADER = struct.Struct("iIII")


def _libc() -> ctypes.CDLL | None:
    try:  # glibc's soname: find_library() would run ldconfig in a subprocess (milliseconds at start-up)
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        pass
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileWatch:
    """Watches ``path``; ``changed()`` says whether it may have changed since the last call."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._fd: int | None = None
        self._last = _stat_key(self.path)
        libc = _libc()
        if libc is None:
            log.warning("inotify not available; the rules file is checked once a second", extra={"path": str(self.path)})
            return
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            log.warning("inotify not available; the rules file is checked once a second", extra={"error": os.strerror(err)})
            return
        # The file's own directory, and the directory of the file a symlink points at (configuration
        # management often links the rules file to a file elsewhere).
        directories = {self.path.parent, Path(os.path.realpath(self.path)).parent}
        for directory in sorted(directories):
            if libc.inotify_add_watch(fd, os.fsencode(directory), _MASK) < 0:
                err = ctypes.get_errno()
                os.close(fd)
                log.warning(
                    "cannot watch the rules file's directory; checking it once a second",
                    extra={"path": str(directory), "error": os.strerror(err)},
                )
                return
        self._fd = fd

    def fileno(self) -> int | None:
        return self._fd

    def changed(self) -> bool:
        """Drain pending notifications; True when the file's identity, size or times differ from last time."""
        touched = self._fd is None
        if self._fd is not None:
            touched = self._drain()
        if not touched:
            return False
        key = _stat_key(self.path)
        if key == self._last:
            return False
        self._last = key
        return True

    def _drain(self) -> bool:
        """Read every pending notification; True when one names the file, its link target or a link in between."""
        assert self._fd is not None
        touched = False
        names = {os.fsencode(self.path.name), os.fsencode(Path(os.path.realpath(self.path)).name)}
        names.update(os.fsencode(p.name) for p in self._link_chain())
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return touched
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return touched
            offset = 0
            while offset + _EVENT_HEADER.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
                raw = data[offset + _EVENT_HEADER.size : offset + _EVENT_HEADER.size + length]
                if raw.rstrip(b"\0") in names:
                    touched = True
                offset += _EVENT_HEADER.size + length

    def _link_chain(self) -> list[Path]:
        """The symlinks between the configured path and the real file (e.g. a ``..data`` link that is swapped)."""
        chain: list[Path] = []
        current = self.path
        for _ in range(8):
            if not current.is_symlink():
                break
            target = Path(os.readlink(current))
            current = target if target.is_absolute() else current.parent / target
            chain.append(current)
        return chain

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
