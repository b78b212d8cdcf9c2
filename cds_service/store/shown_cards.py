"""Which cards this service has already shown, shared by all worker processes.

order-select fires while the clinician is still choosing; order-sign fires for the same
draft when they sign. A card already shown at order-select for the same unchanged draft
is not repeated at order-sign ("never duplicates across hooks of one ordering session").
Patient-view cards marked "show once" are remembered longer, so that advice that has not
changed is not repeated at every chart opening.
SQLite in WAL mode: one small file, safe across gunicorn's forked workers, no server.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path


class ShownCardStore:
    def __init__(self, path: Path, ttl_seconds: float) -> None:
        self._path = path
        self._ttl = ttl_seconds
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS shown_card (key TEXT PRIMARY KEY, expires REAL NOT NULL)")
            connection.execute("CREATE INDEX IF NOT EXISTS shown_card_expires ON shown_card (expires)")

    def _connect(self) -> sqlite3.Connection:
        # One connection per process and thread: sqlite connections must not cross a fork.
        cached: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if cached is not None and getattr(self._local, "pid", None) == os.getpid():
            return cached
        connection = sqlite3.connect(self._path, timeout=2.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def remember(self, keys: Iterable[str], now: float | None = None, ttl_seconds: float | None = None) -> None:
        moment = time.time() if now is None else now
        rows = [(key, moment + (self._ttl if ttl_seconds is None else ttl_seconds)) for key in keys]
        if not rows:
            return
        connection = self._connect()
        connection.executemany("INSERT OR REPLACE INTO shown_card (key, expires) VALUES (?, ?)", rows)
        connection.execute("DELETE FROM shown_card WHERE expires < ?", (moment,))

    def all_shown(self, keys: Iterable[str], now: float | None = None) -> bool:
        wanted = list(keys)
        if not wanted:
            return False
        moment = time.time() if now is None else now
        placeholders = ",".join("?" for _ in wanted)
        row = self._connect().execute(
            f"SELECT COUNT(*) FROM shown_card WHERE expires >= ? AND key IN ({placeholders})", (moment, *wanted)
        ).fetchone()
        return bool(row) and row[0] == len(set(wanted))
