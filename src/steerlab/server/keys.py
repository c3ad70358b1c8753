"""API keys: random tokens shown once, stored only as SHA-256 hashes, revocable at once.

Keys are 32 random bytes, so a fast hash is enough (no password stretching needed); lookups are
by hash, and a revoked key fails on the very next request because every request reads the table.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from steerlab.errors import InvalidInputError
from steerlab.server.db import connect

PREFIX = "sl-"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    prefix: str
    """First characters of the key, to tell keys apart in listings without revealing them."""
    created_at: float
    revoked_at: float | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path, *, create: bool = True):
        """``create=False``: refuse a missing database (``MissingFileError``) instead of making one."""
        self.path = Path(path)
        self._db = connect(self.path, create=create)
        self._db.execute("""CREATE TABLE IF NOT EXISTS api_keys (
            key_id TEXT PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT UNIQUE NOT NULL,
            created_at REAL NOT NULL, revoked_at REAL)""")

    def create(self, name: str) -> tuple[KeyInfo, str]:
        """Return the new key's info and the key itself (the only time it is ever visible)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInputError("must be 1..100 characters", field="name")
        key = PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(secrets.token_hex(8), name, key[:8], time.time(), None)
        self._db.execute(
            "INSERT INTO api_keys VALUES (?,?,?,?,?,NULL)",
            (info.key_id, info.name, info.prefix, _hash(key), info.created_at),
        )
        return info, key

    def verify(self, key: str) -> KeyInfo | None:
        """The key's info if it exists and is not revoked, else None."""
        row = self._db.execute(
            "SELECT key_id, name, prefix, created_at, revoked_at FROM api_keys WHERE hash = ? AND revoked_at IS NULL",
            (_hash(key),),
        ).fetchone()
        return KeyInfo(*row) if row else None

    def revoke(self, key_id: str) -> bool:
        cur = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
        )
        return cur.rowcount == 1

    def list(self) -> list[KeyInfo]:
        rows = self._db.execute(
            "SELECT key_id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at"
        ).fetchall()
        return [KeyInfo(*r) for r in rows]

    def close(self) -> None:
        self._db.close()
