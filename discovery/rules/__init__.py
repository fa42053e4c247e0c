"""The rules engine: which USB devices count and what Nomad calls them (load, validate, match, explain, warn)."""
