"""Attribution: gradient x activation matches real ablations to first order; the error term is kept."""

import uuid

import pytest
import torch

from steerlab.analysis.attribution import attribute
from steerlab.models.hooks import output_hidden, replace_output_hidden
from steerlab.server.wire import attribution_response
from steerlab.steering.conversation import conversation_ids
from steerlab.steering.errors import ConversationError

CONVO = [
    {"role": "user", "content": "the cat sat on the mat"},
    {"role": "assistant", "content": "and the dog ran in the park"},
]


def logit_with_ablation(lm, sae, ids, position, token, ablate=None):
    """The target logit when feature ``ablate = (pos, index)`` is zeroed at one token (error kept)."""

    def hook(_m, _i, output):
        h = output_hidden(output)
        codes = sae.encode(h)
        error = h - sae.decode(codes)
        if ablate is not None:
            codes[0, ablate[0], ablate[1]] = 0.0
        return replace_output_hidden(output, sae.decode(codes) + error)

    handle = lm.model.get_submodule(sae.cfg.hookpoint).register_forward_hook(hook)
    try:
        with torch.no_grad():
            return float(lm.model(input_ids=torch.tensor([ids[:position]])).logits[0, -1, token])
    finally:
        handle.remove()


def test_attribution_predicts_single_ablations(tiny_lm, tiny_sae):
    ids = conversation_ids(tiny_lm.tokenizer, CONVO)
    result = attribute(tiny_lm, tiny_sae, CONVO, -4)
    position, token = result.target_position, result.target_token_id
    assert token == ids[position] and len(result.tokens) == position
    with torch.no_grad():
        plain = float(tiny_lm.model(input_ids=torch.tensor([ids[:position]])).logits[0, -1, token])
    assert result.logit == pytest.approx(plain, abs=1e-4)  # the SAE's error term is kept
    top = result.top(6)
    predicted = torch.tensor([a.attribution for a in top])
    actual = torch.tensor(
        [plain - logit_with_ablation(tiny_lm, tiny_sae, ids, position, token, (a.position, a.index)) for a in top]
    )
    assert torch.equal(predicted.sign(), actual.sign())
    torch.testing.assert_close(actual, predicted, rtol=0.3, atol=0.05 * float(predicted.abs().max()))


def test_breakdowns_and_ember_shape(tiny_lm, tiny_sae):
    result = attribute(tiny_lm, tiny_sae, CONVO, -4, token=" the", labels={5: "five"})
    assert result.target_token == " the"
    per_pos = result.by_position()
    assert sum(p[2] for p in per_pos) == pytest.approx(float(result.scores.sum()), rel=1e-4, abs=1e-6)
    by_feat = result.by_feature(3)
    assert [v for _, _, v in by_feat] == sorted((v for _, _, v in by_feat), reverse=True)
    ember = attribution_response(result, "sae-x", k=3)
    assert ember["num_input_tokens"] == len(conversation_ids(tiny_lm.tokenizer, CONVO))
    first = ember["to_ablate"][0]
    uuid.UUID(first["id"])
    assert first["value"] == pytest.approx(by_feat[0][2]) and all(t["activation_strength"] > 0 for t in first["tokens"])
    assert result.top(3, sign="positive")[0].attribution >= result.top(3, sign="negative")[0].attribution


def test_bad_target(tiny_lm, tiny_sae):
    with pytest.raises(ConversationError, match="index"):
        attribute(tiny_lm, tiny_sae, CONVO, 0)
    with pytest.raises(ConversationError, match="index"):
        attribute(tiny_lm, tiny_sae, CONVO, 10_000)
    with pytest.raises(ConversationError, match="token"):
        attribute(tiny_lm, tiny_sae, CONVO, -2, token="pirates ahoy matey")
