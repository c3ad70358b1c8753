"""Fixtures for the feature-database tests: a tiny SAE with one hand-made feature, its corpus and harvest.

Feature ``CRAFTED`` reads the direction that separates the token " mat" from every other token in the
tiny model's residual stream after block 1, with a bias that puts every other token below zero: it
fires on " mat" and nowhere else. Its decoder row is ``W_U[" mat"] - W_U[" the"]``, so its logit
effects must promote " mat" and suppress " the".
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from steerlab.models.hooks import forward_to_hookpoint
from tests.conftest import TINY_TEXT

CRAFTED = 5
D_SAE = 32
HOOKPOINT = "model.layers.1"
CONTEXT = 64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: thread start-up costs more than it saves on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def corpus_texts(n: int = 24, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(TINY_TEXT, len(TINY_TEXT))) for _ in range(n)]


@pytest.fixture()
def corpus_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts()))
    return path


def token_id(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{text!r} is not one token: {ids}"
    return ids[0]


def corpus_sequences(tokenizer) -> list[list[int]]:
    """The corpus as the builder's CorpusSource sees it (one window of <= CONTEXT tokens per text)."""
    return [tokenizer(t, add_special_tokens=False)["input_ids"][:CONTEXT] for t in corpus_texts()]


def make_crafted_sae(lm, model_name: str = "tiny-llama", seed: int = 0):
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.variants.topk import TopKSAE

    torch.manual_seed(seed)
    cfg = SAEConfig(
        d_in=lm.d_model, d_sae=D_SAE, architecture="topk", k=4, model_name=model_name, hookpoint=HOOKPOINT, layer=1
    )
    sae = TopKSAE(cfg, generator=torch.Generator().manual_seed(seed)).eval().requires_grad_(False)
    target = token_id(lm.tokenizer, " mat")
    xs, is_target = [], []
    for seq in corpus_sequences(lm.tokenizer):
        hidden = forward_to_hookpoint(lm.model, torch.tensor([seq]), HOOKPOINT)[0]
        xs.append(hidden[1:])
        is_target.append(torch.tensor(seq[1:]) == target)
    x, t = torch.cat(xs).float(), torch.cat(is_target)
    direction = x[t].mean(0) - x[~t].mean(0)
    proj = x @ direction
    low, high = float(proj[~t].max()), float(proj[t].min())
    assert high > low, "the crafted direction must separate ' mat' from the rest"
    middle = 0.5 * (low + high)
    scale = 2.0 / (high - middle)  # weakest ' mat' activates at 2.0, every other token below 0
    with torch.no_grad():
        sae.W_enc[:, CRAFTED] = scale * direction
        sae.b_enc[CRAFTED] = -scale * middle
        w_u = lm.model.get_output_embeddings().weight
        sae.W_dec[CRAFTED] = w_u[target] - w_u[token_id(lm.tokenizer, " the")]
    return sae


@pytest.fixture()
def crafted_sae(tiny_lm):
    return make_crafted_sae(tiny_lm)


@pytest.fixture()
def small_build_config():
    """Small batches and frequent checkpoints, so a few hundred tokens exercise every code path."""
    from steerlab.features.build_state import BuildConfig

    return BuildConfig(
        top_examples=4,
        sample_size=8,
        cofiring_sample=8,
        quantile_buckets=2,
        per_bucket=2,
        nonactivating=2,
        pool_size=6,
        window=16,
        window_after=4,
        hist_bins=10,
        calibrate_tokens=128,
        batch_tokens=96,
        checkpoint_tokens=150,
        cofiring_slots=8,
        cofiring_top=4,
        logit_top=5,
    )


@pytest.fixture(scope="session")
def encoder_home(tmp_path_factory):
    """A ``STEERLAB_HOME`` whose cache holds the checked int8 query-encoder graph, exported once a session
    (~13 s): for the encoder's own tests, and for CLI runs that must find it cached."""
    pytest.importorskip("onnxruntime")
    from steerlab.features import query_encoder

    home = tmp_path_factory.mktemp("encoder-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STEERLAB_HOME", str(home))
        assert query_encoder.build_encoder(int8=True) is not None
    return home
