"""Guest side: USB gadgets with any VID:PID, made with configfs and plugged into dummy_hcd.

QEMU's emulated devices have fixed vendor and product ids. A gadget is a USB device the guest's own
kernel emulates: ``dummy_hcd`` is a software host controller with a matching software device
controller (UDC), so binding a gadget to a dummy UDC makes it appear on the dummy host bus exactly as
a plugged-in device would (enumeration, cdc_acm, /dev/ttyACM*). Writing the UDC name plugs it;
writing an empty line unplugs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CONFIGFS = Path("/sys/kernel/config")
GADGETS = CONFIGFS / "usb_gadget"
UDC_CLASS = Path("/sys/class/udc")
LANGUAGE = "0x409"  # US English string table
FUNCTIONS = {"acm": "acm.usb0", "serial": "gser.usb0"}


class GadgetError(RuntimeError):
    """A gadget could not be made, plugged or removed."""


def load(udcs: int = 4) -> list[str]:
    """Load dummy_hcd with ``udcs`` controllers and libcomposite; return the UDC names."""
    for argv in (["modprobe", "dummy_hcd", f"num={udcs}"], ["modprobe", "libcomposite"]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise GadgetError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    if not GADGETS.is_dir():
        raise GadgetError(f"{GADGETS} is missing: configfs not mounted or libcomposite not loaded")
    return sorted(p.name for p in UDC_CLASS.iterdir())


def _write(path: Path, value: str) -> None:
    path.write_text(value + "\n")


def create(
    name: str,
    vendor_id: int,
    product_id: int,
    serial: str,
    manufacturer: str,
    product: str,
    function: str = "acm",
) -> str:
    """Describe a gadget (not plugged yet); returns its configfs directory."""
    if function not in FUNCTIONS:
        raise GadgetError(f"unknown gadget function {function!r}; known: {sorted(FUNCTIONS)}")
    root = GADGETS / name
    if root.exists():
        raise GadgetError(f"gadget {name} already exists")
    root.mkdir()
    _write(root / "idVendor", f"0x{vendor_id:04x}")
    _write(root / "idProduct", f"0x{product_id:04x}")
    _write(root / "bcdDevice", "0x0100")
    _write(root / "bcdUSB", "0x0200")
    strings = root / "strings" / LANGUAGE
    strings.mkdir(parents=True)
    _write(strings / "serialnumber", serial)
    _write(strings / "manufacturer", manufacturer)
    _write(strings / "product", product)
    config = root / "configs" / "c.1"
    config.mkdir(parents=True)
    (config / "strings" / LANGUAGE).mkdir(parents=True)
    _write(config / "strings" / LANGUAGE / "configuration", function)
    _write(config / "MaxPower", "100")
    func = root / "functions" / FUNCTIONS[function]
    func.mkdir(parents=True)
    os.symlink(func, config / FUNCTIONS[function])
    return str(root)


def bound_udcs() -> set[str]:
    """UDC names some gadget is bound to now."""
    used = set()
    for gadget in GADGETS.iterdir():
        udc = (gadget / "UDC").read_text().strip()
        if udc:
            used.add(udc)
    return used


def plug(name: str, udc: str | None = None) -> str:
    """Bind the gadget to ``udc`` (or the first free one): the device appears on the dummy bus."""
    if udc is None:
        free = sorted({p.name for p in UDC_CLASS.iterdir()} - bound_udcs())
        if not free:
            raise GadgetError("every dummy UDC is in use; load dummy_hcd with a larger num=")
        udc = free[0]
    _write(GADGETS / name / "UDC", udc)
    return udc


def unplug(name: str) -> None:
    """Unbind the gadget: the device disappears from the dummy bus."""
    _write(GADGETS / name / "UDC", "")


def remove(name: str) -> None:
    """Unplug (when plugged) and delete the gadget's configfs tree, innermost first."""
    root = GADGETS / name
    if (root / "UDC").read_text().strip():
        unplug(name)
    config = root / "configs" / "c.1"
    for link in config.iterdir():
        if link.is_symlink():
            link.unlink()
    (config / "strings" / LANGUAGE).rmdir()
    config.rmdir()
    for func in (root / "functions").iterdir():
        func.rmdir()
    (root / "strings" / LANGUAGE).rmdir()
    root.rmdir()
