# Logs two serial adapters at once, constrained on attributes the plugin publishes for every group:
# vendor_id/product_id are integers (0x0403 = 1027), so write them in decimal in a job.
job "serial-logger" {
  datacenters = ["dc1"]  # required before Nomad 1.5; later versions default to all
  group "logger" {
    task "picocom" {
      # exec creates the reserved nodes in the task, but only Nomad >= 1.9.0 lets the task open
      # them (upstream fix #22518); on older clients use docker, which honours the permissions.
      driver = "exec"

      config {
        command = "/bin/sh"
        # USB_DEVICE_IDS lists both reserved IDs; USB_DEVICE_<i>_NODE is each adapter's tty.
        args = ["-c", "for i in 0 1; do eval node=\\$USB_DEVICE_${i}_NODE; cat \"$node\" > local/adapter-$i.log & done; wait"]
      }

      resources {
        device "serial" {
          count = 2

          constraint {
            attribute = "${device.attr.vendor_id}"
            value     = "1027"
          }
        }
      }
    }
  }
}
