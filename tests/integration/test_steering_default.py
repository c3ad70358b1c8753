"""Conditional steering on the real default model: nothing changes until the condition fires."""

import pytest
import torch

from steerlab.analysis.inspect import inspect
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import prompt_ids
from steerlab.steering.variant import Variant
from tests.default_features import FRENCH
from tests.unit.steering.test_generate import complete, stream

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "Tell me about the sea."}]
GREEDY = dict(max_completion_tokens=40, temperature=0)


def first_crossing_in_reply(lm, sae, reply_ids, min_index=3):
    """A feature silent (below a threshold) through the prompt and the reply's first tokens, which then
    crosses it at reply token k; returns (feature, threshold, k)."""
    prompt = prompt_ids(lm.tokenizer, MESSAGES)
    ids = torch.tensor([prompt + reply_ids], device=lm.device)
    units = sae.encode(forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)[0].float()) / sae.feature_scale
    n = len(prompt)
    reply = units[n + min_index : -5]
    for j in reply.max(0).values.argsort(descending=True).tolist():
        q = n + min_index + int(reply[:, j].argmax())
        before = float(units[:q, j].max())
        if before < 0.5 * float(units[q, j]) and float(units[q, j]) > 0.3:
            return j, (before + float(units[q, j])) / 2, q - n
    pytest.skip("no feature crosses cleanly inside the reply")


def test_conditional_variant_changes_output_only_after_its_condition_fires(default_lab, default_lm, default_sae):
    plain = complete(default_lab, MESSAGES, **GREEDY)
    x, thr, k = first_crossing_in_reply(default_lm, default_sae, plain.token_ids)
    v = Variant(default_lm, sae_id=default_lab.sae_id)
    v.set_when(v.feature(x) > thr, {FRENCH: 1.25})
    name = v.handle_when(v.feature(x) > thr, lambda ctx: None, name="crossed")
    chunks = list(stream(default_lab, MESSAGES, v, **GREEDY))
    ids = [c.token_id for c in chunks]
    assert ids[: k + 1] == plain.token_ids[: k + 1], "output changed before the condition held"
    assert ids[k + 1 :] != plain.token_ids[k + 1 :], "the scope's edit never changed the output"
    assert [(c.index, c.events) for c in chunks if c.events] == [(k + 1, [name])]
    # inspect through the same variant: the French feature is untouched up to the crossing, then nudged
    convo = MESSAGES + [{"role": "assistant", "content": plain.text}]
    before, after = inspect(default_lm, default_sae, convo), inspect(default_lm, default_sae, convo, v)
    diff = (after.codes_units[:, FRENCH] - before.codes_units[:, FRENCH]).abs() > 1e-4
    first = int(diff.nonzero()[0])
    assert diff[first:].all() and after.tokens[first:] == before.tokens[first:]
    assert after.event_names == [name]
