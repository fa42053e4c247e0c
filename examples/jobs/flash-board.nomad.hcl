# Flashes firmware onto one specific Arduino Uno, picked by its stable device ID
# (`nomad-device-usb list` shows the IDs; they survive replugs and restarts).
job "flash-board" {
  datacenters = ["dc1"]  # required before Nomad 1.5; later versions default to all
  type = "batch"

  group "flash" {
    task "avrdude" {
      # exec creates the reserved nodes in the task, but only Nomad >= 1.9.0 lets the task open
      # them (upstream fix #22518); on older clients use docker, which honours the permissions.
      driver = "exec"

      config {
        command = "/usr/bin/avrdude"
        # USB_DEVICE_0_NODE is the board's serial port (/dev/ttyACM0 or whatever it is now).
        args    = ["-p", "m328p", "-c", "arduino", "-P", "${USB_DEVICE_0_NODE}", "-U", "flash:w:local/firmware.hex"]
      }

      artifact {
        source      = "https://artifacts.example.com/firmware.hex"
        destination = "local/"
      }

      resources {
        device "arduino/board/uno" {
          # Nomad >= 1.7 assigns the instance named here; IDs are never numeric, so this matches.
          constraint {
            attribute = "${device.ids}"
            operator  = "set_contains_any"
            value     = "usb-2341-0043-85736323838351F0E1D1"
          }
        }
      }
    }
  }
}
