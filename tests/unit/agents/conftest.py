import pytest
import torch

from steerlab.engine.lab import Lab


@pytest.fixture()
def steered_lab(tiny_lm):
    """The tiny model with a random tiny SAE at block 1 (every feature's scale 3.0). Its (tied) embeddings
    are scaled up 8x: the random model's next-token distributions are otherwise so near uniform that no
    steering changes which text is likely, and a test of the auditor's causal step could not fail or pass."""
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    with torch.no_grad():
        tiny_lm.model.get_input_embeddings().weight.mul_(8.0)
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1"))
    sae.requires_grad_(False).feature_scale.fill_(3.0)
    lab = Lab(tiny_lm, sae, max_batch=8)
    yield lab
    lab.close()
