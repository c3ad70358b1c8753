"""Chat completion with a variant through the lab (the engine's decode path): sampling, events and
aborts, logits, tokenize, bad input, CLI."""

import json
from dataclasses import dataclass

import pytest
import torch
from typer.testing import CliRunner

from steerlab.engine.lab import Lab, sampling_params
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.controller_json import Controller
from steerlab.steering.conversation import conversation_ids, prompt_ids
from steerlab.steering.errors import ContextLengthError, ConversationError, InferenceAborted, SteeringError
from steerlab.steering.variant import Variant
from tests.unit.steering.conftest import SAE_ID

MESSAGES = [{"role": "user", "content": "the cat sat on the mat"}]
GREEDY = dict(max_completion_tokens=12, temperature=0)


@pytest.fixture()
def lab(tiny_lm, tiny_sae):
    lab = Lab(tiny_lm, tiny_sae, sae_id=SAE_ID, max_batch=4)
    yield lab
    lab.close()


@pytest.fixture()
def bare_lab(tiny_lm):
    """A lab without an SAE: plain chat only."""
    lab = Lab(tiny_lm, max_batch=2)
    yield lab
    lab.close()


@dataclass
class Reply:
    text: str
    finish_reason: str
    event_names: list[str]
    token_ids: list[int]

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


def stream(lab, messages, variant=None, **sampling):
    return lab.generate(messages, sampling_params(**sampling), variant)


def complete(lab, messages, variant=None, **sampling) -> Reply:
    """The whole reply; ``token_ids`` leave out a stop token that ended it."""
    text, events, token_ids, finish = "", [], [], "length"
    stops = lab.engine.stop_token_ids
    for event in stream(lab, messages, variant, **sampling):
        text += event.text
        events += event.events
        if event.token_id is not None and not (event.finish_reason == "stop" and event.token_id in stops):
            token_ids.append(event.token_id)
        finish = event.finish_reason or finish
    return Reply(text, finish, events, token_ids)


def test_same_seed_same_text(lab, variant):
    variant.set(3, 1.0)
    runs = [complete(lab, MESSAGES, variant, max_completion_tokens=15, temperature=1.0, seed=s).text for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_steering_changes_greedy_output_and_all_forms_agree(lab, variant):
    plain = complete(lab, MESSAGES, **GREEDY)
    variant.set(3, 20.0)
    variant.set(9, 0.0, mode="pin")
    steered = complete(lab, MESSAGES, variant, **GREEDY)
    assert steered.token_ids != plain.token_ids
    text = variant.controller.to_json()
    for form in (variant.controller, json.loads(text), text):
        assert complete(lab, MESSAGES, form, **GREEDY).token_ids == steered.token_ids
    assert complete(lab, MESSAGES, "tiny-llama", **GREEDY).token_ids == plain.token_ids


def _crossing_in_reply(lm, sae, messages, reply_ids):
    """A feature whose activation first crosses a threshold at a generated token (not in the prompt)."""
    prompt = prompt_ids(lm.tokenizer, messages)
    ids = torch.tensor([prompt + reply_ids])
    units = sae.encode(forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint))[0] / sae.feature_scale
    n = len(prompt)
    for j in units[n:].max(0).values.argsort(descending=True).tolist():
        q = n + int(units[n:-1, j].argmax())
        if units[:q, j].max() < units[q, j]:
            return j, float(units[:q, j].max() + units[q, j]) / 2, q - n
    pytest.skip("no feature crosses inside the reply")


def test_conditional_variant_changes_output_only_after_it_fires(lab, tiny_lm, tiny_sae, variant):
    plain = complete(lab, MESSAGES, **GREEDY)
    x, thr, k = _crossing_in_reply(tiny_lm, tiny_sae, MESSAGES, plain.token_ids)
    variant.set_when(variant.feature(x) > thr, {(x + 1) % 128: 30.0})
    seen = []
    name = variant.handle_when(variant.feature(x) > thr, lambda ctx: seen.append(ctx.response_so_far))
    chunks = list(stream(lab, MESSAGES, variant, **GREEDY))
    ids = [c.token_id for c in chunks]
    # the token at reply index k is the first input on which the condition holds; its output is k + 1
    assert ids[: k + 1] == plain.token_ids[: k + 1]
    assert ids[k + 1 :] != plain.token_ids[k + 1 : len(ids)]
    assert [c.index for c in chunks if c.events] == [k + 1] and chunks[k + 1].events == [name]
    assert len(seen) == 1


def test_abort_when_raises_as_soon_as_the_condition_holds(lab, variant):
    variant.abort_when(variant.feature(0) >= 0, name="stop-now")  # holds at the first prompt token
    reply = stream(lab, MESSAGES, variant, **GREEDY)
    with pytest.raises(InferenceAborted, match="stop-now"):
        next(reply)
    # a bare controller only reports the event: the server's clients run their own handlers
    chunks = list(stream(lab, MESSAGES, variant.controller, **GREEDY))
    assert chunks[0].events == ["stop-now"] and all(not c.events for c in chunks[1:])


