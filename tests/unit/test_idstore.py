"""The ID state on disk: written atomically, read forgivingly; a missing or corrupt file is logged and rebuilt."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from discovery.state.idmemory import IdMemory
from discovery.state.idstore import DEFAULT_STATE_DIR, STATE_DIR_ENV, IdStore, state_dir_from
from rules_factories import make_device


def memory_with(*ports: int) -> IdMemory:
    memory = IdMemory()
    for port in ports:
        memory.remember(make_device(serial=f"S{port}", port_path=f"p{port}"), f"usb-{port}")
    return memory


def test_idstore_save_then_load_gives_the_same_ids(tmp_path: Path) -> None:
    """What was saved comes back; the directory is made 0700 and the file is not readable by others."""
    store = IdStore(str(tmp_path / "state"))
    memory = memory_with(2, 3)
    assert store.save(memory) and not memory.changed
    assert store.load().to_json() == memory.to_json()
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path).st_mode) & 0o077 == 0
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["ids.json"]  # no temporary file left


def test_idstore_missing_file_is_an_empty_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No state yet (first start, or deleted): an empty memory, said at info level."""
    with caplog.at_level(logging.INFO):
        assert len(IdStore(str(tmp_path)).load()) == 0
    assert [r.levelname for r in caplog.records] == ["INFO"]


@pytest.mark.parametrize(
    "content",
    [b"{\"version\": 1, \"ids\": [", b"\xff\xfe not utf-8", b"[]", b"{\"version\": 99, \"ids\": []}", b"",
     b"[" * 100_000],
    ids=["truncated", "not-utf8", "wrong-shape", "future-version", "empty", "deep"],
)
def test_idstore_corrupt_file_is_logged_set_aside_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    """An unreadable state file: one warning, kept as ids.json.bad, an empty memory written anew at the next save."""
    store = IdStore(str(tmp_path))
    Path(store.path).write_bytes(content)
    with caplog.at_level(logging.INFO):
        memory = store.load()
    assert len(memory) == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info) for r in warnings] == [("WARNING", None)]
    assert (tmp_path / "ids.json.bad").read_bytes() == content
    assert store.save(memory_with(4))
    assert len(store.load()) == 1


def test_idstore_unusable_entries_are_dropped_and_the_file_cleaned(tmp_path: Path) -> None:
    """A file with some bad entries keeps the good ones and is written back without the bad."""
    store = IdStore(str(tmp_path))
    data = memory_with(2).to_json()
    data["ids"].append({"vendor_id": "nothex"})
    Path(store.path).write_text(json.dumps(data))
    memory = store.load()
    assert len(memory) == 1 and memory.changed


def test_idstore_cannot_save_logs_once_without_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A state directory that cannot be made: save says False, with one error line (no traceback) for repeats."""
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    store = IdStore(str(blocker))
    with caplog.at_level(logging.INFO):
        assert [store.save(memory_with(2)) for _ in range(3)] == [False, False, False]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None


def test_idstore_a_failed_write_leaves_the_old_file_whole(tmp_path: Path, mocker: MockerFixture) -> None:
    """The disk fills up during the rename: the previous state stays as it was and no temporary file remains."""
    store = IdStore(str(tmp_path))
    assert store.save(memory_with(2))
    before = Path(store.path).read_bytes()
    mocker.patch("discovery.state.idstore.os.replace", side_effect=OSError(errno.ENOSPC, "No space left on device"))
    assert not store.save(memory_with(2, 3))
    assert Path(store.path).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.json"]


def test_idstore_state_dir_from_config_then_environment_then_default() -> None:
    """state_dir in the config wins, then $NOMAD_DEVICE_USB_STATE_DIR, then /var/lib/nomad-device-usb."""
    assert state_dir_from("/srv/ids", {STATE_DIR_ENV: "/env"}) == "/srv/ids"
    assert state_dir_from(None, {STATE_DIR_ENV: "/env"}) == "/env"
    assert state_dir_from(None, {}) == DEFAULT_STATE_DIR == "/var/lib/nomad-device-usb"
