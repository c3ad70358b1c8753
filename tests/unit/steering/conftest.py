"""A tiny TopK SAE reading block 1 of the tiny Llama, with uneven feature scales so unit
conversions are exercised (1.0 = feature_scale raw units)."""

import pytest
import torch

from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.steering.variant import Variant

SAE_ID = "tiny-llama/model.layers.1/topk-128"


def make_tiny_sae(d_in: int = 64, d_sae: int = 128, k: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    sae = create_sae(
        SAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            architecture="topk",
            k=k,
            hookpoint="model.layers.1",
            layer=1,
            model_name="tiny-llama",
        )
    )
    sae.feature_scale.uniform_(0.5, 2.0)
    return sae.requires_grad_(False)


@pytest.fixture()
def tiny_sae():
    return make_tiny_sae()


@pytest.fixture()
def variant():
    return Variant("tiny-llama", sae_id=SAE_ID)


def hidden_at_hookpoint(lm, sae, text: str = "the cat sat on the mat and the dog ran") -> torch.Tensor:
    """The tiny model's residual at the SAE's hookpoint for ``text``: [1, seq, d_model]."""
    from steerlab.models.hooks import forward_to_hookpoint

    ids = lm.tokenizer(text)["input_ids"]
    return forward_to_hookpoint(lm.model, torch.tensor([ids]), sae.cfg.hookpoint).clone()
