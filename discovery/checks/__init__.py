"""Commands a rule runs per device: health checks, and stats commands whose JSON becomes readings.

Both run isolated (argv only, no shell, own session, bounded output and time) in the loop's one bounded pool.
"""
