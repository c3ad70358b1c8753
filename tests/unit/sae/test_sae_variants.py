"""Encode/decode semantics of each variant, the sparse training path, and the constraints."""

from __future__ import annotations

import pytest
import torch

from steerlab.sae import SAEConfig, create_sae, list_architectures
from steerlab.sae.metrics import fvu as fvu_metric

D_IN, D_SAE, K = 32, 128, 8


def make(arch: str, dtype: str = "float32", seed: int = 0):
    sae = create_sae(
        SAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, architecture=arch, dtype=dtype, jumprelu_init_threshold=0.3),
        generator=torch.Generator().manual_seed(seed),
    )
    with torch.no_grad():  # off-default biases so bias handling is exercised
        g = torch.Generator().manual_seed(seed + 1)
        sae.b_enc.copy_(0.1 * torch.randn(D_SAE, generator=g))
        sae.b_dec.copy_(0.5 * torch.randn(D_IN, generator=g))
    return sae


def test_topk_codes_are_the_relu_of_the_top_k_preacts(acts):
    sae = make("topk")
    x = acts[:256]
    f = sae.encode(x)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert f.shape == (256, D_SAE)
    assert (f >= 0).all()
    assert ((f != 0).sum(dim=1) <= K).all()
    top_vals, top_idx = pre.topk(K, dim=1)
    expected = torch.zeros_like(pre).scatter(1, top_idx, top_vals.relu())
    torch.testing.assert_close(f, expected)
    # every nonzero code sits where a top-k pre-activation is, none elsewhere
    assert ((f != 0) <= (expected != 0)).all()


def test_encode_keeps_leading_dims_and_sparse_encode_matches_dense(acts):
    for arch in list_architectures():
        sae = make(arch).eval()
        x = acts[:30].reshape(2, 15, D_IN)
        f = sae.encode(x)
        assert f.shape == (2, 15, D_SAE)
        assert (f >= 0).all()
        codes = sae.sparse_encode(x)
        torch.testing.assert_close(codes.to_dense(), f.reshape(30, D_SAE))
        torch.testing.assert_close(sae.decode(f), f @ sae.W_dec + sae.b_dec)


def test_jumprelu_gates_at_the_threshold(acts):
    sae = make("jumprelu")
    x = acts[:256]
    pre = sae.pre_acts(x)
    f = sae.encode(x)
    assert torch.equal(f != 0, pre > 0.3)
    torch.testing.assert_close(f[f != 0], pre[f != 0])


def test_jumprelu_threshold_learns_through_the_pseudo_derivative(acts):
    sae = make("jumprelu")
    out = sae(acts[:512])
    (out.fvu + out.sparsity_loss).backward()
    assert sae.threshold.grad is not None
    assert sae.threshold.grad.abs().sum() > 0  # the step itself has zero gradient


def test_relu_is_relu_and_pays_l1(acts):
    sae = make("relu")
    x = acts[:64]
    torch.testing.assert_close(sae.encode(x), sae.pre_acts(x).relu())
    assert sae(x).sparsity_loss > 0


def test_batchtopk_keeps_k_per_token_on_average_in_training(acts):
    sae = make("batchtopk").train()
    x = acts[:256]
    out = sae(x)
    per_token = (out.latent_acts != 0).sum(dim=1)
    assert per_token.sum() == K * 256  # exactly k x batch (pre-acts here are mostly positive)
    assert per_token.min() < per_token.max()  # ...but not k for every token
    assert sae.threshold > 0  # estimated from the batch
    sae.eval()
    f = sae.encode(x)
    assert torch.equal(f != 0, sae.pre_acts(x) > sae.threshold)


