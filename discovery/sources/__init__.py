"""Where devices come from: the DeviceSource interface, the udev source and the pyusb fallback."""
