"""Is this process run by a plugin host? go-plugin's magic cookie, and what a person running it by hand is told.

Kept apart from ``plugin.handshake`` (which re-exports all of it) so that the executable's first
decision, plugin mode or CLI, imports nothing: the CLI's ``--help`` starts as fast as Python does.
"""

from __future__ import annotations

from collections.abc import Mapping

MAGIC_COOKIE_KEY = "NOMAD_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255"

NOT_A_PROGRAM_MESSAGE = """\
nomad-device-usb: this executable is a Nomad device plugin.

It is started by a Nomad client agent, which finds it in the agent's
plugin_dir (with a matching plugin "nomad-device-usb" block in the agent
configuration); it is not meant to be run by hand like this.

The same executable also has command-line subcommands for people:
  nomad-device-usb --help
"""


def check_cookie(environ: Mapping[str, str]) -> bool:
    """Tell whether the Nomad magic cookie is present and exact."""
    return environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE
