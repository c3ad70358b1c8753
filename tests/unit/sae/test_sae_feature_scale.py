"""feature_scale: per-latent quantiles of nonzero activations, streamed in bounded memory."""

from __future__ import annotations

import torch

from steerlab.sae import SAEConfig, create_sae
from steerlab.sae.quantiles import FeatureQuantiles


def identity_relu_sae(d: int = 8):
    """A ReLU SAE whose code j is exactly relu(x_j): activations we can craft by hand."""
    sae = create_sae(SAEConfig(d_in=d, d_sae=d, architecture="relu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def test_feature_scale_on_crafted_activations():
    g = torch.Generator().manual_seed(0)
    n, d = 40_000, 8
    x = torch.rand(n, d, generator=g) * torch.arange(1, d + 1)  # latent j ~ U(0, j+1)
    x[:, 5] = -1.0  # latent 5 never fires
    x[: n // 2, 6] = 0.0  # latent 6 fires on half the tokens; zeros must not count
    x[:, 7] = 2.5  # latent 7 is constant
    sae = identity_relu_sae(d)
    scale = sae.compute_feature_scale(x.split(3000), quantile=0.99)  # streamed in uneven batches
    expected = torch.tensor([0.99 * (j + 1) for j in range(d)])
    expected[5], expected[7] = 1.0, 2.5
    torch.testing.assert_close(scale, expected, rtol=0.01, atol=0.0)
    assert torch.equal(sae.feature_scale, scale) and scale.dtype == torch.float32


def test_feature_scale_median_and_max_tokens():
    x = torch.rand(20_000, 4, generator=torch.Generator().manual_seed(1)) * 10
    sae = identity_relu_sae(4)
    median = sae.compute_feature_scale(x.split(1000), quantile=0.5)
    torch.testing.assert_close(median, torch.full((4,), 5.0), rtol=0.03, atol=0.0)
    x[1000:] = 100.0  # only the first 1000 tokens may be read
    capped = sae.compute_feature_scale(x.split(700), quantile=0.99, max_tokens=1000)
    assert (capped < 10.5).all()


def test_quantiles_match_exact_on_heavy_tailed_data():
    g = torch.Generator().manual_seed(2)
    d, n = 16, 20_000
    values = torch.exp(torch.randn(n, d, generator=g) * 1.5 + torch.linspace(-3, 3, d))  # log-normal
    stats = FeatureQuantiles(d)
    for chunk in values.split(4096):
        stats.update(chunk.reshape(-1), torch.arange(d).repeat(chunk.shape[0]))
    assert torch.equal(stats.totals, torch.full((d,), n))
    for q in (0.5, 0.9, 0.99):
        exact = values.quantile(q, dim=0)
        torch.testing.assert_close(stats.quantile(q), exact, rtol=0.02, atol=0.0)


def test_quantiles_ignore_non_positive_and_default_for_unseen():
    stats = FeatureQuantiles(3)
    stats.update(torch.tensor([0.0, -1.0, 2.0, 2.0]), torch.tensor([0, 0, 1, 1]))
    out = stats.quantile(0.99, default=7.0)
    assert out[0] == 7.0 and out[2] == 7.0
    assert abs(out[1].item() - 2.0) < 0.05
    assert stats.counts.shape == (3, stats.n_bins)  # memory independent of tokens seen


def test_feature_scale_from_a_trained_topk_sae(acts):
    sae = create_sae(SAEConfig(d_in=32, d_sae=64, k=4)).eval()
    scale = sae.compute_feature_scale(acts.split(1024))
    codes = sae.encode(acts)
    for j in range(64):
        nz = codes[:, j][codes[:, j] > 0]
        expected = nz.quantile(0.99) if nz.numel() else torch.tensor(1.0)
        assert abs(scale[j] - expected) <= 0.02 * expected + 1e-6, j
