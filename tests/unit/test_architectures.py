"""Every family users pick today, as a tiny random model: hooks that leave no trace, steering that keeps
the SAE's error, the engine decoding exactly what the model's own forward gives (one padded batch, a
steered row among unsteered ones, sliding windows crossed), and each family's turn format and stop token."""

from __future__ import annotations

import logging

import pytest
import torch

from steerlab.engine.batcher import Engine
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import chat_input_ids, stop_token_ids
from steerlab.models.hooks import capture_residual, edit_residual, forward_to_hookpoint, resolve_hookpoint
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.steering.batch import RowSteering
from steerlab.steering.conversation import prompt_ids
from steerlab.steering.edits import FeatureEdit
from tests.architectures import FAMILIES, make_model, make_tokenizer

NAMES = list(FAMILIES)
TEXT = "the cat sat on the mat and the dog ran in the park"


@pytest.fixture(scope="module", params=NAMES)
def family(request):
    fam = FAMILIES[request.param]
    tok = make_tokenizer(fam)
    return fam, tok, make_model(fam, len(tok))


def _sae(d_in: int, hookpoint: str):
    torch.manual_seed(1)
    sae = create_sae(SAEConfig(d_in=d_in, d_sae=96, architecture="topk", k=8, hookpoint=hookpoint))
    sae.feature_scale.fill_(4.0)
    return sae.requires_grad_(False)


def test_hooks_capture_edit_and_leave_no_trace(family):
    fam, tok, model = family
    hookpoint = resolve_hookpoint(model, 1)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    with torch.inference_mode():
        out = model(ids, output_hidden_states=True)
        before, hidden = out.logits.clone(), out.hidden_states
        # the block's output is the residual stream after it: hidden_states[2] (a final norm applies only to the last)
        torch.testing.assert_close(forward_to_hookpoint(model, ids, hookpoint), hidden[2], rtol=0, atol=0)
        with capture_residual(model, [hookpoint]) as captured:
            model(ids)
        torch.testing.assert_close(captured[hookpoint], hidden[2], rtol=0, atol=0)
        with edit_residual(model, hookpoint, lambda h: h + 1.0):
            edited = model(ids).logits.clone()
        after = model(ids).logits
    assert not torch.allclose(before, edited)
    assert torch.equal(before, after), f"{fam.name}: logits changed after the hooks were removed"


def test_steering_moves_only_the_edited_feature_and_keeps_the_sae_error(family):
    _, tok, model = family
    hookpoint = resolve_hookpoint(model, 1)
    sae = _sae(model.config.hidden_size, hookpoint)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    j = 5
    editor = RowSteering.for_edits(sae, [FeatureEdit(j, 2.0, "nudge")])
    with torch.inference_mode():
        with capture_residual(model, [hookpoint]) as plain:
            model(ids)
        with edit_residual(model, hookpoint, editor), capture_residual(model, [hookpoint]) as steered:
            model(ids)
    h, e = plain[hookpoint][0], steered[hookpoint][0]
    delta = e - h
    direction = sae.W_dec[j] / sae.W_dec[j].norm()
    assert float((delta - (delta @ direction)[:, None] * direction).abs().max()) < 1e-5  # only along feature j
    torch.testing.assert_close(delta @ sae.W_dec[j] / sae.W_dec[j].norm() ** 2, torch.full((len(h),), 8.0))
    error_before = h - sae.decode(sae.encode(h))
    codes = sae.encode(h)
    codes[:, j] += 8.0
    error_after = e - sae.decode(codes)
    torch.testing.assert_close(error_after, error_before, rtol=0, atol=1e-5)  # the SAE's error reaches the model


