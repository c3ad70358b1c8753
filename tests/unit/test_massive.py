"""The one definition of a massive activation (an attention sink past position 0), shared by eval, trainer and
harvester."""

from __future__ import annotations

import torch

from steerlab.activations.massive import count_massive, drop_massive, massive_mask


def test_massive_rows_are_those_over_the_factor_times_the_median_norm():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 16, generator=g) + 3.0
    x[[7, 500]] *= 100.0  # sinks
    x[9] *= 5.0  # a loud but ordinary token
    assert massive_mask(x, 10.0).nonzero().flatten().tolist() == [7, 500]
    kept, dropped = drop_massive(x, 10.0)
    assert dropped == 2 and kept.shape == (998, 16) and torch.equal(kept[8], x[9])
    assert count_massive(x, 0.0) == 0 and drop_massive(x, 0.0)[0] is x  # 0 keeps every token
    assert count_massive(x[:0], 10.0) == 0
    assert count_massive(x.to(torch.bfloat16), 10.0) == 2


def test_the_factor_comes_from_the_setting(monkeypatch):
    x = torch.ones(100, 4)
    x[0] *= 50.0
    monkeypatch.delenv("STEERLAB_MASSIVE_FACTOR", raising=False)
    assert count_massive(x) == 1  # STEERLAB_MASSIVE_FACTOR defaults to 10
    monkeypatch.setenv("STEERLAB_MASSIVE_FACTOR", "0")
    assert count_massive(x) == 0
    monkeypatch.setenv("STEERLAB_MASSIVE_FACTOR", "100")
    assert count_massive(x) == 0 and count_massive(x, 40.0) == 1
