"""Fake USB devices as plain data, and how the kernel and udev would describe them in sysfs.

A :class:`FakeUsbDevice` says what a device *is* (ids, strings, port, interfaces, tty/hidraw
children). :meth:`FakeUsbDevice.records` turns it into the :class:`DeviceRecord` list a real
kernel plus udev would show (attributes formatted like the kernel's, ID_* properties like udev's
usb_id and path_id builtins, /dev/serial/by-id links like 60-serial.rules), parents first.
``discovery.fake.testbed`` writes those records; nothing here touches the file system.

The ``make_*`` factories return realistic devices; every field can be overridden.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from discovery.fake.recording import DeviceRecord

EMPTY: Mapping[str, str] = MappingProxyType({})

# Added to every fake node's minor number. libudev also reads the *real* /run/udev/data/c<maj>:<min>
# (umockdev does not redirect /run), so on a machine with udevd a fake node with a real minor
# could pick up a real device's properties. No real device has a minor this high.
FAKE_MINOR_OFFSET = 65536

USB_DEVICE_MAJOR = 189
TTY_USB_MAJOR = 188
TTY_ACM_MAJOR = 166
HIDRAW_MAJOR = 240  # dynamic on real systems; 240 is what Debian usually gets

DEFAULT_CONTROLLER = "/devices/pci0000:00/0000:00:14.0"

# udev keeps these characters in ID_VENDOR/ID_MODEL/ID_SERIAL; encode_devnode_name keeps them too.
_UDEV_SAFE = frozenset("#+-.:=@_")


def _udev_sanitize(text: str) -> str:
    """What udev's usb_id does to a USB string: whitespace runs -> '_', other odd chars -> '_'."""
    collapsed = "_".join(text.split())
    return "".join(ch if ch.isalnum() or ch in _UDEV_SAFE else "_" for ch in collapsed)


def _udev_encode(text: str) -> str:
    """udev's ID_*_ENC form: bytes outside [A-Za-z0-9#+-.:=@_] and non-ASCII kept, others \\xHH."""
    return "".join(ch if (ch.isalnum() and ch.isascii()) or ch in _UDEV_SAFE or not ch.isascii()
                   else f"\\x{ord(ch):02x}" for ch in text)


def _path_tag(id_path: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in id_path)


@dataclass(frozen=True)
class FakeVia:
    """A device between an interface and its node: the usb-serial port of ttyUSB0, the hid device of hidraw0."""

    subsystem: str  # "usb-serial", "hid"
    name: str  # "ttyUSB0", "0003:1050:0407.0001"
    driver: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeChild:
    """A class device below an interface: tty, hidraw, net, ... (``major=None``: no device node)."""

    subsystem: str
    name: str  # "ttyUSB0"
    major: int | None = None
    minor: int = 0  # as the kernel numbers it; FAKE_MINOR_OFFSET is added when written
    devname: str | None = None  # node name below /dev when it is not ``name`` ("input/event5")
    via: FakeVia | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeInterface:
    """One interface (``1-2:1.0``) with the driver bound to it and the class devices it made."""

    number: int
    interface_class: int
    subclass: int = 0
    protocol: int = 0
    driver: str | None = None
    children: tuple[FakeChild, ...] = ()
    num_endpoints: int = 2


