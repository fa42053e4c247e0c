"""Builds the VM tier's guest image, or finds it in the cache: a Debian kernel plus an initramfs.

The initramfs is a whole debootstrap rootfs (udev, python3, a venv at /opt/nomad-device-usb with our
runtime dependencies from PyPI wheels) packed as one newc cpio, with ``vm/init`` as its /init. The
project's own code is *not* in the image: it comes in over a 9p share at run time, so editing the
plugin never forces a rebuild.

Images live outside the repository in ``$NDU_VM_CACHE`` (default ``~/.cache/nomad-device-usb/vm``),
one directory per hash of the build inputs (this file, ``vm/init`` and the runtime dependency list
of ``pyproject.toml``). Changing any of them makes a new key and so a new build.

Run ``python -m vm.build`` to build (or reuse) the image and print its directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
INIT_SCRIPT = REPO / "vm" / "init"

# Bump when the layout of the cache directory changes in a way the inputs below do not show.
FORMAT = 1
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("udev", "kmod", "python3", "python3-venv", "libusb-1.0-0")
VENV = "/opt/nomad-device-usb"
WHEELS = "/opt/nomad-device-usb-wheels"  # kept in the image so the guest can `pip install` offline
KERNEL_META = "linux-image-amd64"
# Whole module trees go in, so that udev's modalias autoloading finds any USB or HID driver.
MODULE_TREES = ("kernel/drivers/usb", "kernel/drivers/hid", "kernel/fs/9p", "kernel/net/9p")
# Plus these by name, with everything they depend on.
MODULES = (
    "virtio_pci", "virtio_console", "9pnet_virtio", "9p", "sd_mod", "sr_mod", "usb_storage", "uas",
    "configfs", "evdev", "xhci_pci", "dummy_hcd", "libcomposite", "usb_f_acm", "usb_f_serial",
)
# Paths dropped from the rootfs before packing: documentation and apt state the guest never reads.
PRUNE = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "var/cache/apt", "var/lib/apt/lists", "var/log", "usr/share/python-wheels",
)
KEEP_IMAGES = 2  # other keys are removed after a successful build

CACHE_ENV = "NDU_VM_CACHE"
MIRROR_ENV = "NDU_VM_MIRROR"
HOST_TOOLS = {  # tool -> Debian package that provides it (vm/setup-host installs them)
    "debootstrap": "debootstrap",
    "cpio": "cpio",
    "zstd": "zstd",
    "depmod": "kmod",
    "dpkg-deb": "dpkg",
    "chroot": "coreutils",
}


class BuildError(RuntimeError):
    """The image could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class Image:
    """A finished image in the cache."""

    directory: Path
    kernel: Path
    initrd: Path
    manifest: dict

    @classmethod
    def load(cls, directory: Path) -> Image:
        """Read a finished image directory (raises BuildError when it is incomplete)."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise BuildError(f"{directory} is not a finished image: {exc}") from exc
        image = cls(directory, directory / "vmlinuz", directory / manifest["initrd"], manifest)
        for path in (image.kernel, image.initrd):
            if not path.is_file():
                raise BuildError(f"{directory} is not a finished image: {path.name} is missing")
        return image


def log(message: str) -> None:
    """Progress goes to stderr; stdout is kept for the result."""
    print(f"vm.build: {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Where images are kept: $NDU_VM_CACHE, else the XDG cache directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nomad-device-usb" / "vm"


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The ``[project].dependencies`` of pyproject.toml: what the guest venv must hold."""
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def input_key() -> str:
    """A short hash of everything that decides what the image contains."""
    inputs = {
        "format": FORMAT,
        "suite": SUITE,
        "packages": PACKAGES,
        "kernel": KERNEL_META,
        "module_trees": MODULE_TREES,
        "modules": MODULES,
        "requirements": runtime_requirements(),
        "build.py": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "init": hashlib.sha256(INIT_SCRIPT.read_bytes()).hexdigest(),
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_host_tools() -> None:
    """Fail loudly, naming the package, when a tool the build needs is missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise BuildError(
            f"missing host packages: {' '.join(missing)}; run vm/setup-host "
            f"(or apt-get install {' '.join(missing)})"
        )
    if os.geteuid() != 0:
        raise BuildError("building the guest needs root (debootstrap and chroot)")


def run(argv: Sequence[str | Path], *, logfile: Path, cwd: Path | None = None) -> str:
    """Run a build step; its output goes to the build log, and its tail into the error on failure."""
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(map(str, argv))}\n")
        out.flush()
        proc = subprocess.run(
            [str(a) for a in argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, check=False,
        )
        out.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise BuildError(f"{argv[0]} failed with exit code {proc.returncode} (log: {logfile}):\n{tail}")
    return proc.stdout


@contextlib.contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """One build at a time per cache directory (two test runs may start together)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unmount_below(path: Path) -> None:
    """Undo mounts a failed debootstrap may have left in the work tree, so removing it is safe."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def remove_tree(path: Path) -> None:
    """Delete a work or old image directory (after making sure nothing is mounted inside it)."""
    if path.exists():
        unmount_below(path)
        shutil.rmtree(path)


def debootstrap(rootfs: Path, logfile: Path) -> None:
    """The minimal Debian rootfs with our packages."""
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, rootfs, mirror],
        logfile=logfile,
    )


def fetch_kernel(rootfs: Path, work: Path, logfile: Path) -> Path:
    """Download Debian's kernel package with the rootfs's apt and unpack it beside the rootfs.

    The package is not installed into the rootfs: that would pull in initramfs-tools and 400 MB
    of modules, of which the guest needs a few.
    """
    depends = run(["chroot", rootfs, "apt-cache", "depends", KERNEL_META], logfile=logfile)
    found = re.search(r"Depends:\s*(linux-image-\S+)", depends)
    if not found:
        raise BuildError(f"cannot tell which kernel {KERNEL_META} depends on:\n{depends}")
    package = found.group(1)
    run(["chroot", rootfs, "apt-get", "download", "-q", package], logfile=logfile)
    debs = list(rootfs.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise BuildError(f"apt-get download {package} left {len(debs)} packages in {rootfs}")
    unpacked = work / "kernel"
    run(["dpkg-deb", "-x", debs[0], unpacked], logfile=logfile)
    debs[0].unlink()
    return unpacked


def module_name(path: str) -> str:
    """kernel/drivers/usb/serial/ftdi_sio.ko.xz -> ftdi_sio (modprobe treats - and _ alike)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def select_modules(modules_dir: Path) -> set[str]:
    """Relative paths of the modules the guest gets: MODULE_TREES plus MODULES and their dependencies."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        deps[target] = rest.split()
    by_name = {module_name(path): path for path in deps}
    wanted = [path for path in deps if path.startswith(tuple(t + "/" for t in MODULE_TREES))]
    builtin = (modules_dir / "modules.builtin").read_text().split()
    builtin_names = {module_name(path) for path in builtin}
    for name in MODULES:
        if name in by_name:
            wanted.append(by_name[name])
        elif name not in builtin_names:
            raise BuildError(f"kernel module {name} is neither a module nor built in")
    chosen: set[str] = set()
    while wanted:
        path = wanted.pop()
        if path not in chosen:
            chosen.add(path)
            wanted.extend(deps[path])
    return chosen


def install_kernel(unpacked: Path, rootfs: Path, image_dir: Path, logfile: Path) -> dict:
    """Copy vmlinuz out, and the chosen modules into the rootfs; then depmod."""
    vmlinuz = sorted((unpacked / "boot").glob("vmlinuz-*"))
    if len(vmlinuz) != 1:
        raise BuildError(f"expected one vmlinuz in the kernel package, found {vmlinuz}")
    release = vmlinuz[0].name.removeprefix("vmlinuz-")
    shutil.copy2(vmlinuz[0], image_dir / "vmlinuz")
    config = (unpacked / "boot" / f"config-{release}").read_text()
    source = unpacked / "lib" / "modules" / release
    target = rootfs / "usr" / "lib" / "modules" / release
    # The package leaves modules.dep to its postinst; make it here to follow dependencies.
    run(["depmod", "-b", unpacked, release], logfile=logfile)
    chosen = select_modules(source)
    for rel in sorted(chosen):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (source / meta).exists():
            shutil.copy2(source / meta, target / meta)
    run(["depmod", "-b", rootfs, release], logfile=logfile)
    return {
        "release": release,
        "modules": len(chosen),
        "zstd_initramfs": "CONFIG_RD_ZSTD=y" in config,
    }


def install_python(rootfs: Path, logfile: Path) -> dict[str, str]:
    """The venv the README tells users to make, with our runtime dependencies from PyPI wheels.

    The wheels are downloaded on the host (the guest has no network) for the guest's Python
    (Debian bookworm: CPython 3.11, glibc 2.36, x86_64) and installed inside the chroot.
    """
    requirements = runtime_requirements()
    run(["chroot", rootfs, "python3", "-m", "venv", VENV], logfile=logfile)
    wheels = rootfs / WHEELS.lstrip("/")
    wheels.mkdir(parents=True, exist_ok=True)
    run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
            "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
            "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            "--dest", wheels, *requirements,
        ],
        logfile=logfile,
    )
    run(
        [
            "chroot", rootfs, f"{VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-index", "--find-links", WHEELS, *requirements,
        ],
        logfile=logfile,
    )
    frozen = run(["chroot", rootfs, f"{VENV}/bin/pip", "freeze", "--all"], logfile=logfile)
    return dict(line.split("==", 1) for line in frozen.splitlines() if "==" in line)


def finish_rootfs(rootfs: Path) -> None:
    """Put /init in place, make mount points, drop what the guest never reads."""
    shutil.copy2(INIT_SCRIPT, rootfs / "init")
    (rootfs / "init").chmod(0o755)
    (rootfs / "mnt" / "host").mkdir(parents=True, exist_ok=True)
    for rel in PRUNE:
        target = rootfs / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            target.mkdir()
    # The kernel opens /dev/console before /init mounts devtmpfs: without the node, /init has no stdio.
    console = rootfs / "dev" / "console"
    if not console.exists():
        os.mknod(console, 0o600 | 0o020000, os.makedev(5, 1))


def pack_initramfs(rootfs: Path, output: Path, use_zstd: bool) -> None:
    """newc cpio of the whole rootfs, compressed with what the kernel can unpack."""
    compressor = ["zstd", "-q", "-T0", "-6"] if use_zstd else ["gzip", "-6"]
    with output.open("wb") as out:
        find = subprocess.Popen(["find", ".", "-mindepth", "1", "-print0"], cwd=rootfs, stdout=subprocess.PIPE)
        cpio = subprocess.Popen(
            ["cpio", "--null", "--create", "--format=newc", "--quiet"],
            cwd=rootfs, stdin=find.stdout, stdout=subprocess.PIPE,
        )
        assert find.stdout is not None and cpio.stdout is not None
        find.stdout.close()  # cpio holds the pipe now; find gets SIGPIPE if cpio dies
        squeeze = subprocess.Popen(compressor, stdin=cpio.stdout, stdout=out)
        cpio.stdout.close()
        codes = (squeeze.wait(), cpio.wait(), find.wait())
    if any(codes):
        raise BuildError(f"packing the initramfs failed (find/cpio/{compressor[0]} exit codes {codes[::-1]})")


def tree_size(path: Path) -> int:
    """Bytes in regular files below path."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build(work: Path) -> dict:
    """Every step of a cold build into the (empty) work directory; returns the manifest."""
    logfile = work / "build.log"
    rootfs = work / "rootfs"
    timings: dict[str, float] = {}
    manifest: dict = {"suite": SUITE, "packages": PACKAGES, "venv": VENV, "timings": timings}

    def step(name: str, started: float) -> None:
        timings[name] = round(time.monotonic() - started, 1)
        log(f"{name}: {timings[name]} s")

    started = time.monotonic()
    debootstrap(rootfs, logfile)
    step("debootstrap", started)

    started = time.monotonic()
    unpacked = fetch_kernel(rootfs, work, logfile)
    manifest["kernel"] = install_kernel(unpacked, rootfs, work, logfile)
    remove_tree(unpacked)
    step("kernel", started)

    started = time.monotonic()
    manifest["python_packages"] = install_python(rootfs, logfile)
    step("python", started)

    started = time.monotonic()
    finish_rootfs(rootfs)
    manifest["rootfs_bytes"] = tree_size(rootfs)
    use_zstd = manifest["kernel"]["zstd_initramfs"]
    manifest["initrd"] = "initrd.cpio.zst" if use_zstd else "initrd.cpio.gz"
    pack_initramfs(rootfs, work / manifest["initrd"], use_zstd)
    manifest["initrd_bytes"] = (work / manifest["initrd"]).stat().st_size
    remove_tree(rootfs)
    step("pack", started)
    return manifest


def prune_cache(root: Path, keep: Path) -> None:
    """Keep the newest KEEP_IMAGES images (always the one just used) and drop abandoned work dirs."""
    images = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").exists() and p != keep),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )
    for old in images[KEEP_IMAGES - 1:]:
        log(f"removing old image {old.name}")
        remove_tree(old)
    for partial in root.glob("*.partial"):
        log(f"removing abandoned work directory {partial.name}")
        remove_tree(partial)


def ensure_image(force: bool = False) -> Image:
    """The image for the current inputs: from the cache, or built now (cold: a couple of minutes)."""
    root = cache_root()
    key = input_key()
    final = root / key
    with cache_lock(root):
        if final.exists() and not force:
            with contextlib.suppress(BuildError):
                image = Image.load(final)
                os.utime(final)  # mark as recently used for prune_cache
                log(f"cached image {final}")
                return image
        check_host_tools()
        work = root / f"{key}.partial"
        remove_tree(work)
        work.mkdir(parents=True)
        log(f"building image {key} in {work} (log: {work / 'build.log'})")
        started = time.monotonic()
        try:
            manifest = build(work)
        except BaseException:
            unmount_below(work)
            raise
        manifest["key"] = key
        manifest["build_seconds"] = round(time.monotonic() - started, 1)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        remove_tree(final)
        work.rename(final)
        log(f"built {final} in {manifest['build_seconds']} s")
        prune_cache(root, keep=final)
        return Image.load(final)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: build or reuse the image and print its directory."""
    parser = argparse.ArgumentParser(prog="python -m vm.build", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when a cached image exists")
    parser.add_argument("--key", action="store_true", help="print the input key and exit")
    args = parser.parse_args(argv)
    if args.key:
        print(input_key())
        return 0
    try:
        image = ensure_image(force=args.force)
    except BuildError as exc:
        print(f"vm.build: error: {exc}", file=sys.stderr)
        return 1
    print(image.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
