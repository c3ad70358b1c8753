"""A classifier is a folder: ``config.json`` + ``weights.safetensors`` (+ ``vocabulary.json`` for text).

Tied to its model, layer and SAE: the config names the SAE by identity (``features.identity``: model,
hookpoint, width and a hash of the weights), and loading under another SAE is refused. Folders live
under ``$STEERLAB_HOME/classifiers/<sae id>/NAME`` (``$STEERLAB_CLASSIFIERS_DIR`` instead of
``$STEERLAB_HOME/classifiers`` when set); those shipped with a bundled SAE sit in its ``classifiers/``
folder and are found after the user's own. Saving writes a temporary folder and renames it at the end,
so a killed run leaves what was stored untouched (a kill between the two renames is undone by
``recover`` on the next lookup).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from steerlab.classifiers.fit import Linear, TextModel
from steerlab.classifiers.model import KINDS, Classifier
from steerlab.errors import ConflictError, InvalidInputError, NotFoundError

FORMAT = "steerlab-classifier"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
VOCAB = "vocabulary.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInputError(
            f"{name!r} is not a classifier name: letters, digits, '_', '.', '-', at most 64", field="name"
        )
    return name


def user_root(sae_id: str) -> Path:
    from steerlab.settings import get_settings

    settings = get_settings()
    base = settings.classifiers_dir or settings.home / "classifiers"
    return base / sae_id.replace("/", "__")


def shipped_root(model_name: str) -> Path | None:
    from steerlab.bundled_saes import bundled_sae_path

    folder = bundled_sae_path(model_name)
    return folder / "classifiers" if folder is not None else None


def roots(lab: Any) -> list[Path]:
    found = [user_root(lab.sae_id)]
    shipped = shipped_root(lab.model_name)
    if shipped is not None:
        found.append(shipped)
    return found


def find(lab: Any, name: str) -> Path:
    check_name(name)
    for root in roots(lab):
        if root == user_root(lab.sae_id):
            recover(root)
        if (root / name / CONFIG).is_file():
            return root / name
    raise NotFoundError(f"no classifier {name!r} for this SAE; train one with 'steerlab classify train'", field="name")


def list_names(lab: Any) -> list[dict]:
    out, seen = [], set()
    for root in roots(lab):
        if not root.is_dir():
            continue
        if root == user_root(lab.sae_id):
            recover(root)
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or folder.name in seen or not (folder / CONFIG).is_file():
                continue
            cfg = json.loads((folder / CONFIG).read_text())
            if cfg.get("sae_id") != lab.sae_id:
                continue
            seen.add(folder.name)
            shipped = root != user_root(lab.sae_id)
            out.append(
                {"name": folder.name, "kind": cfg["kind"], "pool": cfg["pool"], "shipped": shipped, "path": str(folder)}
            )
    return out


def save(clf: Classifier, folder: Path, overwrite: bool = False) -> Path:
    """Write ``clf`` to ``folder`` atomically; an existing folder is refused unless ``overwrite``."""
    check_name(clf.name)
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ConflictError(f"classifier {clf.name!r} exists ({folder}); pass --overwrite to replace it", field="name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{threading.get_ident()}"
    _SAVING.add(tag)
    try:
        return _write(clf, folder, tag)
    finally:
        _SAVING.discard(tag)


def _write(clf: Classifier, folder: Path, tag: str) -> Path:
    from safetensors.numpy import save_file

    tmp = folder.parent / f".{folder.name}.tmp-{tag}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors: dict[str, np.ndarray] = {"weights": np.ascontiguousarray(clf.linear.weights, dtype=np.float32)}
    if clf.linear.indices is not None:
        tensors["indices"] = np.ascontiguousarray(clf.linear.indices, dtype=np.int64)
    if clf.text_model is not None:
        tensors["idf"] = np.ascontiguousarray(clf.text_model.idf, dtype=np.float64)
        (tmp / VOCAB).write_text(json.dumps(clf.text_model.vocabulary))
    save_file(tensors, str(tmp / WEIGHTS))
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": clf.name,
        "kind": clf.kind,
        "pool": clf.pool,
        "bias": clf.linear.bias,
        "threshold": clf.threshold,
        "max_tokens": clf.max_tokens,
        "model": clf.model,
        "hookpoint": clf.hookpoint,
        "layer": clf.layer,
        "sae_id": clf.sae_id,
        "labels": {str(k): v for k, v in sorted(clf.labels.items())},
        "report": clf.report,
    }
    (tmp / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    for path in tmp.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; a classifier may be shipped or shared
    old = folder.parent / f".{folder.name}.old-{tag}"
    if folder.exists():
        folder.rename(old)  # killed from here to the next rename: ``recover`` puts ``old`` back
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


_SAVING: set[str] = set()
"""Tags (``PID-THREAD``) of this process's saves under way."""


def recover(root: Path) -> None:
    """Finish what a save killed midway left: a classifier renamed aside (``.NAME.old-*``) whose
    replacement never arrived goes back to ``NAME``; unfinished temporary folders are removed."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        name = path.name
        if not name.startswith(".") or not path.is_dir():
            continue
        tag = name.rsplit(".old-" if ".old-" in name else ".tmp-", 1)[-1]
        if _running(tag):  # a save under way (this process's, or another live one's) finishes on its own
            continue
        if ".old-" in name:
            target = root / name[1:].rsplit(".old-", 1)[0]
            if not target.exists() and (path / CONFIG).is_file():
                path.rename(target)
            elif target.exists():
                shutil.rmtree(path, ignore_errors=True)
        elif ".tmp-" in name:
            shutil.rmtree(path, ignore_errors=True)


def _running(tag: str) -> bool:
    """Whether the process that made a temporary folder (``PID-THREAD``) is this one or still alive."""
    try:
        pid = int(tag.split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return tag in _SAVING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load(folder: Path, lab: Any = None) -> Classifier:
    """Read a classifier folder; with ``lab``, refuse one trained on another model or SAE."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{folder} holds no classifier ({CONFIG} missing)", field="name") from None
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{folder / CONFIG} is not JSON ({err.msg})", field="name") from None
    if config.get("format") != FORMAT or config.get("kind") not in KINDS:
        raise InvalidInputError(f"{folder} is not a steerlab classifier", field="name")
    if lab is not None:
        check_matches(config, lab, folder)
    tensors = load_file(str(folder / WEIGHTS))
    linear = Linear(tensors["weights"], float(config["bias"]), tensors.get("indices"))
    text_model = None
    if config["kind"] == "text":
        text_model = TextModel(json.loads((folder / VOCAB).read_text()), tensors["idf"], linear)
    return Classifier(
        name=config["name"],
        kind=config["kind"],
        pool=config["pool"],
        linear=linear,
        threshold=float(config["threshold"]),
        max_tokens=int(config["max_tokens"]),
        model=config["model"],
        hookpoint=config["hookpoint"],
        layer=config.get("layer"),
        sae_id=config["sae_id"],
        text_model=text_model,
        labels={int(k): v for k, v in config.get("labels", {}).items()},
        report=config.get("report", {}),
    )


def check_matches(config: dict, lab: Any, folder: Path) -> None:
    from steerlab.features.identity import model_slug

    if model_slug(config["model"]) != model_slug(lab.model_name):
        raise ConflictError(
            f"classifier {folder.name!r} was trained on model {config['model']}, not {lab.model_name}", field="model"
        )
    if config["sae_id"] != lab.sae_id:
        raise ConflictError(
            f"classifier {folder.name!r} reads SAE {config['sae_id']}, but the loaded SAE is {lab.sae_id}; "
            "retrain it on this SAE",
            field="sae",
        )
