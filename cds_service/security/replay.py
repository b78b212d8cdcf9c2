"""The ``jti`` replay cache, shared by every worker process of one host: SQLite in WAL mode.

A token's ``(iss, jti)`` is remembered until the token can no longer be accepted (its ``exp``
plus the clock skew); a second use inside that window is a replay. ``remember`` is one atomic
``INSERT ... ON CONFLICT`` so two workers receiving the same token at the same moment cannot
both accept it. Expired rows are purged every ``purge_every`` seconds by whichever process
notices first.

Connections are opened lazily per process and thread (the app is created before the server
forks; an SQLite connection must never cross a fork).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "jwt-replay.sqlite3"
_SCHEMA = "CREATE TABLE IF NOT EXISTS seen_jti (key BLOB PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID"
_REMEMBER = (
    "INSERT INTO seen_jti (key, expires) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE seen_jti.expires < ?"
)


class ReplayCacheError(Exception):
    """The replay cache cannot be used (fail closed: the request is refused)."""


class ReplayCache:
    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time, purge_every: float = 60.0) -> None:
        self.path = Path(directory) / FILE_NAME
        self._clock = clock
        self._purge_every = purge_every
        self._local = threading.local()
        self._next_purge = 0.0
        _prepare_directory(Path(directory))
        conn = self._connect()  # fail at start-up, not on the first request
        conn.close()

    def remember(self, iss: str, jti: str, expires: float) -> bool:
        """Record (iss, jti) until ``expires`` (epoch seconds); False if it is already recorded (a replay)."""
        key = hashlib.sha256(f"{iss}\x00{jti}".encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        try:
            conn = self._connection()  # autocommit: each statement is its own atomic transaction
            fresh = conn.execute(_REMEMBER, (key, expires, now)).rowcount == 1
            if now >= self._next_purge:
                self._next_purge = now + self._purge_every
                conn.execute("DELETE FROM seen_jti WHERE expires < ?", (now,))
        except sqlite3.Error as exc:
            raise ReplayCacheError(f"{self.path}: {type(exc).__name__}: {exc}") from None
        return fresh

    def count(self) -> int:
        return int(self._connection().execute("SELECT count(*) FROM seen_jti").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
        connection: sqlite3.Connection = local.conn
        return connection

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ReplayCacheError(f"cannot open the JWT replay cache {self.path}: {exc}") from None
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        return conn


def _prepare_directory(directory: Path) -> None:
    """Create the state directory private to this user; refuse one that others could tamper with."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise ReplayCacheError(f"cannot create the state directory {directory} (CDS_STATE_DIR): {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ReplayCacheError(f"the state directory {directory} (CDS_STATE_DIR) is not a plain directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ReplayCacheError(f"the state directory {directory} (CDS_STATE_DIR) belongs to another user")
    if info.st_mode & 0o022:
        raise ReplayCacheError(f"the state directory {directory} (CDS_STATE_DIR) is writable by other users; chmod 700 it")
