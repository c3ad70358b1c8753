"""The server database file (API key hashes, saved variants): created owner-only, never made by a read."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from steerlab.errors import MissingFileError


def connect(path: str | Path, *, create: bool = True, field: str = "--server-db") -> sqlite3.Connection:
    """Open the server database. ``create``: make it (and its folder) if missing, the file mode 0600 so
    other users of the machine can read neither key hashes nor variants (SQLite gives its -wal and -shm
    files the same mode). Without ``create`` a missing file is a ``MissingFileError`` naming ``field``
    and nothing is made (for commands that only read or change what exists)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise MissingFileError(
                f"no server database at {path} (it is made by 'steerlab keys create' or 'steerlab serve')",
                field=field,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    elif create and path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o600)  # made readable to others by an older steerlab: tighten it
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db
