"""Feature labels from a Neuronpedia export, into a feature database.

Neuronpedia publishes its explanations as records such as
``{"modelId": "llama3.1-8b-it", "layer": "19-resid-post-gf", "index": "42", "description": "...",
"explanationModelName": "gpt-4o-mini", "typeName": "oai_token-act-pair"}``: a JSON array (the site's
export), a JSON object holding one under ``explanations``, or JSON lines (its bulk datasets), plain or
gzipped. ``layer`` is Neuronpedia's SAE id: it starts with the block index and often names the width
(``20-gemmascope-res-16k``).

An export for another SAE is refused before anything is written: a different ``modelId``/``layer`` than
the one asked for, records of several SAEs, a block index or width that is not the SAE's, or a feature
index outside it. A label already in the database is replaced only with ``overwrite``.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.errors import InvalidInputError

EXPLAINER_PREFIX = "neuronpedia"
WIDTHS = {"k": 1024, "m": 1024 * 1024}


class NeuronpediaExportError(InvalidInputError):
    """The export is unreadable, or describes another SAE than the one it is imported for."""


@dataclass(frozen=True)
class ExportSummary:
    source: str
    """``modelId/layer`` of the export."""
    labels: int
    skipped_existing: int


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """The explanation records of a Neuronpedia export file (JSON array/object or JSON lines, maybe gzipped)."""
    path = Path(path)
    if not path.is_file():
        raise NeuronpediaExportError(f"{path}: file not found", field="export")
    raw = path.read_bytes()
    try:
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise NeuronpediaExportError(f"{path}: not UTF-8 JSON or gzipped JSON ({err})", field="export") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise NeuronpediaExportError(f"{path}: neither JSON nor JSON lines ({err})", field="export") from None
    if isinstance(data, dict):
        data = data.get("explanations", [data] if "description" in data else None)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise NeuronpediaExportError(f"{path}: expected a list of explanation objects", field="export")
    for i, record in enumerate(data):
        missing = [k for k in ("modelId", "layer", "index", "description") if k not in record]
        if missing:
            raise NeuronpediaExportError(
                f"{path}: record {i} lacks {', '.join(missing)} (not a Neuronpedia explanations export)",
                field="export",
            )
    return data


def _widths(sae_name: str) -> set[int] | None:
    """The widths a name such as ``16k``, ``65k``, ``131k`` or ``1m`` can mean (16384, 65536, 131072,
    1048576: Neuronpedia rounds powers of two to thousands), or None when the name has no width."""
    m = re.search(r"(?:^|[-_])(\d+)([km])(?:$|[-_])", sae_name.lower())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    decimal = n * (1000 if unit == "k" else 1_000_000)
    return {decimal, n * WIDTHS[unit], 2 ** round(math.log2(decimal))}


def check_export(records: list[dict[str, Any]], d_sae: int, layer: int | None, expected: str | None) -> str:
    """``modelId/layer`` of the export once it is shown to describe this SAE (see the module doc)."""
    sources = sorted({f"{r['modelId']}/{r['layer']}" for r in records})
    if not sources:
        raise NeuronpediaExportError("the export holds no explanations", field="export")
    if len(sources) > 1:
        raise NeuronpediaExportError(
            f"the export mixes {len(sources)} SAEs ({', '.join(sources[:4])}); export one SAE's explanations",
            field="export",
        )
    source = sources[0]
    if expected is not None and source != expected:
        raise NeuronpediaExportError(f"the export is for {source}, not {expected}", field="export", allowed=expected)
    np_layer = str(records[0]["layer"])
    m = re.match(r"(\d+)-", np_layer)
    if layer is not None and m and int(m.group(1)) != layer:
        raise NeuronpediaExportError(
            f"the export is for {source} (block {m.group(1)}) but the SAE reads block {layer}", field="export"
        )
    widths = _widths(np_layer)
    if widths is not None and d_sae not in widths:
        raise NeuronpediaExportError(
            f"the export is for {source} ({' or '.join(map(str, sorted(widths)))} latents) but the SAE has "
            f"d_sae={d_sae}",
            field="export",
        )
    for r in records:
        index = r["index"]
        if not (isinstance(index, int) or (isinstance(index, str) and index.isdigit())) or not 0 <= int(index) < d_sae:
            raise NeuronpediaExportError(
                f"the export's feature index {index!r} is outside this SAE (0..{d_sae - 1}); it is for another SAE",
                field="export",
            )
    return source


def import_labels(
    store: Any,
    sae_id: str,
    path: str | Path,
    *,
    layer: int | None = None,
    expected: str | None = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Write the export's descriptions as labels of ``sae_id`` in ``store`` (a ``FeatureStore``): one per
    feature, the first description of each; nothing is written when any check fails."""
    from steerlab.features.schema import Label

    info = store.get_sae(sae_id)
    records = read_export(path)
    source = check_export(records, info.d_sae, layer, expected)
    labels: dict[int, Label] = {}
    for r in records:
        index = int(r["index"])
        text = str(r["description"]).strip()
        if index in labels or not text:
            continue
        who = r.get("explanationModelName") or r.get("typeName") or "unknown"
        labels[index] = Label(text=text, explainer=f"{EXPLAINER_PREFIX}:{who}", score_details={"source": source})
    skipped = 0
    if not overwrite:
        existing = set(store.labels(sae_id))
        skipped = len(existing & set(labels))
        labels = {i: lab for i, lab in labels.items() if i not in existing}
    store.set_labels(sae_id, labels)
    return ExportSummary(source, len(labels), skipped)
