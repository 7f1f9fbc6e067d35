"""Copying whole installations: moving between engines (``headwater move``), and backups
(``headwater backup``, ``headwater restore``).

- :mod:`.rows`: every row of the database as portable JSON, and table fingerprints.
- :mod:`.objects`: the stores of an installation, copied and compared object by object.
- :mod:`.move`: a move from one configuration's engines to another's, checked.
- :mod:`.backup`: a backup archive (rows + object manifest, objects optional), verified, restored.
"""
