"""The Nomad side of nomad-device-usb: the go-plugin server and its services, config and builders, and the CLI."""

# Keep equal to [project].version in pyproject.toml; PluginInfo reports it.
__version__ = "0.1.0"
