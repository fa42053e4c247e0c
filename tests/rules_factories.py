"""Plain UsbDevice records for rules tests: ``make_device(**overrides)`` and a few real-world devices."""

from __future__ import annotations

from typing import Any

from discovery.model import Child, Interface, UsbDevice, frozen_mapping


def make_child(subsystem: str, sys_name: str, node: str | None = None, **overrides: Any) -> Child:
    """A child node of a device (tty, hidraw, ...); ``node`` defaults to /dev/<sys_name>."""
    fields: dict[str, Any] = {
        "subsystem": subsystem,
        "sys_path": f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/{subsystem}/{sys_name}",
        "sys_name": sys_name,
        "device_node": node if node is not None else f"/dev/{sys_name}",
        "interface_number": 0,
    }
    fields.update(overrides)
    return Child(**fields)


def make_device(**overrides: Any) -> UsbDevice:
    """A Pixel-7-like device on port 1-2; any UsbDevice field can be overridden.

    ``properties`` and ``attributes`` may be given as plain dicts.
    """
    fields: dict[str, Any] = {
        "sys_path": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2",
        "sys_name": "1-2",
        "vendor_id": 0x18D1,
        "product_id": 0x4EE7,
        "busnum": 1,
        "devnum": 5,
        "port_path": "pci-0000:00:14.0-usb-0:2",
        "serial": "1A2B3C4D",
        "manufacturer": "Google",
        "product": "Pixel 7",
        "device_class": 0x00,
        "device_node": "/dev/bus/usb/001/005",
        "driver": "usb",
        "interfaces": (
            Interface(0, 0x06, 0x01, 0x01, driver=None, sys_name="1-2:1.0"),  # MTP
            Interface(1, 0xFF, 0x42, 0x01, driver=None, sys_name="1-2:1.1"),  # adb
        ),
        "children": (),
        "properties": {"ID_MODEL": "Pixel_7", "ID_VENDOR": "Google", "ID_SERIAL_SHORT": "1A2B3C4D"},
        "attributes": {"bcdDevice": "0440", "speed": "480"},
    }
    fields.update(overrides)
    fields["properties"] = frozen_mapping(fields["properties"])
    fields["attributes"] = frozen_mapping(fields["attributes"])
    return UsbDevice(**fields)


def serial_adapter(driver: str, tty: str, **overrides: Any) -> UsbDevice:
    """A USB-serial adapter with one vendor-specific interface bound to ``driver`` and a tty child."""
    fields: dict[str, Any] = {
        "sys_name": "1-3",
        "sys_path": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3",
        "port_path": "pci-0000:00:14.0-usb-0:3",
        "serial": "A50285BI",
        "manufacturer": "Vendor",
        "product": "Serial",
        "interfaces": (Interface(0, 0xFF, 0xFF, 0xFF, driver=driver, sys_name="1-3:1.0"),),
        "children": (make_child("tty", tty),),
        "properties": {},
        "attributes": {},
    }
    fields.update(overrides)
    return make_device(**fields)


def pixel_7(**overrides: Any) -> UsbDevice:
    return make_device(**overrides)


def ft232r(**overrides: Any) -> UsbDevice:
    fields = {"vendor_id": 0x0403, "product_id": 0x6001, "product": "FT232R USB UART"} | overrides
    return serial_adapter("ftdi_sio", "ttyUSB0", **fields)


def cp210x(**overrides: Any) -> UsbDevice:
    fields = {"vendor_id": 0x10C4, "product_id": 0xEA60, "product": "CP2102 USB to UART Bridge Controller"}
    return serial_adapter("cp210x", "ttyUSB1", **(fields | overrides))


def ch340(**overrides: Any) -> UsbDevice:
    fields = {"vendor_id": 0x1A86, "product_id": 0x7523, "product": "USB Serial", "serial": None}
    return serial_adapter("ch341", "ttyUSB2", **(fields | overrides))


def arduino_uno(**overrides: Any) -> UsbDevice:
    fields: dict[str, Any] = {
        "vendor_id": 0x2341,
        "product_id": 0x0043,
        "interfaces": (
            Interface(0, 0x02, 0x02, 0x01, driver="cdc_acm", sys_name="1-3:1.0"),
            Interface(1, 0x0A, 0x00, 0x00, driver="cdc_acm", sys_name="1-3:1.1"),
        ),
        "children": (make_child("tty", "ttyACM0"),),
        "device_class": 0x02,
        "manufacturer": "Arduino (www.arduino.cc)",
        "product": None,
        "serial": "85736323838351F0E1C1",
    }
    fields.update(overrides)
    return serial_adapter("cdc_acm", "ttyACM0", **fields)


def stlink_v2_1(**overrides: Any) -> UsbDevice:
    fields: dict[str, Any] = {
        "vendor_id": 0x0483,
        "product_id": 0x374B,
        "interfaces": (
            Interface(0, 0xFF, 0xFF, 0xFF, driver=None, sys_name="1-4:1.0"),
            Interface(1, 0x08, 0x06, 0x50, driver="usb-storage", sys_name="1-4:1.1"),
            Interface(2, 0x02, 0x02, 0x01, driver="cdc_acm", sys_name="1-4:1.2"),
        ),
        "children": (make_child("tty", "ttyACM1"), make_child("block", "sdb")),
        "product": "STM32 STLink",
        "serial": "0671FF485550755187121723",
    }
    fields.update(overrides)
    return serial_adapter("cdc_acm", "ttyACM1", **fields)


def yubikey_5(**overrides: Any) -> UsbDevice:
    fields: dict[str, Any] = {
        "vendor_id": 0x1050,
        "product_id": 0x0407,
        "interfaces": (
            Interface(0, 0x03, 0x01, 0x01, driver="usbhid", sys_name="1-5:1.0"),  # OTP (keyboard)
            Interface(1, 0x03, 0x00, 0x00, driver="usbhid", sys_name="1-5:1.1"),  # FIDO
            Interface(2, 0x0B, 0x00, 0x00, driver=None, sys_name="1-5:1.2"),  # CCID
        ),
        "children": (make_child("hidraw", "hidraw0"), make_child("hidraw", "hidraw1")),
        "manufacturer": "Yubico",
        "product": "YubiKey OTP+FIDO+CCID",
        "serial": None,
    }
    fields.update(overrides)
    return serial_adapter("usbhid", "unused", **fields)


def keyboard(**overrides: Any) -> UsbDevice:
    fields: dict[str, Any] = {
        "vendor_id": 0x0627,
        "product_id": 0x0001,
        "interfaces": (Interface(0, 0x03, 0x01, 0x01, driver="usbhid", sys_name="1-6:1.0"),),
        "children": (make_child("hidraw", "hidraw5"),),
        "product": "USB Keyboard",
        "serial": None,
    }
    fields.update(overrides)
    return serial_adapter("usbhid", "unused", **fields)


def root_hub(**overrides: Any) -> UsbDevice:
    fields: dict[str, Any] = {
        "vendor_id": 0x1D6B,
        "product_id": 0x0002,
        "sys_name": "usb1",
        "sys_path": "/sys/devices/pci0000:00/0000:00:14.0/usb1",
        "port_path": "pci-0000:00:14.0",
        "device_class": 0x09,
        "serial": "0000:00:14.0",
        "interfaces": (Interface(0, 0x09, 0x00, 0x00, driver="hub", sys_name="usb1:1.0"),),
        "children": (),
        "driver": "usb",
        "properties": {},
        "attributes": {},
    }
    fields.update(overrides)
    return make_device(**fields)
