"""Host side: start one QEMU guest from a cached image, and talk to its agent and to QMP.

The guest boots Debian's kernel with our initramfs under software emulation (TCG) unless the CPU
really offers VT-x/AMD-V, gets an xHCI controller with enough root ports for every test device, a
9p share with the files of this run, and a virtio-serial port for the agent. It has no network.

QEMU dials two unix sockets we listen on (QMP and the agent port), so there is nothing to poll for.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vm.build import REPO, VENV, WHEELS, Image
from vm.qmp import QMP

QEMU = "qemu-system-x86_64"
GUEST_CODE = REPO / "vm" / "guest"
KERNEL_ARGS = "console=ttyS0 rdinit=/init panic=-1 loglevel=4 mitigations=off usbcore.autosuspend=-1"
# Every wait on the guest is this generous: emulation speed depends on the load on the other core.
BOOT_TIMEOUT = 300.0
CALL_TIMEOUT = 120.0


class GuestError(RuntimeError):
    """The guest failed to boot, died, or its agent reported an error (with the guest's traceback)."""


def choose_accel() -> str:
    """kvm only when the CPU advertises VT-x/AMD-V and /dev/kvm opens; else tcg. $NDU_VM_ACCEL wins."""
    if os.environ.get("NDU_VM_ACCEL"):
        return os.environ["NDU_VM_ACCEL"]
    flags = set()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return "kvm" if usable and flags & {"vmx", "svm"} else "tcg"


def check_qemu() -> str:
    """Path of qemu-system-x86_64, or a loud error naming the package to install."""
    path = shutil.which(QEMU)
    if path is None:
        raise GuestError(f"{QEMU} not found: run vm/setup-host (or apt-get install qemu-system-x86)")
    return path


def build_wheel(destination: Path) -> Path:
    """Build our project's wheel from the working tree (a copy of it, so the tree gets no build/ dir)."""
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ndu-wheel-") as scratch:
        source = Path(scratch) / "src"
        shutil.copytree(
            REPO, source,
            ignore=shutil.ignore_patterns(
                ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".hypothesis",
                ".venv", ".cache",
            ),
        )
        argv = [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--wheel-dir", str(destination), str(source),
        ]
        # The running Python's setuptools is quickest; when it cannot build our pyproject, pip
        # fetches the build backend pyproject.toml asks for (needs PyPI), as `pip install <repo>` does.
        proc = subprocess.run([*argv, "--no-build-isolation"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestError(f"building the plugin wheel failed:\n{proc.stdout}{proc.stderr}")
    wheels = sorted(destination.glob("nomad_device_usb-*.whl"))
    if len(wheels) != 1:
        raise GuestError(f"expected one nomad_device_usb wheel in {destination}, found {wheels}")
    return wheels[0]


def stage_share(share: Path, with_plugin: bool) -> dict[str, str]:
    """Fill the 9p share: the guest code always; the plugin wheel (with its go-plugin host) when asked.

    Returns what the guest should know about the share (paths as the guest sees them).
    """
    shutil.copytree(GUEST_CODE, share / "guest", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    # the benchmarks' minimal pyudev scan, which the guest's scale measurements compare with
    shutil.copy(REPO / "benchmarks" / "baselines.py", share / "guest" / "baselines.py")
    staged: dict[str, str] = {}
    if with_plugin:
        wheel = build_wheel(share / "wheels")
        staged["wheel"] = f"/mnt/host/wheels/{wheel.name}"
    return staged


class AgentChannel:
    """Host end of the agent's virtio-serial port: one JSON request, one JSON reply."""

    def __init__(self, sock: socket.socket, alive: Any) -> None:
        self._sock = sock
        self._alive = alive
        self._buffer = b""
        self._next_id = 0

    def call(self, op: str, args: dict[str, Any], host_timeout: float) -> Any:
        """Run ``op`` in the guest; its result, or GuestError with the guest's error and traceback."""
        self._next_id += 1
        request_id = self._next_id
        self._sock.sendall(json.dumps({"id": request_id, "op": op, "args": args}).encode() + b"\n")
        deadline = time.monotonic() + host_timeout
        while True:
            reply = self._read(deadline, op)
            if reply.get("id") != request_id:
                continue  # a late answer to a request that timed out earlier
            if not reply["ok"]:
                detail = reply.get("traceback") or ""
                raise GuestError(f"guest op {op} failed: {reply['error']}\n{detail}")
            return reply.get("result")

    def _read(self, deadline: float, op: str) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestError(f"guest op {op}: no answer within the deadline")
            ready, _, _ = select.select([self._sock], [], [], min(remaining, 1.0))
            if not ready:
                if not self._alive():
                    raise GuestError(f"guest op {op}: QEMU exited")
                continue
            chunk = self._sock.recv(65536)
            if not chunk:
                raise GuestError(f"guest op {op}: the agent's port closed")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        """Closing the port tells the agent to stop (the guest then powers off)."""
        self._sock.close()


class Guest:
    """One running guest. Use as a context manager; ``stop()`` always leaves no QEMU behind."""

    def __init__(
        self, image: Image, run_dir: Path, *, with_plugin: bool = False, memory_mb: int = 1024,
        cpus: int = 1, boot_timeout: float = BOOT_TIMEOUT,
    ) -> None:
        self.image = image
        self.run_dir = run_dir
        self.share = run_dir / "share"
        self.console_log = run_dir / "console.log"
        self.with_plugin = with_plugin
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.boot_timeout = boot_timeout
        self.accel = choose_accel()
        self.process: subprocess.Popen[bytes] | None = None
        self.qmp: QMP | None = None
        self.agent: AgentChannel | None = None
        self.staged: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def command(self, qmp_path: Path, agent_path: Path) -> list[str]:
        """The QEMU command line."""
        return [
            check_qemu(),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-accel", self.accel, "-m", str(self.memory_mb), "-smp", str(self.cpus),
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd), "-append", KERNEL_ARGS,
            "-serial", f"file:{self.console_log}",
            "-chardev", f"socket,id=qmp,path={qmp_path}", "-mon", "chardev=qmp,mode=control",
            # p2/p3: more root ports than the default 4+4, or QEMU inserts a hub and speeds change.
            "-device", "qemu-xhci,id=xhci,p2=8,p3=8",
            "-virtfs", f"local,path={self.share},mount_tag=host,security_model=none,id=host",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", f"socket,id=agent,path={agent_path}",
            "-device", "virtserialport,bus=vser.0,chardev=agent,name=ndu.agent",
        ]

    def alive(self) -> bool:
        """True while QEMU runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> Guest:
        """Boot and wait until the agent answers (BOOT_TIMEOUT); GuestError with the console tail if not."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.share.mkdir(exist_ok=True)
        started = time.monotonic()
        self.staged = stage_share(self.share, self.with_plugin)
        self.timings["stage_share"] = round(time.monotonic() - started, 2)
        qmp_path, agent_path = self.run_dir / "qmp.sock", self.run_dir / "agent.sock"
        listeners = {}
        for name, path in (("qmp", qmp_path), ("agent", agent_path)):
            path.unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            listener.listen(1)
            listeners[name] = listener
        argv = self.command(qmp_path, agent_path)
        (self.run_dir / "qemu.argv").write_text("\n".join(argv) + "\n")
        stderr = (self.run_dir / "qemu.stderr").open("wb")
        started = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        stderr.close()
        try:
            connections = self._accept(listeners, deadline=started + 60)
            self.qmp = QMP(connections["qmp"])
            self.agent = AgentChannel(connections["agent"], self.alive)
            ping = self.call("ping", host_timeout=self.boot_timeout)
        except Exception as exc:
            self.stop()
            raise GuestError(f"guest did not come up: {exc}\n{self.diagnostics()}") from exc
        finally:
            for listener in listeners.values():
                listener.close()
        self.timings["boot_to_agent"] = round(time.monotonic() - started, 2)
        self.timings["guest_uptime_at_agent"] = round(ping["agent_ready_uptime"], 2)
        self.release = ping["release"]
        return self

    def _accept(self, listeners: dict[str, socket.socket], deadline: float) -> dict[str, socket.socket]:
        accepted: dict[str, socket.socket] = {}
        while len(accepted) < len(listeners):
            waiting = [s for n, s in listeners.items() if n not in accepted]
            ready, _, _ = select.select(waiting, [], [], 1.0)
            for listener in ready:
                name = next(n for n, s in listeners.items() if s is listener)
                accepted[name], _ = listener.accept()
            if not self.alive():
                raise GuestError("QEMU exited before connecting its sockets")
            if time.monotonic() > deadline:
                raise GuestError("QEMU did not connect its sockets within 60 s")
        return accepted

    def call(self, op: str, *, host_timeout: float | None = None, **args: Any) -> Any:
        """Run an agent op in the guest (see vm/guest/agent.py) with keyword ``args``.

        The host waits ``host_timeout`` seconds, by default the op's own ``timeout`` argument plus a
        margin for the round trip, so the guest's TimeoutError (with its detail) arrives first.
        """
        if self.agent is None:
            raise GuestError("guest is not running")
        if host_timeout is None:
            host_timeout = float(args.get("timeout", CALL_TIMEOUT)) + 30
        return self.agent.call(op, args, host_timeout)

    def require_qmp(self) -> QMP:
        """The QMP session of the running guest."""
        if self.qmp is None:
            raise GuestError("guest is not running")
        return self.qmp

    def exec(self, *argv: str, timeout: float = CALL_TIMEOUT, check: bool = True) -> dict[str, Any]:
        """Run a program in the guest; GuestError on a non-zero exit when ``check``."""
        result = self.call("exec", argv=list(argv), timeout=timeout)
        if check and result["rc"] != 0:
            raise GuestError(f"{' '.join(argv)} exited {result['rc']} in the guest:\n{result['stderr']}")
        return result

    def install_plugin(self) -> float:
        """``pip install`` our wheel into the guest's venv, offline, as the README tells users; seconds."""
        if "wheel" not in self.staged:
            raise GuestError("the guest was started without with_plugin=True")
        started = time.monotonic()
        self.exec(
            f"{VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
            "--find-links", WHEELS, self.staged["wheel"], timeout=600,
        )
        self.timings["install_plugin"] = round(time.monotonic() - started, 2)
        return self.timings["install_plugin"]

    def diagnostics(self, lines: int = 40) -> str:
        """The last console and QEMU stderr lines, for error messages."""
        parts = []
        for path in (self.console_log, self.run_dir / "qemu.stderr"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Close the agent port, quit QEMU over QMP, and kill it if it lingers."""
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        if self.qmp is not None and self.alive():
            # QEMU may close the socket before it answers; the wait below decides either way.
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                self.qmp.execute("quit", timeout=10)
            self.qmp.close()
            self.qmp = None
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
