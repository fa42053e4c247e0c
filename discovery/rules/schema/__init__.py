"""The rules schema: key tables, value rules, and the validator split by section (rule, match, outputs)."""
