"""Activation-only metrics."""

from __future__ import annotations

import pytest
import torch

from steerlab.sae.metrics import RunningFVU, dead_fraction, fvu, l0


def test_fvu_values():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 4.0]])
    assert fvu(x, x) == 0.0
    assert fvu(x, x.mean(0, keepdim=True).expand_as(x)) == pytest.approx(1.0)
    # total variance = 8 + 32/3; error = 1 + 1
    assert fvu(x, x + torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])) == pytest.approx(2 / (8 + 32 / 3))
    with pytest.raises(ValueError, match="zero variance"):
        fvu(torch.ones(3, 2), torch.ones(3, 2))


def test_running_fvu_equals_fvu_of_concatenation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=g) * 3 + 5
    x_hat = x + 0.3 * torch.randn(1000, 8, generator=g)
    running = RunningFVU()
    for a, b in zip(x.split(128), x_hat.split(128)):
        running.update(a, b)
    assert running.compute() == pytest.approx(fvu(x, x_hat), rel=1e-9)


def test_l0_and_dead_fraction():
    f = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]]).reshape(1, 2, 3)
    assert l0(f) == 1.5
    assert dead_fraction(torch.tensor([0, 5, 0, 1])) == 0.5
