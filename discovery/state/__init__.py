"""What discovery knows: the device table, stable IDs (and their memory on disk), and the Snapshots it publishes.

Nothing here runs on its own: the event loop (``discovery.loop``) and the CLI's one-shot inventory fill the table.
"""
