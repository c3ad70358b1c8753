"""Shared fixtures for the SAE unit tests: small, seeded, sparse synthetic activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


def sparse_activations(n: int = 8192, d: int = 32, n_dirs: int = 96, active: int = 3, seed: int = 0) -> torch.Tensor:
    """[n, d] tokens that are sparse non-negative combinations of ``n_dirs`` random unit
    directions, plus a shared offset and a little noise: the structure SAEs are built for."""
    g = torch.Generator().manual_seed(seed)
    dirs = F.normalize(torch.randn(n_dirs, d, generator=g), dim=1)
    idx = torch.rand(n, n_dirs, generator=g).argsort(dim=1)[:, :active]  # distinct per token
    coef = torch.rand(n, active, generator=g) * 2 + 0.5
    offset = torch.randn(d, generator=g)
    return (
        F.embedding_bag(idx, dirs, per_sample_weights=coef, mode="sum") + offset + 0.01 * torch.randn(n, d, generator=g)
    )


@pytest.fixture(scope="session")
def acts() -> torch.Tensor:
    return sparse_activations()


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These tensors are tiny: thread start-up costs more than it saves, and on a busy
    machine waiting for a second core dominates. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
