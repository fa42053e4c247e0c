"""``python -m benchmarks [--quick] [--json] [--only NAME[,NAME]]``: run the benchmarks, print a table or JSON.

The process re-executes itself once under umockdev's preload library (``LD_PRELOAD`` only acts at
exec), because the "discovery alone" figures run our discovery code in this process, inside the
fake world. Everything else runs in child processes that get the preload through their env.
Progress goes to stderr; stdout carries only the table, or the JSON with ``--json`` (the table then
goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback

from discovery.fake.testbed import PRELOAD_SONAME, preload_library, preload_loaded

REEXEC_MARK = "NOMAD_USB_BENCH_REEXECED"


def _ensure_preload(argv: list[str]) -> None:
    """Re-exec this command under the preload unless it is loaded already (then raise the fd limit)."""
    if preload_loaded():
        # umockdev 0.17's preload leaks a socket per open() of a /dev path; give it room
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return
    library = preload_library()
    if os.environ.get(REEXEC_MARK) or not os.path.isabs(library):
        sys.exit(f"benchmarks: {PRELOAD_SONAME} cannot be loaded (install Debian's umockdev package)")
    from benchmarks.world import ROOT

    current = os.environ.get("LD_PRELOAD", "")
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, REEXEC_MARK: "1", "LD_PRELOAD": f"{library}:{current}" if current else library,
           "PYTHONPATH": f"{ROOT}:{path}" if path else str(ROOT)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *argv], env)


def compile_project() -> None:
    """Byte-compile our packages, as ``pip install`` does on a Nomad client.

    With PYTHONDONTWRITEBYTECODE set (as on the CI machine) every subject would otherwise compile
    each of our modules from source at every start, which a real installation never does.
    """
    import compileall

    from benchmarks.world import ROOT

    for package in ("benchmarks", "discovery", "plugin", "proto"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    from benchmarks.sections import BY_NAME

    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="Benchmarks of nomad-device-usb against two baselines.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes): the smoke test")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout (the table goes to stderr)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these sections (repeat or comma-separate): {', '.join(BY_NAME)}")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    args.names = names or list(BY_NAME)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)  # before the re-exec, so --help and mistakes answer at once
    _ensure_preload(argv)

    from benchmarks.plan import Plan, say
    from benchmarks.report import Section, machine, render_table
    from benchmarks.sections import BY_NAME

    compile_project()
    plan = Plan.quick_plan() if args.quick else Plan()
    meta = {**machine(), "quick": plan.quick, "poll_interval_s": plan.poll_interval, "debounce": plan.debounce}
    sections: list[Section] = []
    errors: dict[str, str] = {}
    started = time.monotonic()
    for name in args.names:
        module = BY_NAME[name]
        t0 = time.monotonic()
        try:
            section = module.run(plan)
        except Exception:  # one broken measurement must not hide the others' numbers
            errors[name] = traceback.format_exc()
            say(f"{name} FAILED:\n{errors[name]}")
            if plan.quick:
                break  # the smoke test wants the first failure, fast; the next sections would wait out theirs too
            continue
        section.seconds = time.monotonic() - t0
        sections.append(section)
        say(f"{name} done in {section.seconds:.1f} s")
    meta["total_seconds"] = round(time.monotonic() - started, 1)
    table = render_table(sections, meta)
    if args.json:
        result = {"meta": meta, "sections": {s.name: s.to_json() for s in sections}, "errors": errors}
        print(json.dumps(result, indent=2))
        print(table, file=sys.stderr)
    else:
        print(table)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
