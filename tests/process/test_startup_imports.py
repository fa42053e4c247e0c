"""What the plugin loads before its handshake line, and what it leaves for after (start-up time)."""

from __future__ import annotations

import os
import subprocess
import sys

from cli_support import ROOT

from plugin.plugin_mode import FIRST_USE_MODULES


def test_handshake_waits_for_grpc_and_the_protos_only() -> None:
    """Importing plugin mode, the server and the servicers loads no discovery, no pyudev, no YAML, no config decoder."""
    code = (
        "import sys\n"
        "import plugin.plugin_mode, plugin.runtime, plugin.server, plugin.services\n"
        "late = ('discovery.loop.watcher', 'discovery.state.table', 'discovery.sources.udev', 'discovery.rules.loader',\n"
        "        'plugin.fingerprint', 'plugin.stats', 'pyudev', 'yaml', 'discovery.model', 'plugin.config',\n"
        "        'plugin.schema', 'msgpack')\n"
        "print('EARLY', 'grpc' in sys.modules, sorted(m for m in late if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "EARLY True []"


def test_first_use_modules_all_import() -> None:
    """Every module loaded in the background after the handshake exists and imports."""
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in FIRST_USE_MODULES)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
