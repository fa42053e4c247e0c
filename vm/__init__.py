"""The VM test tier: a small Debian guest under QEMU with emulated USB devices hot-plugged through QMP.

Host side: ``vm.build`` (cached kernel + initramfs), ``vm.qmp`` (QEMU Machine Protocol client),
``vm.machine`` (start a guest, talk to its agent), ``vm.hotplug`` (plug and unplug each device kind).
Guest side: ``vm/init`` (baked into the image) and ``vm/guest/`` (copied in at run time over 9p, so a
code change never forces an image rebuild).
"""