def test_forward_reports_consistent_metrics(acts):
    for arch in list_architectures():
        sae = make(arch)
        x = acts[:512]
        out = sae(x)
        assert out.sae_out.shape == x.shape and out.latent_acts.shape == (512, D_SAE)
        assert abs(out.fvu.item() - fvu_metric(x, out.sae_out.detach())) < 1e-4
        assert abs(out.l0.item() - (out.latent_acts != 0).sum(1).float().mean().item()) < 1e-4
        assert torch.equal(out.fired, (out.latent_acts != 0).any(0))
        torch.testing.assert_close(out.sae_out, sae.decode(out.latent_acts))
        no_dense = sae(x, dense_latents=False)
        torch.testing.assert_close(no_dense.sae_out, out.sae_out)


def _dense_reference_loss(sae, x, dead, arch):
    """The obvious dense implementation (as in SAELens/sparsify) of FVU + 0.5 * AuxK."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if arch == "topk":
        v, i = pre.topk(K, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, i, v.relu())
    else:
        v, i = pre.relu().flatten().topk(K * x.shape[0])
        f = torch.zeros_like(pre.flatten()).scatter(-1, i, v).view_as(pre)
    recon = f @ sae.W_dec + sae.b_dec
    total = (x - x.mean(0)).pow(2).sum()
    fvu = (recon - x).pow(2).sum() / total
    n_dead, k_aux = int(dead.sum()), D_IN // 2
    av, ai = torch.where(dead[None], pre, -torch.inf).topk(min(k_aux, n_dead), dim=-1)
    aux_recon = torch.zeros_like(pre).scatter(-1, ai, av) @ sae.W_dec
    aux = min(n_dead / k_aux, 1.0) * (aux_recon - (x - recon).detach()).pow(2).sum() / total
    return fvu + 0.5 * aux


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_sparse_training_path_matches_dense_gradients(acts, arch):
    sae = make(arch, dtype="float64")
    x = acts[:128].double().requires_grad_()
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[::3] = True
    out = sae(x, dead_mask=dead)
    (out.fvu + 0.5 * out.aux_loss).backward()
    ours = {n: p.grad.clone() for n, p in sae.named_parameters()}
    ours["x"] = x.grad.clone()
    sae.zero_grad()
    x.grad = None
    _dense_reference_loss(sae, x, dead, arch).backward()
    ref = {n: p.grad for n, p in sae.named_parameters()} | {"x": x.grad}
    for name, grad in ref.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_auxk_loss_only_with_dead_latents(acts):
    sae = make("topk")
    x = acts[:128]
    assert sae(x).aux_loss == 0
    assert sae(x, dead_mask=torch.zeros(D_SAE, dtype=torch.bool)).aux_loss == 0
    assert sae(x, dead_mask=torch.ones(D_SAE, dtype=torch.bool)).aux_loss > 0


def test_decoder_constraint(acts):
    sae = make("topk")
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1, generator=torch.Generator().manual_seed(5)) * 3 + 0.1)
    sae.set_decoder_norm_to_unit()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE))
    out = sae(acts[:256], dead_mask=torch.ones(D_SAE, dtype=torch.bool))
    (out.fvu + out.aux_loss).backward()

    def radial(grad):  # per row: |component of the gradient along the decoder row| / |gradient|
        return ((grad * sae.W_dec).sum(1).abs() / grad.norm(dim=1).clamp_min(1e-12)).max()

    assert radial(sae.W_dec.grad) > 0.05
    sae.remove_gradient_parallel_to_decoder_directions()
    assert radial(sae.W_dec.grad) < 1e-5


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu", "relu"])
def test_fold_input_scale_is_exact(acts, arch):
    """An SAE trained on x * s, once folded, reads raw x: codes scale by 1/s, output is the
    same reconstruction in raw units."""
    sae = make(arch, dtype="float64").eval()
    if arch == "batchtopk":
        sae.threshold.fill_(0.2)
    s = 3.7
    x = acts[:64].double()
    f_scaled = sae.encode(x * s)
    recon_scaled = sae.decode(f_scaled)
    sae.fold_input_scale(s)
    torch.testing.assert_close(sae.encode(x), f_scaled / s)
    torch.testing.assert_close(sae.decode(sae.encode(x)), recon_scaled / s)
