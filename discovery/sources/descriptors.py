"""The USB descriptors a usb_device's binary ``descriptors`` file holds, parsed, and the sysfs text they stand for.

The kernel's ``descriptors`` attribute is the 18-byte device descriptor followed by the raw
descriptors of every configuration, in configuration-index order (each one ``wTotalLength``
bytes: the configuration descriptor, then interface, endpoint and class-specific descriptors).
One read of it gives what a dozen sysfs attributes (``idVendor``, ``bcdDevice``, ``version``,
``bNumInterfaces`` ...) give one file each; :func:`sysfs_text` formats the values exactly as the
kernel's attribute files print them (drivers/usb/core/sysfs.c), so a rule or template cannot tell
where a value came from. Pure parsing: no file access here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

DEVICE_DESCRIPTOR = 1
CONFIG_DESCRIPTOR = 2
INTERFACE_DESCRIPTOR = 4

_DEVICE = struct.Struct("<BBHBBBBHHHBBBB")  # 18 bytes
_CONFIG = struct.Struct("<BBHBBBBB")  # 9 bytes
_INTERFACE = struct.Struct("<BBBBBBBBB")  # 9 bytes
SUPERSPEED_MBPS = 5000.0  # from here on bMaxPower counts in 8 mA units instead of 2 mA


@dataclass(frozen=True)
class InterfaceDescriptor:
    """One interface descriptor (one alternate setting of one interface)."""

    number: int
    alternate: int
    interface_class: int
    interface_subclass: int
    interface_protocol: int


@dataclass(frozen=True)
class ConfigDescriptor:
    """One configuration: its header fields and the interface descriptors in it (every alternate setting)."""

    value: int  # bConfigurationValue
    num_interfaces: int
    attributes: int  # bmAttributes
    max_power: int  # bMaxPower, in the units of the device's speed (2 mA, or 8 mA from SuperSpeed on)
    configuration_index: int  # iConfiguration
    interfaces: tuple[InterfaceDescriptor, ...] = ()

    def interface(self, number: int) -> InterfaceDescriptor | None:
        """The setting the kernel makes current when it configures the device: alternate 0, else the first listed."""
        settings = [i for i in self.interfaces if i.number == number]
        return next((i for i in settings if i.alternate == 0), settings[0] if settings else None)


@dataclass(frozen=True)
class Descriptors:
    """The device descriptor's fields and every complete configuration found after it."""

    bcd_usb: int
    device_class: int
    device_subclass: int
    device_protocol: int
    max_packet_size0: int
    vendor_id: int
    product_id: int
    bcd_device: int
    manufacturer_index: int
    product_index: int
    serial_index: int
    num_configurations: int
    configs: tuple[ConfigDescriptor, ...] = ()

    def config(self, value: int) -> ConfigDescriptor | None:
        """The configuration whose bConfigurationValue is ``value``, when it was complete in the file."""
        return next((c for c in self.configs if c.value == value), None)


def parse_descriptors(blob: bytes | None) -> Descriptors | None:
    """Parse a ``descriptors`` file; None when even the device descriptor is missing or malformed.

    A configuration cut short (a truncated file) and everything after it are left out, so what is
    returned is always complete; callers read the sysfs attribute for anything not here.
    """
    if blob is None or len(blob) < _DEVICE.size:
        return None
    (length, kind, bcd_usb, cls, subclass, protocol, packet0, vendor, product, bcd_device,
     i_manufacturer, i_product, i_serial, num_configs) = _DEVICE.unpack_from(blob)
    if length != _DEVICE.size or kind != DEVICE_DESCRIPTOR:
        return None
    configs = []
    offset = _DEVICE.size
    while offset + _CONFIG.size <= len(blob):
        config, offset = _parse_config(blob, offset)
        if config is None:
            break
        configs.append(config)
    return Descriptors(bcd_usb, cls, subclass, protocol, packet0, vendor, product, bcd_device,
                       i_manufacturer, i_product, i_serial, num_configs, tuple(configs))


def _parse_config(blob: bytes, offset: int) -> tuple[ConfigDescriptor | None, int]:
    """One configuration at ``offset`` and the offset after it; (None, offset) if incomplete or malformed."""
    length, kind, total, num_interfaces, value, i_config, attributes, max_power = _CONFIG.unpack_from(blob, offset)
    end = offset + total
    if kind != CONFIG_DESCRIPTOR or length < _CONFIG.size or total < length or end > len(blob):
        return None, offset
    interfaces = []
    at = offset + length
    while at + 2 <= end:
        sub_length, sub_kind = blob[at], blob[at + 1]
        if sub_length < 2 or at + sub_length > end:
            return None, offset  # a descriptor running past its configuration: not trustworthy
        if sub_kind == INTERFACE_DESCRIPTOR and sub_length >= _INTERFACE.size:
            _, _, number, alternate, _, i_cls, i_sub, i_proto, _ = _INTERFACE.unpack_from(blob, at)
            interfaces.append(InterfaceDescriptor(number, alternate, i_cls, i_sub, i_proto))
        at += sub_length
    return ConfigDescriptor(value, num_interfaces, attributes, max_power, i_config, tuple(interfaces)), end


def sysfs_text(descriptors: Descriptors, config: ConfigDescriptor | None, speed_mbps: float | None) -> dict[str, str]:
    """The usb_device attributes these descriptors give, as the kernel prints them (surrounding blanks stripped).

    ``config`` is the active configuration (None: the configuration attributes are left out, the
    caller reads them); ``speed_mbps`` sets the unit of bMaxPower (left out when unknown).
    """
    d = descriptors
    text = {
        "idVendor": f"{d.vendor_id:04x}",
        "idProduct": f"{d.product_id:04x}",
        "bcdDevice": f"{d.bcd_device:04x}",
        "bDeviceClass": f"{d.device_class:02x}",
        "bDeviceSubClass": f"{d.device_subclass:02x}",
        "bDeviceProtocol": f"{d.device_protocol:02x}",
        "bMaxPacketSize0": f"{d.max_packet_size0}",
        "bNumConfigurations": f"{d.num_configurations}",
        "version": f"{d.bcd_usb >> 8:x}.{d.bcd_usb & 0xFF:02x}",  # "%2x.%02x", leading blank stripped
    }
    if config is not None:
        text["bNumInterfaces"] = f"{config.num_interfaces}"
        text["bConfigurationValue"] = f"{config.value}"
        text["bmAttributes"] = f"{config.attributes:x}"
        if speed_mbps is not None:
            unit = 8 if speed_mbps >= SUPERSPEED_MBPS else 2
            text["bMaxPower"] = f"{config.max_power * unit}mA"
    return text
