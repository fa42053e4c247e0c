"""Discovery's running part: the event loop's one thread and the rules-file watch it polls on.

The loop owns the device table (``discovery.state``) and hands health checks and stats commands
(``discovery.checks``) to one bounded pool.
"""