def test_stop_strings_and_lengths(lab):
    full = complete(lab, MESSAGES, max_completion_tokens=30, temperature=0)
    if len(full.text) < 6:
        pytest.skip("reply too short")
    stop = full.text[3:5]
    cut = complete(lab, MESSAGES, max_completion_tokens=30, temperature=0, stop=stop)
    assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)
    short = complete(lab, MESSAGES, max_completion_tokens=2, temperature=0)
    assert short.completion_tokens <= 2


def test_next_token_logits(lab, tiny_lm, variant):
    ids = prompt_ids(tiny_lm.tokenizer, MESSAGES)
    with torch.no_grad():
        raw = tiny_lm.model(input_ids=torch.tensor([ids])).logits[0, -1]
    top = lab.logits(MESSAGES, None, top_k=5)
    values = list(top.values())
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(float(raw.max()), abs=1e-5)
    only = lab.logits(MESSAGES, None, top_k=10, filter_vocabulary=["the", " the"])
    assert set(only) <= {"the", " the"}
    variant.set(3, 20.0)
    assert lab.logits(MESSAGES, variant, top_k=5) != top
    with pytest.raises(ConversationError, match=r"filter_vocabulary\[1\]"):
        lab.logits(MESSAGES, None, filter_vocabulary=["the", "pirates ahoy"])
    with pytest.raises(ConversationError, match="top_k"):
        lab.logits(MESSAGES, None, top_k=0)


def test_tokenize_matches_conversation_positions(lab, tiny_lm):
    convo = MESSAGES + [{"role": "assistant", "content": "and the dog ran"}]
    tokens = lab.tokenize(convo)
    assert len(tokens) == len(conversation_ids(tiny_lm.tokenizer, convo))
    assert "".join(tokens).endswith("ran<|im_end|>\n")


def test_bad_input_names_the_field(lab, bare_lab, variant):
    with pytest.raises(ConversationError, match=r"messages\[0\]\.role"):
        complete(lab, [{"role": "robot", "content": "hi"}])
    with pytest.raises(ConversationError, match="messages"):
        complete(lab, [])
    with pytest.raises(ContextLengthError, match="context is 512"):
        complete(lab, [{"role": "user", "content": "the cat " * 400}])
    with pytest.raises(ConversationError, match="temperature"):
        complete(lab, MESSAGES, temperature=-1)
    variant.set(3, 1.0)
    with pytest.raises(SteeringError, match="sae"):
        complete(bare_lab, MESSAGES, variant)
    variant.set(500, 1.0)  # beyond the SAE: refused before the model runs
    with pytest.raises(SteeringError, match=r"interventions\[1\].*0\.\.127"):
        complete(lab, MESSAGES, variant)


def test_row_steering_in_the_engine_matches_in_process_generation(lab, tiny_lm, tiny_sae, variant):
    from steerlab.engine.batcher import Engine
    from steerlab.generation.sampler import SamplingParams
    from steerlab.models.chat_template import stop_token_ids
    from steerlab.steering.batch import RowSteering
    from steerlab.steering.plan import compile_controller

    variant.set(3, 8.0)
    variant.handle_when(variant.feature(0) >= 0, lambda ctx: None, name="always")
    expected = complete(lab, MESSAGES, variant, max_completion_tokens=8, temperature=0)
    engine = Engine(tiny_lm.model, tiny_lm.tokenizer, tiny_sae.cfg.hookpoint, stop_token_ids(tiny_lm.tokenizer))
    try:
        editor = RowSteering(tiny_sae, compile_controller(variant.controller, tiny_sae))
        text, _, events = engine.generate(
            prompt_ids(tiny_lm.tokenizer, MESSAGES), SamplingParams(max_new_tokens=8, temperature=0), editor
        )
    finally:
        engine.close()
    assert text == expected.text and events == ["always"] == expected.event_names


def test_cli_chat_with_controller_file(tiny_model_dir, tmp_path, tiny_sae, steerlab_home):
    from steerlab.cli import app
    from steerlab.features.identity import sae_identity

    sae_dir = tiny_sae.save(tmp_path / "sae")
    v = Variant("tiny-llama", sae_id=sae_identity(tiny_sae))  # the CLI's lab names its SAE by its weights
    v.set(3, 2.0)
    v.handle_when(v.feature(0) >= 0, lambda ctx: None, name="hello-event")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(v.controller.to_json())
    data = v.controller.json()
    data["interventions"][0]["mode"] = "shout"
    bad.write_text(json.dumps(data))
    runner = CliRunner()
    base = [
        "chat",
        "hi",
        "--model",
        str(tiny_model_dir),
        "--sae",
        str(sae_dir),
        "--max-tokens",
        "4",
        "--temperature",
        "0",
    ]
    res = runner.invoke(app, base + ["--controller", str(good), "--feature", "5=0:pin"])
    assert res.exit_code == 0, res.output
    assert "hello-event" in res.output
    res = runner.invoke(app, base + ["--controller", str(bad)])
    assert res.exit_code == 2 and "interventions[0].mode" in res.output and "Traceback" not in res.output
    assert Controller.from_json(good.read_text()).to_json() == good.read_text()
