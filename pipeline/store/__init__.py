"""Storage: the only package that speaks SQL.

``base.Store`` is the interface; ``sqlite_store.SQLiteStore`` implements it over the SQL in ``sqlite.py``
(whose functions, taking a connection, are re-exported here for the ingest and digest stages). The same
SQL runs on PostgreSQL (the cluster set-up) through ``postgres.PGDatabase`` when ``db`` is a
``postgresql://`` URL.
"""

from .base import Store  # noqa: F401
from .sqlite import *  # noqa: F401,F403
from .sqlite_store import SQLiteStore, as_store, open_store  # noqa: F401
