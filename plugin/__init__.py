"""Nomad side of nomad-device-usb: the go-plugin server and the gRPC services."""

# Keep equal to [project].version in pyproject.toml; PluginInfo reports it.
__version__ = "0.1.0"
