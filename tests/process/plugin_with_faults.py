"""The real plugin executable, its udev source wrapped so that a share of its calls fail (fault-injection tests).

Run as the plugin is (go-plugin's environment, a umockdev world); NDU_FAULT_RATE (0..1) and
NDU_FAULT_SEED choose how often and in which order calls fail (discovery/fake/faults.py). Without
go-plugin's cookie it behaves as the real executable does and explains itself.
"""

from __future__ import annotations

import os
import sys

from discovery.fake.faults import FAULT_RATE_ENV, FAULT_SEED_ENV, FaultySource
from discovery.sources.default import default_source
from plugin.handshake import check_cookie
from plugin.main import main
from plugin.plugin_mode import run

if __name__ == "__main__":
    if not check_cookie(os.environ):
        sys.exit(main())
    rate = float(os.environ.get(FAULT_RATE_ENV, "0"))
    seed = int(os.environ.get(FAULT_SEED_ENV, "0"))
    run(lambda: FaultySource(default_source(), rate=rate, seed=seed))
