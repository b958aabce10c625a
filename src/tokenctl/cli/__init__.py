"""The command line: one module per command, each a thin layer over one service call.

Nothing in this package imports keyring, httpx2, authlib or sqlite3: services do, lazily.
"""
