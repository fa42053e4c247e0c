"""Which device source this machine gets: the plugin and the CLI both ask here."""

from __future__ import annotations

from discovery.sources.base import DeviceSource


def default_source() -> DeviceSource:
    """udev when it is there (events, no polling); otherwise the pyusb fallback that rescans."""
    from discovery.sources.udev import UdevSource, udev_available

    if udev_available():
        return UdevSource()
    from discovery.sources.usbfs import UsbfsSource

    return UsbfsSource()
