#!/usr/bin/env python3
"""Regenerate (or check) the Python modules generated from proto/*.proto.

Usage, from anywhere:

    python scripts/gen_protos.py            # rewrite proto/*_pb2.py, *_pb2_grpc.py, *_pb2.pyi
    python scripts/gen_protos.py --check    # exit 1 if the committed modules are stale

Why a pinned generator: generated code embeds the version of the generator that
made it, and the runtime refuses (or warns about) generated code that is newer
than itself. We generate with grpcio-tools GENERATOR_VERSION (protoc 26.1,
protobuf Python 5.26.1), whose output carries no runtime version check and
loads on every protobuf from 5.26.1 up (checked on 5.26.1, 5.29, 6.33, 7.36) and
on grpcio from 1.63.2 up. Any other grpcio-tools would produce different bytes.

Where the generator comes from, first match wins:
  1. --generator-python PATH (an interpreter that has the pinned grpcio-tools);
  2. this interpreter, if its grpcio-tools is exactly the pinned version;
  3. a private virtualenv under .cache/ in the repository, created on first use
     with `pip install grpcio-tools==GENERATOR_VERSION` (needs the package index).
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
GENERATOR_VERSION = "1.63.2"
# The protobuf Python version that GENERATOR_VERSION's protoc writes into each
# module header; tests check the committed modules against it.
GENCODE_PROTOBUF_VERSION = "5.26.1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")
CACHE_VENV = REPO_ROOT / ".cache" / f"protogen-grpcio-tools-{GENERATOR_VERSION}"


class GeneratorError(Exception):
    """The pinned generator could not be found, installed or run."""


def proto_sources() -> list[str]:
    """Return the .proto files as repo-relative paths, the form protoc records."""
    return sorted(p.relative_to(REPO_ROOT).as_posix() for p in PROTO_DIR.glob("*.proto"))


def is_generated(path: Path) -> bool:
    """Tell whether a file in proto/ is generator output (as opposed to a source)."""
    return path.name.endswith(GENERATED_SUFFIXES)


def installed_grpc_tools_version(python: str) -> str | None:
    """Return the grpcio-tools version importable by `python`, or None."""
    if python == sys.executable:
        try:
            return metadata.version("grpcio-tools")
        except metadata.PackageNotFoundError:
            return None
    probe = "from importlib import metadata; print(metadata.version('grpcio-tools'))"
    result = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def find_generator(explicit: str | None = None, *, install: bool = True) -> str:
    """Return an interpreter whose grpcio-tools is GENERATOR_VERSION.

    With install=False, return only what already exists (raise otherwise).
    """
    if explicit is not None:
        found = installed_grpc_tools_version(explicit)
        if found != GENERATOR_VERSION:
            raise GeneratorError(
                f"{explicit} has grpcio-tools {found}, need {GENERATOR_VERSION}"
            )
        return explicit
    if installed_grpc_tools_version(sys.executable) == GENERATOR_VERSION:
        return sys.executable
    venv_python = _venv_python(CACHE_VENV)
    if venv_python.exists() and installed_grpc_tools_version(str(venv_python)) == GENERATOR_VERSION:
        return str(venv_python)
    if not install:
        raise GeneratorError(f"grpcio-tools {GENERATOR_VERSION} is not available")
    print(
        f"gen_protos: installing grpcio-tools=={GENERATOR_VERSION} into {CACHE_VENV}",
        file=sys.stderr,
    )
    subprocess.run([sys.executable, "-m", "venv", str(CACHE_VENV)], check=True)
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--quiet",
         f"grpcio-tools=={GENERATOR_VERSION}"],
        check=True,
    )
    return str(venv_python)


def generate(out_root: Path, python: str) -> list[Path]:
    """Run protoc for every source into out_root/proto; return the files written.

    `-I.` from the repo root makes each file's import path `proto/<name>.proto`,
    so the generated modules import each other as `from proto import x_pb2`.
    `python -m grpc_tools.protoc` adds the well-known types to the include path.
    """
    (out_root / "proto").mkdir(parents=True, exist_ok=True)
    argv = [
        python, "-m", "grpc_tools.protoc", "-I.",
        f"--python_out={out_root}", f"--grpc_python_out={out_root}",
        f"--pyi_out={out_root}", *proto_sources(),
    ]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GeneratorError(f"protoc failed:\n{result.stderr}")
    return sorted(p for p in (out_root / "proto").iterdir() if is_generated(p))


def stale_files(fresh_dir: Path) -> list[str]:
    """Compare freshly generated files with proto/; return names that differ."""
    fresh = {p.name for p in fresh_dir.iterdir() if is_generated(p)}
    committed = {p.name for p in PROTO_DIR.iterdir() if is_generated(p)}
    differing = sorted(fresh ^ committed)
    for name in sorted(fresh & committed):
        if not filecmp.cmp(fresh_dir / name, PROTO_DIR / name, shallow=False):
            differing.append(name)
    return sorted(differing)


def write(fresh_dir: Path) -> None:
    """Replace the generated files in proto/ with the fresh ones."""
    for old in PROTO_DIR.iterdir():
        if is_generated(old):
            old.unlink()
    for new in fresh_dir.iterdir():
        if is_generated(new):
            (PROTO_DIR / new.name).write_bytes(new.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed generated modules are stale")
    parser.add_argument("--generator-python", metavar="PATH",
                        help=f"interpreter that has grpcio-tools=={GENERATOR_VERSION}")
    args = parser.parse_args(argv)

    try:
        python = find_generator(args.generator_python)
        with tempfile.TemporaryDirectory(prefix="gen-protos-") as tmp:
            generate(Path(tmp), python)
            fresh_dir = Path(tmp) / "proto"
            differing = stale_files(fresh_dir)
            if args.check:
                if differing:
                    print("stale generated modules: " + ", ".join(differing), file=sys.stderr)
                    print("run: python scripts/gen_protos.py", file=sys.stderr)
                    return 1
                return 0
            write(fresh_dir)
    except (GeneratorError, subprocess.CalledProcessError) as exc:
        print(f"gen_protos: {exc}", file=sys.stderr)
        return 2
    print(f"gen_protos: {len(differing)} file(s) updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