@dataclass(frozen=True)
class FakeUsbDevice:
    """A USB device as plugged into a port; ``port`` is the kernel name (``1-2.3``: bus 1, port 2, hub port 3).

    ``speed`` is what the kernel's ``speed`` attribute says (``"1.5"``, ``"12"``, ``"480"``,
    ``"5000"``); ``version`` is bcdUSB as ``"2.00"``. ``devnum`` changes on every replug:
    ``dataclasses.replace(dev, devnum=dev.devnum + 1)`` is the same device plugged again.
    """

    vendor_id: int
    product_id: int
    port: str = "1-1"
    devnum: int = 2
    serial: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    speed: str = "480"
    version: str = "2.00"
    bcd_device: int = 0x0100
    device_class: int = 0
    device_subclass: int = 0
    device_protocol: int = 0
    max_power_ma: int = 100
    maxchild: int = 0
    removable: str = "removable"
    interfaces: tuple[FakeInterface, ...] = ()
    controller: str = DEFAULT_CONTROLLER  # sysfs path of the host controller
    properties: Mapping[str, str] = field(default_factory=dict)  # extra udev properties (ID_VENDOR_FROM_DATABASE=...)
    attributes: Mapping[str, str] = field(default_factory=dict)  # extra sysfs attributes

    @property
    def busnum(self) -> int:
        return int(self.port.split("-", 1)[0])

    @property
    def is_root_hub(self) -> bool:
        return self.port.endswith("-0")

    @property
    def sys_name(self) -> str:
        return f"usb{self.busnum}" if self.is_root_hub else self.port

    @property
    def devpath(self) -> str:
        """sysfs path without /sys: controller/usbN/1-2/1-2.3 for port 1-2.3 (controller/usbN for N-0)."""
        bus, _, ports = self.port.partition("-")
        if self.is_root_hub:
            return f"{self.controller}/usb{bus}"
        chain = ports.split(".")
        names = [f"{bus}-{'.'.join(chain[:i + 1])}" for i in range(len(chain))]
        return f"{self.controller}/usb{bus}/" + "/".join(names)

    @property
    def sys_path(self) -> str:
        return "/sys" + self.devpath

    @property
    def minor(self) -> int:
        """The usb_device node's minor: the kernel's (bus-1)*128 + devnum-1, moved out of real range."""
        return FAKE_MINOR_OFFSET + (self.busnum - 1) * 128 + self.devnum - 1

    @property
    def id_path(self) -> str:
        """udev path_id for this port: ``pci-0000:00:14.0-usb-0:2.3``."""
        pci = self.controller.rstrip("/").rsplit("/", 1)[-1]
        if self.is_root_hub:
            return f"pci-{pci}"
        return f"pci-{pci}-usb-0:{self.port.partition('-')[2]}"

    def descriptors(self) -> bytes:
        """Device + configuration + interface descriptors, as the ``descriptors`` attribute holds them."""
        major, _, minor = self.version.partition(".")
        bcd_usb = (int(major) << 8) | int(minor or "0", 16)
        strings = [self.manufacturer, self.product, self.serial]
        idx = [i + 1 if s is not None else 0 for i, s in enumerate(strings)]
        device = struct.pack("<BBHBBBBHHHBBBB", 18, 1, bcd_usb, self.device_class, self.device_subclass,
                             self.device_protocol, 64, self.vendor_id, self.product_id, self.bcd_device,
                             idx[0], idx[1], idx[2], 1)
        ifaces = b"".join(struct.pack("<BBBBBBBBB", 9, 4, i.number, 0, 0, i.interface_class, i.subclass,
                                      i.protocol, 0) for i in self.interfaces)
        config = struct.pack("<BBHBBBBB", 9, 2, 9 + len(ifaces), len(self.interfaces), 1, 0, 0x80,
                             min(self.max_power_ma // 2, 255))
        return device + config + ifaces

    def udev_ids(self) -> dict[str, str]:
        """The ID_* properties udev's usb_id builtin derives from the device's strings."""
        vendor = _udev_sanitize(self.manufacturer) if self.manufacturer else f"{self.vendor_id:04x}"
        model = _udev_sanitize(self.product) if self.product else f"{self.product_id:04x}"
        ids = {
            "ID_VENDOR": vendor,
            "ID_VENDOR_ENC": _udev_encode(self.manufacturer) if self.manufacturer else vendor,
            "ID_VENDOR_ID": f"{self.vendor_id:04x}",
            "ID_MODEL": model,
            "ID_MODEL_ENC": _udev_encode(self.product) if self.product else model,
            "ID_MODEL_ID": f"{self.product_id:04x}",
            "ID_REVISION": f"{self.bcd_device:04x}",
            "ID_SERIAL": f"{vendor}_{model}",
        }
        if self.serial is not None:
            ids["ID_SERIAL"] += f"_{_udev_sanitize(self.serial)}"
            ids["ID_SERIAL_SHORT"] = _udev_sanitize(self.serial)
        ids["ID_BUS"] = "usb"
        seen: list[str] = []
        for iface in self.interfaces:
            triple = f"{iface.interface_class:02x}{iface.subclass:02x}{iface.protocol:02x}"
            if triple not in seen:
                seen.append(triple)
        ids["ID_USB_INTERFACES"] = ":" + "".join(t + ":" for t in seen)
        return ids

    def records(self) -> list[DeviceRecord]:
        """What the kernel and udev show for this device: usb_device, interfaces, then children."""
        return _device_records(self)


def _depth_dots(devpath: str) -> str:
    """``../`` enough times to climb from a device dir to /sys."""
    return "../" * devpath.strip("/").count("/") + "../"


def _attrs(values: Mapping[str, str | bytes]) -> dict[str, bytes]:
    return {k: (v.encode() if isinstance(v, str) else v) for k, v in values.items()}


def _device_records(dev: FakeUsbDevice) -> list[DeviceRecord]:
    devpath = dev.devpath
    bus = dev.busnum
    devname = f"bus/usb/{bus:03d}/{dev.devnum:03d}"
    product_prop = f"{dev.vendor_id:x}/{dev.product_id:x}/{dev.bcd_device:x}"
    type_prop = f"{dev.device_class}/{dev.device_subclass}/{dev.device_protocol}"
    ids = dev.udev_ids()
    props = {
        "DEVNAME": "/dev/" + devname,
        "DEVTYPE": "usb_device",
        "DRIVER": "usb",
        "PRODUCT": product_prop,
        "TYPE": type_prop,
        "BUSNUM": f"{bus:03d}",
        "DEVNUM": f"{dev.devnum:03d}",
        "MAJOR": str(USB_DEVICE_MAJOR),
        "MINOR": str(dev.minor),
        "SUBSYSTEM": "usb",
        **ids,
        "ID_PATH": dev.id_path,
        "ID_PATH_TAG": _path_tag(dev.id_path),
        **dev.properties,
    }
    vmajor, _, vminor = dev.version.partition(".")
    descriptors = dev.descriptors()
    attrs: dict[str, str | bytes] = {
        "authorized": "1\n",
        "bConfigurationValue": "1\n",
        "bDeviceClass": f"{dev.device_class:02x}\n",
        "bDeviceProtocol": f"{dev.device_protocol:02x}\n",
        "bDeviceSubClass": f"{dev.device_subclass:02x}\n",
        "bMaxPacketSize0": "64\n",
        "bMaxPower": f"{dev.max_power_ma}mA\n",
        "bNumConfigurations": "1\n",
        "bNumInterfaces": f"{len(dev.interfaces):2d}\n",
        "bcdDevice": f"{dev.bcd_device:04x}\n",
        "bmAttributes": "80\n",
        "busnum": f"{bus}\n",
        "descriptors": descriptors,
        "dev": f"{USB_DEVICE_MAJOR}:{dev.minor}\n",
        "devnum": f"{dev.devnum}\n",
        "devpath": f"{dev.port.partition('-')[2]}\n",
        "idProduct": f"{dev.product_id:04x}\n",
        "idVendor": f"{dev.vendor_id:04x}\n",
        "maxchild": f"{dev.maxchild}\n",
        "removable": f"{dev.removable}\n",
        "speed": f"{dev.speed}\n",
        "version": f"{int(vmajor):2d}.{vminor}\n",
    }
    for name, value in (("manufacturer", dev.manufacturer), ("product", dev.product), ("serial", dev.serial)):
        if value is not None:
            attrs[name] = value + "\n"
    attrs.update(dev.attributes)
    records = [DeviceRecord(
        devpath=devpath, properties=props, attributes=_attrs(attrs),
        links={"driver": _depth_dots(devpath) + "bus/usb/drivers/usb"},
        node=devname, node_contents=descriptors,
    )]
    for iface in dev.interfaces:
        records.extend(_interface_records(dev, iface, ids))
    return records


def _interface_records(dev: FakeUsbDevice, iface: FakeInterface, ids: Mapping[str, str]) -> list[DeviceRecord]:
    name = f"{dev.port}:1.{iface.number}"
    devpath = f"{dev.devpath}/{name}"
    id_path = f"{dev.id_path}:1.{iface.number}"
    modalias = (f"usb:v{dev.vendor_id:04X}p{dev.product_id:04X}d{dev.bcd_device:04X}"
                f"dc{dev.device_class:02X}dsc{dev.device_subclass:02X}dp{dev.device_protocol:02X}"
                f"ic{iface.interface_class:02X}isc{iface.subclass:02X}ip{iface.protocol:02X}in{iface.number:02X}")
    props = {"DEVTYPE": "usb_interface"}
    if iface.driver:
        props["DRIVER"] = iface.driver
    props.update({
        "PRODUCT": f"{dev.vendor_id:x}/{dev.product_id:x}/{dev.bcd_device:x}",
        "TYPE": f"{dev.device_class}/{dev.device_subclass}/{dev.device_protocol}",
        "INTERFACE": f"{iface.interface_class}/{iface.subclass}/{iface.protocol}",
        "MODALIAS": modalias,
        "SUBSYSTEM": "usb",
        "ID_PATH": id_path,
        "ID_PATH_TAG": _path_tag(id_path),
    })
    attrs = {
        "bAlternateSetting": " 0\n",
        "bInterfaceClass": f"{iface.interface_class:02x}\n",
        "bInterfaceNumber": f"{iface.number:02x}\n",
        "bInterfaceProtocol": f"{iface.protocol:02x}\n",
        "bInterfaceSubClass": f"{iface.subclass:02x}\n",
        "bNumEndpoints": f"{iface.num_endpoints:02x}\n",
        "modalias": modalias + "\n",
    }
    links = {"driver": _depth_dots(devpath) + f"bus/usb/drivers/{iface.driver}"} if iface.driver else {}
    records = [DeviceRecord(devpath=devpath, properties=props, attributes=_attrs(attrs), links=links)]
    for child in iface.children:
        records.extend(_child_records(devpath, id_path, iface, child, ids))
    return records


def _child_records(iface_path: str, iface_id_path: str, iface: FakeInterface, child: FakeChild,
                   ids: Mapping[str, str]) -> list[DeviceRecord]:
    records = []
    parent = iface_path
    if child.via is not None:
        via = child.via
        parent = f"{iface_path}/{via.name}"
        props = {**({"DRIVER": via.driver} if via.driver else {}), **via.properties, "SUBSYSTEM": via.subsystem}
        links = {"driver": _depth_dots(parent) + f"bus/{via.subsystem}/drivers/{via.driver}"} if via.driver else {}
        records.append(DeviceRecord(devpath=parent, properties=props, links=links))
    devpath = f"{parent}/{child.subsystem}/{child.name}"
    props = {}
    attrs: dict[str, str] = {}
    node = None
    symlinks: tuple[str, ...] = ()
    if child.major is not None:
        node = child.devname or child.name
        minor = child.minor + FAKE_MINOR_OFFSET
        props.update({"DEVNAME": "/dev/" + node, "MAJOR": str(child.major), "MINOR": str(minor)})
        attrs["dev"] = f"{child.major}:{minor}\n"
    props["SUBSYSTEM"] = child.subsystem
    if child.subsystem == "tty":
        # 60-serial.rules: usb_id's properties plus stable links by id and by path
        port_suffix = "-port0" if child.via is not None and child.via.subsystem == "usb-serial" else ""
        by_id = f"serial/by-id/usb-{ids['ID_SERIAL']}-if{iface.number:02x}{port_suffix}"
        by_path = f"serial/by-path/{iface_id_path}{port_suffix}"
        symlinks = (by_id, by_path)
        props.update({k: v for k, v in ids.items() if k != "ID_USB_INTERFACES"})
        props.update({
            "ID_TYPE": "generic",
            "ID_USB_INTERFACES": ids["ID_USB_INTERFACES"],
            "ID_USB_INTERFACE_NUM": f"{iface.number:02x}",
            "ID_USB_DRIVER": iface.driver or "",
            "ID_PATH": iface_id_path,
            "ID_PATH_TAG": _path_tag(iface_id_path),
            "DEVLINKS": " ".join("/dev/" + s for s in symlinks),
            "TAGS": ":systemd:",
        })
    elif child.subsystem in ("hidraw", "input", "sound", "video4linux", "block"):
        props.update({"ID_PATH": iface_id_path, "ID_PATH_TAG": _path_tag(iface_id_path)})
    elif child.subsystem == "net":
        props["INTERFACE"] = child.name
    props.update(child.properties)
    attrs.update(child.attributes)
    links = {"device": "../../" + "../" + parent.rsplit("/", 1)[-1]}
    records.append(DeviceRecord(devpath=devpath, properties=props, attributes=_attrs(attrs), links=links,
                                node=node, symlinks=symlinks))
    return records


# ---- children ---------------------------------------------------------------------------------

def usb_serial_tty(index: int, driver: str) -> FakeChild:
    """``ttyUSB<index>`` made by a usb-serial driver (ftdi_sio, cp210x, ch341, pl2303)."""
    name = f"ttyUSB{index}"
    return FakeChild("tty", name, TTY_USB_MAJOR, index, via=FakeVia("usb-serial", name, driver))


def acm_tty(index: int) -> FakeChild:
    """``ttyACM<index>`` made by cdc_acm directly below the interface."""
    return FakeChild("tty", f"ttyACM{index}", TTY_ACM_MAJOR, index)


def hidraw(index: int, vendor_id: int, product_id: int, hid_name: str = "",
           properties: Mapping[str, str] = EMPTY) -> FakeChild:
    """``hidraw<index>`` below its hid device ``0003:VVVV:PPPP.NNNN`` (usbhid + hid-generic)."""
    hid_id = f"0003:{vendor_id:04X}:{product_id:04X}.{index + 1:04X}"
    via = FakeVia("hid", hid_id, "hid-generic", {
        "HID_ID": f"0003:{vendor_id:08X}:{product_id:08X}",
        "HID_NAME": hid_name,
        "MODALIAS": f"hid:b0003g0001v{vendor_id:08X}p{product_id:08X}",
    })
    return FakeChild("hidraw", f"hidraw{index}", HIDRAW_MAJOR, index, via=via, properties=properties)


def net_interface(name: str) -> FakeChild:
    """A network interface (``usb0``, ``wwan0``): no device node."""
    return FakeChild("net", name)


# ---- realistic devices ------------------------------------------------------------------------

def make_ftdi(tty: int = 0, **overrides) -> FakeUsbDevice:
    """FTDI FT232R USB UART (0403:6001, ftdi_sio, /dev/ttyUSB<tty>)."""
    base = FakeUsbDevice(
        vendor_id=0x0403, product_id=0x6001, port="1-2", devnum=6, serial="A50285BI",
        manufacturer="FTDI", product="FT232R USB UART", speed="12", version="2.00", bcd_device=0x0600,
        max_power_ma=90,
        interfaces=(FakeInterface(0, 0xFF, 0xFF, 0xFF, "ftdi_sio", (usb_serial_tty(tty, "ftdi_sio"),)),),
        properties={"ID_VENDOR_FROM_DATABASE": "Future Technology Devices International, Ltd",
                    "ID_MODEL_FROM_DATABASE": "FT232 Serial (UART) IC"},
    )
    return replace(base, **overrides)


def make_cp210x(tty: int = 1, **overrides) -> FakeUsbDevice:
    """Silicon Labs CP2102 (10c4:ea60, cp210x, /dev/ttyUSB<tty>)."""
    base = FakeUsbDevice(
        vendor_id=0x10C4, product_id=0xEA60, port="1-4", devnum=8, serial="0001",
        manufacturer="Silicon Labs", product="CP2102 USB to UART Bridge Controller", speed="12",
        version="1.10", bcd_device=0x0100,
        interfaces=(FakeInterface(0, 0xFF, 0x00, 0x00, "cp210x", (usb_serial_tty(tty, "cp210x"),)),),
        properties={"ID_VENDOR_FROM_DATABASE": "Silicon Labs",
                    "ID_MODEL_FROM_DATABASE": "CP210x UART Bridge"},
    )
    return replace(base, **overrides)


def make_ch340(tty: int = 3, **overrides) -> FakeUsbDevice:
    """QinHeng CH340 board (1a86:7523, ch341, /dev/ttyUSB<tty>): no serial number, no manufacturer."""
    base = FakeUsbDevice(
        vendor_id=0x1A86, product_id=0x7523, port="1-7", devnum=13, serial=None,
        manufacturer=None, product="USB Serial", speed="12", version="1.10", bcd_device=0x0264,
        device_class=0xFF, max_power_ma=98,
        interfaces=(FakeInterface(0, 0xFF, 0x01, 0x02, "ch341", (usb_serial_tty(tty, "ch341"),), 3),),
        properties={"ID_VENDOR_FROM_DATABASE": "QinHeng Electronics",
                    "ID_MODEL_FROM_DATABASE": "CH340 serial converter"},
    )
    return replace(base, **overrides)


def make_arduino_uno(tty: int = 0, **overrides) -> FakeUsbDevice:
    """Arduino Uno R3 (2341:0043, cdc_acm, /dev/ttyACM<tty>); its 16U2 has no product string."""
    base = FakeUsbDevice(
        vendor_id=0x2341, product_id=0x0043, port="1-3", devnum=7, serial="85736323838351F0E1D1",
        manufacturer="Arduino (www.arduino.cc)", product=None, speed="12", version="1.10",
        bcd_device=0x0001, device_class=0x02,
        interfaces=(
            FakeInterface(0, 0x02, 0x02, 0x01, "cdc_acm", (acm_tty(tty),), 1),
            FakeInterface(1, 0x0A, 0x00, 0x00, "cdc_acm"),
        ),
        properties={"ID_VENDOR_FROM_DATABASE": "Arduino SA",
                    "ID_MODEL_FROM_DATABASE": "Uno R3 (CDC ACM)"},
    )
    return replace(base, **overrides)


def make_stlink(tty: int = 1, **overrides) -> FakeUsbDevice:
    """STM32 ST-Link V2-1 (0483:374b): debug, mass storage and a cdc_acm VCP (/dev/ttyACM<tty>)."""
    base = FakeUsbDevice(
        vendor_id=0x0483, product_id=0x374B, port="1-5.2", devnum=11, serial="0671FF485550755187121139",
        manufacturer="STMicroelectronics", product="STM32 STLink", speed="12", version="2.00",
        bcd_device=0x0100, device_class=0xEF, device_subclass=0x02, device_protocol=0x01, max_power_ma=300,
        interfaces=(
            FakeInterface(0, 0xFF, 0xFF, 0xFF, None),
            FakeInterface(1, 0x08, 0x06, 0x50, "usb-storage"),
            FakeInterface(2, 0x02, 0x02, 0x01, "cdc_acm", (acm_tty(tty),), 1),
            FakeInterface(3, 0x0A, 0x00, 0x00, "cdc_acm"),
        ),
        properties={"ID_VENDOR_FROM_DATABASE": "STMicroelectronics",
                    "ID_MODEL_FROM_DATABASE": "ST-LINK/V2.1"},
    )
    return replace(base, **overrides)


def make_pixel7(**overrides) -> FakeUsbDevice:
    """Google Pixel 7 with USB debugging (18d1:4ee7): one adb interface ff/42/01, no kernel driver."""
    base = FakeUsbDevice(
        vendor_id=0x18D1, product_id=0x4EE7, port="1-1", devnum=5, serial="29011FDH2000XY",
        manufacturer="Google", product="Pixel 7", speed="480", version="2.10", bcd_device=0x0440,
        max_power_ma=500,
        interfaces=(FakeInterface(0, 0xFF, 0x42, 0x01, None),),
        properties={"ID_VENDOR_FROM_DATABASE": "Google Inc.",
                    "ID_MODEL_FROM_DATABASE": "Nexus/Pixel Device (charging + debug)"},
    )
    return replace(base, **overrides)


def make_yubikey(hidraw_index: int = 0, **overrides) -> FakeUsbDevice:
    """YubiKey 5 NFC (1050:0407, OTP+FIDO+CCID): two usbhid interfaces with hidraw, no USB serial."""
    vid, pid = 0x1050, 0x0407
    name = "Yubico YubiKey OTP+FIDO+CCID"
    fido = {"ID_FIDO_TOKEN": "1", "ID_SECURITY_TOKEN": "1"}
    base = FakeUsbDevice(
        vendor_id=vid, product_id=pid, port="1-6", devnum=12, serial=None,
        manufacturer="Yubico", product="YubiKey OTP+FIDO+CCID", speed="12", version="2.00",
        bcd_device=0x0543, max_power_ma=30, removable="unknown",
        interfaces=(
            FakeInterface(0, 0x03, 0x01, 0x01, "usbhid", (hidraw(hidraw_index, vid, pid, name),), 1),
            FakeInterface(1, 0x03, 0x00, 0x00, "usbhid", (hidraw(hidraw_index + 1, vid, pid, name, fido),)),
            FakeInterface(2, 0x0B, 0x00, 0x00, None, (), 3),
        ),
        properties={"ID_VENDOR_FROM_DATABASE": "Yubico.com",
                    "ID_MODEL_FROM_DATABASE": "Yubikey 4/5 OTP+U2F+CCID"},
    )
    return replace(base, **overrides)


def make_keyboard(hidraw_index: int = 2, **overrides) -> FakeUsbDevice:
    """Logitech K120 keyboard (046d:c31c): low speed, two usbhid interfaces, no serial number."""
    vid, pid = 0x046D, 0xC31C
    name = "Logitech USB Keyboard"
    base = FakeUsbDevice(
        vendor_id=vid, product_id=pid, port="1-9", devnum=15, serial=None,
        manufacturer="Logitech", product="USB Keyboard", speed="1.5", version="1.10",
        bcd_device=0x6400, max_power_ma=90, removable="removable",
        interfaces=(
            FakeInterface(0, 0x03, 0x01, 0x01, "usbhid", (hidraw(hidraw_index, vid, pid, name),), 1),
            FakeInterface(1, 0x03, 0x00, 0x00, "usbhid", (hidraw(hidraw_index + 1, vid, pid, name),), 1),
        ),
        properties={"ID_VENDOR_FROM_DATABASE": "Logitech, Inc.",
                    "ID_MODEL_FROM_DATABASE": "Keyboard K120"},
    )
    return replace(base, **overrides)


def make_hub(**overrides) -> FakeUsbDevice:
    """Genesys Logic GL850G 4-port USB 2.0 hub (05e3:0610), bound to the hub driver."""
    base = FakeUsbDevice(
        vendor_id=0x05E3, product_id=0x0610, port="1-5", devnum=9, serial=None,
        manufacturer="GenesysLogic", product="USB2.1 Hub", speed="480", version="2.10",
        bcd_device=0x6060, device_class=0x09, device_protocol=0x02, max_power_ma=100, maxchild=4,
        removable="unknown",
        interfaces=(FakeInterface(0, 0x09, 0x00, 0x02, "hub", (), 1),),
        properties={"ID_VENDOR_FROM_DATABASE": "Genesys Logic, Inc.",
                    "ID_MODEL_FROM_DATABASE": "Hub"},
    )
    return replace(base, **overrides)


def make_root_hub(busnum: int = 1, **overrides) -> FakeUsbDevice:
    """The Linux root hub of a bus (1d6b:0002, devnum 1, kernel name ``usbN``).

    Real systems list root hubs among usb_devices; tests that want that realism plug one.
    """
    base = FakeUsbDevice(
        vendor_id=0x1D6B, product_id=0x0002, port=f"{busnum}-0", devnum=1, serial="0000:00:14.0",
        manufacturer="Linux 6.1.0-28-amd64 xhci-hcd", product="xHCI Host Controller", speed="480",
        version="2.00", bcd_device=0x0601, device_class=0x09, maxchild=16, removable="unknown",
        interfaces=(FakeInterface(0, 0x09, 0x00, 0x00, "hub", (), 1),),
    )
    return replace(base, **overrides)


def make_fleet(count: int, *, first_bus: int = 10, per_bus: int = 120, first_index: int = 100) -> list[FakeUsbDevice]:
    """``count`` FT232R adapters with distinct serials, ports, devnums and ttyUSB numbers.

    Real buses have at most 127 devices, so the fleet spreads over buses ``first_bus``, ... each on
    its own controller, and over root ports N-1 ... N-``per_bus``. Device ``i`` gets serial
    ``FLEET<first_index + i>`` and ``/dev/ttyUSB<first_index + i>``; the defaults keep clear of the
    fixtures (bus 1, ttyUSB0-4), so a fleet and the fixtures can share a testbed.
    """
    fleet = []
    for i in range(count):
        bus = first_bus + i // per_bus
        slot = i % per_bus + 1
        index = first_index + i
        fleet.append(make_ftdi(
            tty=index, port=f"{bus}-{slot}", devnum=slot + 1, serial=f"FLEET{index:05d}",
            controller=f"/devices/pci0000:00/0000:{bus:02x}:00.0",
        ))
    return fleet