def _reference(model, prompt: list[int], steps: int, editor_factory=None) -> list[int]:
    """Greedy decoding by the model's own forward over the whole sequence each step: no cache, no padding."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            if editor_factory is None:
                logits = model(torch.tensor([ids])).logits
            else:
                with edit_residual(model, resolve_hookpoint(model, 1), editor_factory()):
                    logits = model(torch.tensor([ids])).logits
            ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_engine_decodes_what_the_model_forward_gives(family, caplog):
    """Three prompts of different lengths in one padded batch, the middle one steered, 12 tokens each
    (prompt + decode crosses the 8-token sliding windows): the engine's tokens are the reference's."""
    fam, tok, model = family
    hookpoint = resolve_hookpoint(model, 1)
    sae = _sae(model.config.hidden_size, hookpoint)
    ids = tok(TEXT)["input_ids"]
    prompts = [ids, ids[:3], ids[2:9]]
    edits = [FeatureEdit(5, 25.0, "nudge")]
    factories = [None, lambda: RowSteering.for_edits(sae, edits), None]
    params = SamplingParams(max_new_tokens=12, temperature=0)
    with caplog.at_level(logging.INFO, logger="steerlab.engine"):
        engine = Engine(model, tok, hookpoint, set(), max_batch=4)
        try:
            streams = [
                engine.submit(list(p), params, f() if f is not None else None) for p, f in zip(prompts, factories)
            ]
            got = [[e.token_id for e in s if e.token_id is not None] for s in streams]
            again = [[e.token_id for e in engine.submit(list(prompts[0]), params)] for _ in range(2)]
        finally:
            engine.close()
    expected = [_reference(model, p, 12, f) for p, f in zip(prompts, factories)]
    assert got == expected, fam.name
    assert got[1] != _reference(model, prompts[1], 12)  # the steering changed the steered row
    assert [t for t in again[0] if t is not None] == expected[0]
    said = [r.getMessage() for r in caplog.records if "fast decode" in r.getMessage()]
    if fam.model_type == "llama":
        assert said == [] and engine._fast is not None
    else:  # said once for the engine, however many steps it decodes
        assert len(said) == 1 and fam.model_type in said[0] and "model's forward" in said[0], said
        assert engine._fast is None


def test_chat_template_and_turn_end(family):
    fam, tok, _ = family
    messages = [{"role": "user", "content": "hello there"}]
    ids = prompt_ids(tok, messages)
    text = tok.decode(ids)
    assert "hello there" in text
    if fam.template is None:  # no template: plain completion of the text
        assert text.strip().endswith("hello there")
        return
    assert ids == chat_input_ids(tok, messages)
    opened = {"llama3": "assistant<|end_header_id|>\n\n", "gemma": "<start_of_turn>model\n", "mistral": "[/INST]"}
    marker = next((v for k, v in opened.items() if fam.name.startswith(k)), None)
    if marker:
        assert text.endswith(marker)
    stops = stop_token_ids(tok)
    assert tok.eos_token_id in stops
    if fam.end_of_turn is not None:  # the token that closes an assistant turn stops generation
        turn_end = tok.convert_tokens_to_ids(fam.end_of_turn)
        assert turn_end in stops, f"{fam.name}: {fam.end_of_turn} does not stop generation"
        closed = prompt_ids(tok, [*messages, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}])
        assert turn_end in closed  # and it is what the template closes a turn with


def test_a_base_model_tokenizer_without_a_chat_template():
    """Gemma 3 270M's GGUF tokenizer: <bos> in front of every text, no chat template. Inspect's content mask
    covers the messages' text of its plain-completion prompt (it used to call the missing template: a 500
    on /v1/inspect), and corpus windows start with <bos> as every text the model reads does."""
    from tokenizers.processors import TemplateProcessing

    from steerlab.activations.corpus import CorpusSource, record_to_sequences
    from steerlab.models.chat_template import content_mask, template_ids

    tok = make_tokenizer(FAMILIES["gemma3"])
    tok.chat_template = None
    bos = tok.convert_tokens_to_ids("<bos>")
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    messages = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "the cat"}]
    ids = template_ids(tok, messages)
    assert ids[0] == bos and bos not in ids[1:]
    mask = content_mask(tok, messages, ids)
    pieces = [(tok.decode([i]), m) for i, m in zip(ids, mask)]
    assert "".join(p for p, m in pieces if m) == "hello therethe cat"  # <bos> and the "\n\n" between are not
    assert "".join(p for p, m in pieces if not m) == "<bos>\n\n"
    text = " ".join([TEXT] * 12)
    windows = record_to_sequences({"text": text}, tok, CorpusSource(path="corpus.jsonl"), 16)
    assert len(windows) > 3 and all(w[0] == bos and bos not in w[1:] and len(w) <= 16 for w in windows)
    assert [t for w in windows for t in w[1:]] == tok(text, add_special_tokens=False)["input_ids"][
        : sum(len(w) - 1 for w in windows)
    ]
