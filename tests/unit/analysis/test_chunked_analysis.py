"""Analyses run in chunks (the model free between them) give the unchunked results."""

import threading
from contextlib import contextmanager

import pytest
import torch

from steerlab.analysis.contrast import contrast
from steerlab.analysis.inspect import inspect
from steerlab.engine.lab import Lab
from steerlab.models.chunked import chunk_bounds, forward_chunks
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.variant import Variant

CONVO = [
    {"role": "user", "content": "the cat sat on the mat and the dog ran in the park " * 3},
    {"role": "assistant", "content": "bonjour le monde, le chat est sur la table " * 3},
]


def test_chunk_bounds_cover_the_sequence():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(3, 8) == [(0, 3)]
    with pytest.raises(ValueError):
        chunk_bounds(3, 0)


@pytest.mark.parametrize("chunk", [1, 7, 32])
def test_chunked_forward_equals_the_whole_forward(tiny_lm, chunk):
    ids = torch.randint(0, len(tiny_lm.tokenizer), (1, 90), generator=torch.Generator().manual_seed(0))
    whole = forward_to_hookpoint(tiny_lm.model, ids, "model.layers.1")
    chunked = torch.cat(list(forward_chunks(tiny_lm.model, ids, chunk, "model.layers.1")), dim=1)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    logits = tiny_lm.model(input_ids=ids).logits[:, -1]
    *_, last = forward_chunks(tiny_lm.model, ids, chunk)
    torch.testing.assert_close(last, logits, rtol=0, atol=1e-5)
    # the comparison can fail: chunks that do not see the earlier chunks' keys and values differ
    alone = torch.cat(
        [forward_to_hookpoint(tiny_lm.model, ids[:, s:e], "model.layers.1") for s, e in chunk_bounds(90, chunk)], 1
    )
    assert (alone - whole).abs().max() > 1e-3


def test_each_chunk_runs_inside_its_own_hold(tiny_lm):
    entered = []

    @contextmanager
    def hold():
        entered.append(threading.current_thread())
        yield

    ids = torch.arange(20)[None] + 5
    assert len(list(forward_chunks(tiny_lm.model, ids, 6, "model.layers.1", hold))) == len(entered) == 4


@pytest.mark.parametrize("steer", [False, True])
def test_chunked_inspect_equals_the_whole_inspect(tiny_lm, tiny_sae, steer):
    variant = None
    if steer:  # the edits carry their state from chunk to chunk, as from token to token in generation
        variant = Variant("tiny-llama", sae_id="x")
        variant.set(7, 0.8, mode="pin")
        variant.set(9, 0.5)
    whole = inspect(tiny_lm, tiny_sae, CONVO, variant)
    holds = []

    @contextmanager
    def hold():
        holds.append(1)
        yield

    chunked = inspect(tiny_lm, tiny_sae, CONVO, variant, chunk_tokens=5, hold=hold)
    assert len(holds) == -(-len(whole) // 5) > 5
    assert chunked.tokens == whole.tokens
    torch.testing.assert_close(chunked.codes_raw, whole.codes_raw, rtol=0, atol=1e-5)
    assert [a.index for a in chunked.top(8)] == [a.index for a in whole.top(8)]


def test_chunked_contrast_equals_the_whole_contrast(tiny_lm, tiny_sae):
    d1 = [[{"role": "user", "content": t}] for t in ("pirates say arr matey", "sail the seven seas for gold")]
    d2 = [[{"role": "user", "content": t}] for t in ("def add(a, b): return a + b", "the cat sat on the mat")]
    whole = contrast(tiny_lm, tiny_sae, d1, d2, top_k=5)
    chunked = contrast(tiny_lm, tiny_sae, d1, d2, top_k=5, chunk_tokens=3)
    for side in ("dataset_1_features", "dataset_2_features"):
        a, b = getattr(whole, side), getattr(chunked, side)
        assert [f.index for f in a] == [f.index for f in b]
        assert [f.mean_units_1 for f in a] == pytest.approx([f.mean_units_1 for f in b], abs=1e-5)


def test_lab_logits_do_not_depend_on_the_chunk_size(tiny_lm, tiny_sae):
    labs = [Lab(tiny_lm, tiny_sae, sae_id="x", chunk_tokens=c) for c in (1000, 4)]
    try:
        whole, chunked = (lab.logits(CONVO[:1], top_k=5) for lab in labs)
    finally:
        for lab in labs:
            lab.close()
    assert list(whole) == list(chunked)
    assert list(whole.values()) == pytest.approx(list(chunked.values()), abs=1e-4)
