"""The fake world for tests, the demo and the benchmarks: a umockdev testbed, fake USB devices, recordings.

Never imported by the plugin's or the CLI's own code paths (tests/unit/test_architecture.py checks).
"""
