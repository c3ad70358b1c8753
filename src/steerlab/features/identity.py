"""Which SAE a feature database describes, and where that database lives by default.

The SAE id drives every feature UUID (``schema.feature_uuid``), so it must name the SAE itself,
not one build of its database: model, hookpoint, architecture, width and a hash of the weights.
Rebuilding the database (more tokens, other corpus, new code) keeps every UUID; retraining or
converting the SAE changes its weights, hence its id, which is right: its latents mean other things.
The hash covers W_enc and W_dec as float32 bytes, so it does not depend on the file format
(ours or SAELens) the same weights were read from.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from steerlab.errors import InvalidInputError, MissingFileError

DB_FILENAME = "features.db"


def weights_hash(sae, length: int = 10) -> str:
    digest = hashlib.sha256()
    for tensor in (sae.W_enc, sae.W_dec):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:length]


def model_slug(model_name: str) -> str:
    """``HuggingFaceTB/SmolLM2-135M-Instruct`` -> ``smollm2-135m-instruct`` (a local path -> its folder name)."""
    name = model_name.rstrip("/").rsplit("/", 1)[-1] or "unknown-model"
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "unknown-model"


def sae_identity(sae) -> str:
    """Stable id such as ``smollm2-135m-instruct/model.layers.18/topk-9216-1a2b3c4d5e``."""
    cfg = sae.cfg
    return (
        f"{model_slug(cfg.model_name)}/{cfg.hookpoint or f'layer{cfg.layer}'}/"
        f"{cfg.architecture}-{cfg.d_sae}-{weights_hash(sae)}"
    )


def sae_info(sae, path: str | Path | None = None):
    from steerlab.features.schema import SAEInfo

    cfg = sae.cfg
    return SAEInfo(
        sae_id=sae_identity(sae),
        model=cfg.model_name or "",
        hookpoint=cfg.hookpoint or "",
        d_in=cfg.d_in,
        d_sae=cfg.d_sae,
        architecture=cfg.architecture,
        path=None if path is None else str(path),
    )


def default_db_path(sae_path: str | Path) -> Path:
    """``features.db`` inside the SAE's folder: the database travels with the SAE it describes."""
    return Path(sae_path) / DB_FILENAME


def pick_sae_id(store, sae_id: str | None = None, sae=None) -> str:
    """The SAE to use in ``store``: the one named, the only one stored, or the one matching ``sae``."""
    from steerlab.features.store import UnknownSAEError

    if sae_id is not None:
        return store.get_sae(sae_id).sae_id
    saes = store.list_saes()
    if len(saes) == 1:
        return saes[0].sae_id
    if not saes:
        raise UnknownSAEError(f"{store.path} holds no SAE yet; run 'steerlab features build'")
    if sae is not None:
        return store.get_sae(sae_identity(sae)).sae_id
    raise UnknownSAEError(
        f"{store.path} holds {len(saes)} SAEs ({', '.join(s.sae_id for s in saes)}); choose one with --sae-id"
    )


def open_feature_database(model_name: str, sae_path: str | Path | None = None, db_path: str | Path | None = None):
    """The SAE's feature database, read-only: ``db_path``, else ``features.db`` next to the SAE (the
    model's bundled one by default); None when there is none. A ``db_path`` that does not exist is an
    error, not a silent run without labels."""
    from steerlab.bundled_saes import bundled_sae_path

    folder = Path(sae_path) if sae_path is not None else bundled_sae_path(model_name)
    db = Path(db_path) if db_path is not None else (default_db_path(folder) if folder is not None else None)
    if db is not None and db.is_file():
        from steerlab.features.store import FeatureStore

        return FeatureStore(db, readonly=True)
    if db_path is not None:
        raise MissingFileError(
            f"feature database {db_path} does not exist; build one with 'steerlab features build'", field="db"
        )
    return None


def database_sae_id(store) -> str:
    """The id of the one SAE a runtime's database describes (it serves one SAE's features)."""
    known = store.list_saes()
    if len(known) != 1:
        raise InvalidInputError(
            f"feature database {store.path} holds {len(known)} SAEs; pass one built for this SAE", field="db"
        )
    return known[0].sae_id
