# A Nomad client agent that loads nomad-device-usb. Merge into your agent configuration.
#
# plugin_dir must contain an executable named exactly like the plugin block's label:
#   scripts/install-plugin /opt/nomad/plugins        (see the README)
plugin_dir = "/opt/nomad/plugins"

client {
  enabled = true
}

plugin "nomad-device-usb" {
  config {
    # Which devices count and how Nomad names them (docs/rules.md). Edits take effect
    # without restarting Nomad; a broken edit is logged and the last good rules stay.
    rules_file = "/etc/nomad.d/usb-rules.yaml"

    # How long a burst of udev events may take before one fingerprint update goes out.
    debounce = "200ms"

    # How long an unplugged device stays listed (unhealthy, "unplugged") before it is dropped.
    unplugged_grace = "60s"

    # trace, debug, info, warn or error; lines appear in the agent's log under nomad-device-usb.
    log_level = "info"

    # Where the plugin keeps the IDs it gave, so they survive restarts (made 0700 at first use).
    state_dir = "/var/lib/nomad-device-usb"

    # As root, a rules file (or its directory) that users other than root could change is refused:
    # its health commands run as root. false accepts it anyway and logs a warning at every start.
    strict_rules_permissions = true

    # Rules may also be written inline; they come before the rules file's rules.
    # Quote USB ids (HCL reads a bare 0x18d1 as the number 6353); lists are comma-separated.
    rule {
      name = "lab scope"
      match {
        vendor_id  = "1ab1"
        product_id = "04ce,0588"
      }
      group {
        vendor = "rigol"
        type   = "scope"
        name   = "ds1000z"
      }
      attribute {
        name  = "channels"
        value = "4"
      }
      env {
        SCOPE_SERIAL = "{serial}"
      }
    }
  }
}
