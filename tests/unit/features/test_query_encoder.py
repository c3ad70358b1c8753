"""The ONNX query encoder gives the PyTorch path's vectors (labels embedded by one compare with queries
embedded by the other), and PyTorch answers when it is switched off."""

import numpy as np
import pytest

from steerlab.features import query_encoder as qe
from steerlab.features.embeddings import embed_one, embed_one_torch, get_model

QUERIES = ["French text", "x", "Python function definitions " * 80, "émotions 😀 日本語", "refusals"]


@pytest.fixture(scope="module")
def onnx_encoder(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    model = get_model()
    path = tmp_path_factory.mktemp("onnx") / "minilm.onnx"
    qe.export_onnx(model[0].auto_model, path)
    return qe.OnnxQueryEncoder(path, model.tokenizer, model.max_seq_length)


@pytest.mark.parametrize("query", QUERIES)
def test_onnx_vectors_equal_the_pytorch_ones(onnx_encoder, query):
    vector = onnx_encoder(query)
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert np.abs(vector - embed_one_torch(query)).max() < 1e-5
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(qe, "_tried", False)
    monkeypatch.setattr(qe, "_encoder", None)
    monkeypatch.setenv("STEERLAB_QUERY_ENCODER", "torch")
    assert qe.query_encoder() is None
    assert np.array_equal(embed_one("French text"), embed_one_torch("French text"))
