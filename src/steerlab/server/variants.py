"""Saved variants: a controller JSON under a random id, persisted in the server database so a
variant can be shared by link and used from the OpenAI client as ``variant_id``."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

from steerlab.server.db import connect
from steerlab.server.errors import APIError

MAX_CONTROLLER_BYTES = 256_000


class VariantStore:
    """``max_count`` and ``max_bytes`` bound what one key may keep (checked and written under one lock)."""

    def __init__(self, path: str | Path, max_count: int = 1000, max_bytes: int = 10_000_000):
        self.max_count, self.max_bytes = max_count, max_bytes
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.execute("""CREATE TABLE IF NOT EXISTS variants (
            variant_id TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT NOT NULL, controller TEXT NOT NULL,
            owner TEXT NOT NULL, created_at REAL NOT NULL)""")

    def save(self, name: str, model: str, controller: dict, owner: str) -> dict:
        text = json.dumps(controller, separators=(",", ":"))
        if len(text) > MAX_CONTROLLER_BYTES:
            raise APIError(413, f"controller: over {MAX_CONTROLLER_BYTES} bytes", "controller", "max_controller_bytes")
        row = {
            "variant_id": "v-" + secrets.token_urlsafe(9),
            "name": name,
            "model": model,
            "controller": controller,
            "created_at": time.time(),
        }
        with self._lock:
            count, used = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(controller AS BLOB))), 0) FROM variants WHERE owner = ?",
                (owner,),
            ).fetchone()
            if count >= self.max_count:
                raise APIError(
                    429,
                    f"variants: this key already keeps {count} saved variants, the most allowed; "
                    "delete some (DELETE /v1/variants/{id}) to save more",
                    "variants",
                    "max_variants",
                )
            if used + len(text.encode()) > self.max_bytes:
                raise APIError(
                    429,
                    f"controller: saving {len(text.encode())} more bytes would take this key's saved variants "
                    f"over {self.max_bytes} bytes; delete some (DELETE /v1/variants/{{id}}) to save more",
                    "controller",
                    "max_variant_bytes",
                )
            self._db.execute(
                "INSERT INTO variants VALUES (?,?,?,?,?,?)",
                (row["variant_id"], name, model, text, owner, row["created_at"]),
            )
        return row

    def get(self, variant_id: str) -> dict:
        found = self._db.execute(
            "SELECT variant_id, name, model, controller, created_at FROM variants WHERE variant_id = ?", (variant_id,)
        ).fetchone()
        if found is None:
            raise APIError(404, f"variant_id: no saved variant {variant_id!r}", "variant_id", "variant_not_found")
        vid, name, model, controller, created = found
        return {
            "variant_id": vid,
            "name": name,
            "model": model,
            "controller": json.loads(controller),
            "created_at": created,
        }

    def list(self, owner: str, limit: int = 200) -> list[dict]:
        rows = self._db.execute(
            "SELECT variant_id FROM variants WHERE owner = ? ORDER BY created_at DESC LIMIT ?", (owner, limit)
        ).fetchall()
        return [self.get(r[0]) for r in rows]

    def delete(self, variant_id: str, owner: str) -> None:
        cur = self._db.execute("DELETE FROM variants WHERE variant_id = ? AND owner = ?", (variant_id, owner))
        if cur.rowcount == 0:
            raise APIError(
                404, f"variant_id: no saved variant {variant_id!r} of yours", "variant_id", "variant_not_found"
            )

    def editor_for(self, lab, controller: dict | None, variant_id: str | None, caller):
        """The per-sequence steering editor for a request (None = unsteered)."""
        if controller is not None and variant_id is not None:
            raise APIError(400, "give either controller or variant_id, not both", "variant_id")
        if variant_id is not None:
            controller = self.get(variant_id)["controller"]
        if controller is None:
            return None
        return lab.editor_for_controller(controller)
