"""Benchmarks of nomad-device-usb against two baselines, run with ``python -m benchmarks``.

The real plugin executable runs in umockdev worlds and is driven over the real gRPC wire (plugin.host),
as a Nomad agent drives it. The two baselines (benchmarks.baselines) are the ways generic device plugins
usually find devices: re-enumerate everything on a timer, or on every udev event. Numbers are printed,
never asserted; tests/process/test_benchmarks_smoke.py only checks that a tiny run produces complete results.
"""
