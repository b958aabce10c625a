"""Where tokenctl keeps its inventory: the team store on OpenBao (:mod:`.openbao`).

The local SQLite store still lives in :mod:`tokenctl.inventory`; both implement
:class:`tokenctl.inventory.Inventory`, so nothing above them knows which one it got.
"""
