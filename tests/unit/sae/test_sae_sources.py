"""TensorActivationSource: seeded, resumable shuffled stream."""

from __future__ import annotations

import torch

from steerlab.sae import ActivationSource, TensorActivationSource


def test_stream_is_a_shuffled_permutation_per_epoch():
    data = torch.arange(100, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    src = TensorActivationSource(data, epochs=2)
    assert isinstance(src, ActivationSource) and (src.num_tokens, src.d_in) == (200, 3)
    batches = list(src.iter_batches(25, seed=7))
    assert len(batches) == 8 and all(b.shape == (25, 3) and b.dtype == torch.float32 for b in batches)
    stream = torch.cat(batches)[:, 0]
    for epoch in (stream[:100], stream[100:]):
        assert sorted(epoch.tolist()) == list(range(100))
    assert not torch.equal(stream[:100], torch.arange(100.0))  # shuffled
    assert not torch.equal(stream[:100], stream[100:])  # reshuffled each epoch


def test_deterministic_and_resumable_from_any_token():
    data = torch.randn(90, 4)
    src = TensorActivationSource(data, epochs=3)
    full = torch.cat(list(src.iter_batches(1, seed=3)))  # every token of the stream, in order
    assert full.shape == (270, 4)
    assert torch.equal(full[:256], torch.cat(list(src.iter_batches(16, seed=3))))
    assert not torch.equal(full, torch.cat(list(src.iter_batches(1, seed=4))))
    for start in (16, 80, 96, 250):  # including starts inside and across epoch boundaries
        resumed = torch.cat(list(src.iter_batches(16, start_token=start, seed=3)) or [torch.empty(0, 4)])
        assert torch.equal(resumed, full[start : start + resumed.shape[0]])
        assert resumed.shape[0] == (270 - start) // 16 * 16  # full batches only
