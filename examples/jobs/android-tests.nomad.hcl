# Runs an instrumentation test suite on any Pixel 7 attached to a client.
# The rules file publishes phones as google/phone/pixel-7 (examples/rules.yaml).
job "android-tests" {
  datacenters = ["dc1"]  # required before Nomad 1.5; later versions default to all
  type = "batch"

  group "tests" {
    task "instrumentation" {
      # docker (and exec on Nomad >= 1.9.0) hand the USB node (/dev/bus/usb/BBB/DDD) to the task; adb inside the
      # task then sees exactly the reserved phone. ANDROID_SERIAL is set by the rule's env.
      driver = "docker"

      config {
        image   = "ghcr.io/example/android-sdk:latest"
        command = "sh"
        args    = ["-c", "adb -s \"$ANDROID_SERIAL\" wait-for-device && ./gradlew connectedCheck"]
      }

      resources {
        device "google/phone/pixel-7" {
          count = 1

          # Prefer phones with more memory when a client has several models.
          affinity {
            attribute = "${device.attr.ram}"
            operator  = ">="
            value     = "8 GiB"
            weight    = 50
          }
        }
      }
    }
  }
}
