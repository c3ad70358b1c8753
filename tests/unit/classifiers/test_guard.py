"""A classifier's score as a steering condition (issue 16, item 4), on the tiny model and SAE.

The classifiers here are built by hand (a few weights over SAE features or the residual), saved where
the Lab finds them; the reference score of every prefix is recomputed from a plain forward of the
whole token sequence, independently of the running pools the guard keeps.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from steerlab.classifiers import storage
from steerlab.classifiers.fit import Linear, TextModel
from steerlab.classifiers.model import Classifier
from steerlab.classifiers.pooling import content_start
from steerlab.engine.lab import Lab, sampling_params
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.settings import get_settings
from steerlab.steering import Controller, ControllerError, InferenceAborted, Variant, classifier
from steerlab.steering.batch import SteeringBatch
from steerlab.steering.conversation import prompt_ids
from steerlab.steering.plan import compile_controller

MESSAGES = [{"role": "user", "content": "the cat sat on the mat and the dog ran to the park"}]


@pytest.fixture()
def lab(tiny_lm, tiny_sae, steerlab_home):
    lab = Lab(tiny_lm, tiny_sae, max_batch=4)
    yield lab
    lab.close()


def make_classifier(
    lab, name: str, kind: str = "sae", pool: str = "mean", seed: int = 0, positive: bool = False, max_tokens: int = 256
):
    """A hand-made classifier saved for ``lab``: ``sae`` reads 12 features, ``raw`` the whole residual."""
    rng = np.random.default_rng(seed)
    text_model = None
    if kind == "sae":
        indices = np.sort(rng.choice(lab.d_sae, 12, replace=False)).astype(np.int64)
        weights = rng.normal(0, 3, 12).astype(np.float32)
    elif kind == "text":
        indices, weights = None, np.ones(2, np.float32)
        text_model = TextModel(["cat", "dog"], np.ones(2), Linear(weights, -1.0))
    else:
        indices, weights = None, rng.normal(0, 1, lab.sae.cfg.d_in).astype(np.float32)
    if positive:
        weights = np.abs(weights)
    clf = Classifier(
        name=name,
        kind=kind,
        pool=pool,
        linear=Linear(weights, -1.0, indices),
        threshold=0.5,
        max_tokens=max_tokens,
        model=lab.model_name,
        hookpoint=lab.sae.cfg.hookpoint,
        layer=1,
        sae_id=lab.sae_id,
        text_model=text_model,
    )
    storage.save(clf, storage.user_root(lab.sae_id) / name)
    return clf


def reference_scores(lab, clf: Classifier, ids: list[int]) -> np.ndarray:
    """The classifier's score after each token of ``ids`` (NaN on the chat template's prefix and until
    ``guard_min_tokens`` are pooled), from one forward of the whole sequence: the definition the guard
    must match."""
    with torch.inference_mode():
        hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids]), lab.sae.cfg.hookpoint)[0].float()
        x = lab.sae.encode(hidden).float() if clf.kind == "sae" else hidden
    x = x.numpy().astype(np.float64)
    if clf.linear.indices is not None:
        x = x[:, clf.linear.indices]
    skip = content_start(lab.lm.tokenizer)
    out = np.full(len(ids), np.nan)
    for t in range(skip + get_settings().guard_min_tokens - 1, len(ids)):
        part = x[skip : t + 1]
        pooled = part.mean(0) if clf.pool == "mean" else part.max(0)
        out[t] = 1 / (1 + math.exp(-(pooled @ clf.linear.weights.astype(np.float64) + clf.linear.bias)))
    return out


def crossing_threshold(scores: np.ndarray, lo: int, ops: str = "><") -> tuple[str, float, int]:
    """``(op, threshold, position)``: ``score op threshold`` first holds at ``position``, after at least
    two scored tokens where it does not (the threshold is the midpoint between that score and the most
    extreme one before it, so no rounding can move the crossing); the first such position from ``lo``
    on, else from the third scored token on; rising scores (``>``) first, else falling ones."""
    scored = np.flatnonzero(~np.isnan(scores))
    early = int(scored[0]) + 2
    for op in ops:
        sign = 1.0 if op == ">" else -1.0
        for t in [*range(max(lo, early), len(scores)), *range(early, lo)]:
            best = float(np.nanmax(sign * scores[:t]))
            if sign * scores[t] > best + 1e-5:
                return op, sign * (sign * scores[t] + best) / 2, t
    raise AssertionError("the score never moves past its earlier extremes: pick another probe")


def middle(lab, ids: list[int]) -> int:
    """A position halfway through the tokens the classifier scores."""
    skip = content_start(lab.lm.tokenizer)
    return skip + (len(ids) - skip) // 2


def guard(name: str, threshold: float, abort: bool = False, event: str = "guard", op: str = ">") -> Controller:
    v = Variant("tiny-llama")
    condition = classifier(name) > threshold if op == ">" else classifier(name) < threshold
    if abort:
        v.abort_when(condition, name=event)
    else:
        v.handle_when(condition, lambda ctx: None, name=event)
    return v.controller


def events_by_chunks(lab, ctrl: Controller, ids: list[int], chunks: list[int]) -> list[tuple[str, int]]:
    """Run the guard over the sequence's residual in chunks (a prefill, then decode-sized pieces)."""
    plan = compile_controller(ctrl, lab.sae, lab.sae_id, lab.condition_probes(ctrl))
    batch = SteeringBatch(lab.sae, [plan])
    with torch.inference_mode():
        hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids]), lab.sae.cfg.hookpoint)
    start, events = 0, []
    for n in chunks:
        batch(hidden[:, start : start + n])
        start += n
        events += batch.drain_events()[0]
    return events


# ------------------------------------------------------------------ the condition fires where the score crosses


@pytest.mark.parametrize(("kind", "pool"), [("sae", "mean"), ("sae", "max"), ("raw", "mean"), ("raw", "max")])
def test_condition_fires_exactly_where_the_probe_score_crosses(lab, kind, pool):
    clf = make_classifier(lab, "probe", kind, pool)
    ids = prompt_ids(lab.lm.tokenizer, MESSAGES)
    scores = reference_scores(lab, clf, ids)
    lo = middle(lab, ids)
    op, threshold, at = crossing_threshold(scores, lo)
    ctrl = guard("probe", threshold, op=op)
    prefill = at - 3  # the crossing comes three decode steps after the prefill
    assert events_by_chunks(lab, ctrl, ids, [prefill] + [1] * (len(ids) - prefill)) == [("guard", at)]
    assert events_by_chunks(lab, ctrl, ids, [len(ids)]) == [("guard", at)]  # one call: the same token
    # a threshold just above the highest score never fires
    never = float(np.nanmax(scores)) + 1e-3 if op == ">" else float(np.nanmin(scores)) - 1e-3
    assert events_by_chunks(lab, guard("probe", never, op=op), ids, [len(ids)]) == []


@pytest.mark.parametrize("min_tokens", [1, 4])
def test_no_score_before_min_tokens_are_pooled_so_not_even_a_not_equal_condition_holds(lab, monkeypatch, min_tokens):
    monkeypatch.setenv("STEERLAB_GUARD_MIN_TOKENS", str(min_tokens))
    make_classifier(lab, "probe")
    ids = prompt_ids(lab.lm.tokenizer, MESSAGES)
    v = Variant("tiny-llama")
    v.handle_when(classifier("probe") != 0.5, lambda ctx: None, name="any")
    first = content_start(lab.lm.tokenizer) + min_tokens - 1
    assert events_by_chunks(lab, v.controller, ids, [len(ids)]) == [("any", first)]
    assert events_by_chunks(lab, v.controller, ids, [first] + [1] * (len(ids) - first)) == [("any", first)]


def test_rows_of_a_batch_keep_their_own_pools(lab):
    """Two rows, different classifiers and lengths, left-padded in one batch: each row's event is where
    it is when the row runs alone."""
    a, b = make_classifier(lab, "a", "sae", "mean", seed=1), make_classifier(lab, "b", "raw", "max", seed=2)
    ids_a = prompt_ids(lab.lm.tokenizer, MESSAGES)
    ids_b = prompt_ids(lab.lm.tokenizer, [{"role": "user", "content": "python code with numbers 1 2 3 4 5"}])
    op_a, thr_a, at_a = crossing_threshold(reference_scores(lab, a, ids_a), middle(lab, ids_a))
    op_b, thr_b, at_b = crossing_threshold(reference_scores(lab, b, ids_b), middle(lab, ids_b))
    plans = []
    for name, thr, op in (("a", thr_a, op_a), ("b", thr_b, op_b)):
        ctrl = guard(name, thr, op=op)
        plans.append(compile_controller(ctrl, lab.sae, lab.sae_id, lab.condition_probes(ctrl)))
    width = max(len(ids_a), len(ids_b))
    ids = torch.zeros(2, width, dtype=torch.long)
    valid = torch.zeros(2, width, dtype=torch.bool)
    for r, row in enumerate((ids_a, ids_b)):
        ids[r, width - len(row) :] = torch.tensor(row)
        valid[r, width - len(row) :] = True
    with torch.inference_mode():
        hidden = forward_to_hookpoint(
            lab.lm.model,
            ids,
            lab.sae.cfg.hookpoint,
            valid.long(),
        )
    batch = SteeringBatch(lab.sae, plans)
    batch(hidden, valid)
    # the padded forward's residual differs from an unpadded one by rounding only (far below the 1e-5
    # margins of the midpoint thresholds)
    assert batch.drain_events() == [[("guard", at_a)], [("guard", at_b)]]


# ------------------------------------------------------------------ through the engine


def test_abort_stops_decoding_on_the_token_where_the_score_crosses(lab):
    clf = make_classifier(lab, "probe", "sae", "mean", seed=2)  # its score rises along this reply
    params = sampling_params(max_completion_tokens=16, temperature=0)
    plain = [e.token_id for e in lab.generate(MESSAGES, params) if e.token_id is not None]
    ids = prompt_ids(lab.lm.tokenizer, MESSAGES)
    scores = reference_scores(lab, clf, ids + plain)
    _, threshold, at = crossing_threshold(scores, len(ids) + 2, ops=">")
    assert at < len(ids) + len(plain) - 1, "the crossing must fall inside the reply"
    editor = lab.editor_for_controller(guard("probe", threshold, abort=True).json())
    text, finish, events = lab.engine.generate(ids, params, editor)
    assert finish == "abort" and events == ["guard"]
    # the token at ``at`` was fed back when it crossed: it is the last one shown
    assert lab.engine.generate(ids, params, None)[0].startswith(text)
    assert len(lab.lm.tokenizer(text, add_special_tokens=False)["input_ids"]) >= 1
    tokens = [e for e in lab.generate(MESSAGES, params, Controller.from_json(guard("probe", threshold, True).json()))]
    assert len(tokens) == at - len(ids) + 2  # at - len(ids) + 1 tokens, then the abort event
    assert tokens[-1].finish_reason == "abort" and tokens[-1].token_id is None
    # a Variant's abort_when raises in process, as on features
    v = Variant("tiny-llama")
    v.abort_when(classifier("probe") > threshold, name="guard")
    with pytest.raises(InferenceAborted):
        list(lab.generate(MESSAGES, params, v))
    # unguarded (threshold above every score): the whole reply
    quiet = lab.editor_for_controller(guard("probe", float(np.nanmax(scores)) + 1e-3, abort=True).json())
    assert lab.engine.generate(ids, params, quiet)[1] in ("stop", "length")


def test_a_guard_can_pin_features_from_the_token_where_it_fires(lab):
    """'when jailbreak > 0.5, pin the refusal features': edits switch on at the crossing, not before."""
    clf = make_classifier(lab, "probe", "sae", "max", positive=True)
    ids = prompt_ids(lab.lm.tokenizer, MESSAGES)
    _, threshold, at = crossing_threshold(reference_scores(lab, clf, ids), middle(lab, ids), ops=">")
    v = Variant("tiny-llama")
    v.set_when(classifier("probe") > threshold, {v.feature(7): 1.0}, mode="pin")
    plan = compile_controller(v.controller, lab.sae, lab.sae_id, lab.condition_probes(v.controller))
    batch = SteeringBatch(lab.sae, [plan], capture=True)
    with torch.inference_mode():
        hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids]), lab.sae.cfg.hookpoint)
        batch(hidden)
    pinned = batch.last_codes[0, :, 7] / lab.sae.feature_scale[7]
    assert torch.allclose(pinned[at:], torch.ones(len(ids) - at), atol=1e-5)
    codes = lab.sae.encode(hidden)[0, :at, 7] / lab.sae.feature_scale[7]
    assert torch.allclose(pinned[:at], codes, atol=1e-5)


# ------------------------------------------------------------------ the controller JSON


def test_classifier_conditions_round_trip_and_abort_is_written_only_when_set():
    v = Variant("tiny-llama")
    v.abort_when(classifier("jailbreak") > 0.9, name="jb")
    v.set_when((classifier("jailbreak") > 0.5) | (v.feature(3) > 0.2), {v.feature(4): 1.0}, mode="pin")
    v.abort_when(v.feature(5) > 0.5, name="f5")  # features only: the SDK's JSON, the client aborts
    data = v.controller.json()
    assert data["scopes"][0]["conditionals"]["conditionals"] == [
        {"classifier": "jailbreak", "operator": ">", "right_hand": 0.9}
    ]
    assert data["scopes"][0]["abort"] is True
    assert "abort" not in data["scopes"][1] and "abort" not in data["scopes"][2]
    assert Controller.from_json(json.dumps(data)).json() == data
    back = Variant.from_controller(data)
    assert back.controller.json() == data and "jb" in back.abort_events
    assert [n for _, n in Controller.from_json(data).iter_classifiers()] == ["jailbreak", "jailbreak"]


@pytest.mark.parametrize(
    ("condition", "field", "message"),
    [
        ({"classifier": "jb", "operator": ">", "right_hand": 1.5}, "right_hand", r"\[0, 1\]"),
        ({"classifier": "jb", "operator": "=>", "right_hand": 0.5}, "operator", "must be one of"),
        ({"classifier": 7, "operator": ">", "right_hand": 0.5}, "classifier", "classifier name"),
        ({"classifier": "jb", "operator": ">"}, "right_hand", "required"),
    ],
)
def test_bad_classifier_conditions_name_the_field(condition, field, message):
    data = {"scopes": [{"conditionals": {"conditionals": [condition], "operator": "AND"}, "controller": {}}]}
    with pytest.raises(ControllerError, match=message) as err:
        Controller.from_json(data)
    assert err.value.field == f"scopes[0].conditionals.conditionals[0].{field}"
    data["scopes"][0]["conditionals"]["conditionals"] = [{"classifier": "jb", "operator": ">", "right_hand": 0.5}]
    data["scopes"][0]["abort"] = "yes"
    with pytest.raises(ControllerError) as err:
        Controller.from_json(data)
    assert err.value.field == "scopes[0].abort"


def test_an_unknown_or_text_classifier_is_refused_naming_the_field_and_the_choices(lab, steerlab_home):
    make_classifier(lab, "probe")
    ctrl = guard("nope", 0.5)
    with pytest.raises(ControllerError) as err:
        lab.steering_for(ctrl)
    assert err.value.field == "scopes[0].conditionals.conditionals[0].classifier"
    assert err.value.allowed == "probe" and "nope" in err.value.message
    make_classifier(lab, "words", "text")  # reads the text: nothing a decode step could pool
    with pytest.raises(ControllerError, match="TF-IDF") as err:
        lab.steering_for(guard("words", 0.5))
    assert err.value.allowed == "probe"
    # compiled without the lab (no classifiers resolved): refused too, never silently false
    with pytest.raises(ControllerError) as err:
        compile_controller(guard("probe", 0.5), lab.sae)
    assert err.value.field == "scopes[0].conditionals.conditionals[0].classifier"


def test_an_unknown_classifier_is_a_400_on_the_server(lab, tmp_path):
    from fastapi.testclient import TestClient

    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    make_classifier(lab, "probe")
    settings = Settings(db_path=tmp_path / "server.db", open_mode=True)
    with TestClient(create_app(settings, lab)) as client:
        for path in ("/v1/chat/completions", "/api/inference/v1/chat/completions"):
            r = client.post(path, json={"messages": MESSAGES, "controller": guard("nope", 0.5).json()})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert "scopes[0].conditionals.conditionals[0].classifier" in error["message"]
            assert "probe" in error["message"]
        r = client.post("/v1/variants", json={"name": "g", "controller": guard("nope", 0.5).json()})
        assert r.status_code == 400
        body = {"messages": MESSAGES, "max_completion_tokens": 4, "temperature": 0}
        r = client.post("/v1/chat/completions", json={**body, "controller": guard("probe", 0.0, abort=True).json()})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["gf_event_names"] == ["guard"] and out["choices"][0]["message"]["content"] == ""
        assert out["usage"]["completion_tokens"] == 0  # fired on the prompt: nothing decoded


# ------------------------------------------------------------------ chats: the complete latest user turn


def turn_scores(lab, clf: Classifier, messages: list[dict], reply: list[int], reads: str = "turn") -> np.ndarray:
    """The guard's scores over a chat (prompt, then ``reply``), recomputed from one forward: the pool takes
    the latest user turn's tokens (``reads="turn"``; everything from the first message's text with
    ``"conversation"``) and every reply token; a score at the prompt's last token and after each reply token."""
    from steerlab.steering.conversation import conversation_ids

    tok = lab.lm.tokenizer
    prompt = prompt_ids(tok, messages)
    last = max(i for i, m in enumerate(messages) if m["role"] == "user") if reads == "turn" else 0
    before = messages[:last]
    a = conversation_ids(tok, [*before, {"role": messages[last]["role"], "content": "a"}])
    b = conversation_ids(tok, [*before, {"role": messages[last]["role"], "content": "b"}])
    start = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    end = len(conversation_ids(tok, messages[: last + 1])) if reads == "turn" else len(prompt)
    assert reads == "conversation" or prompt[:end] == conversation_ids(tok, messages[: last + 1])
    if reads == "turn":
        end = min(end, start + clf.max_tokens)  # the classifier's cut
    ids = prompt + reply
    with torch.inference_mode():
        hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids]), lab.sae.cfg.hookpoint)[0].float()
        x = lab.sae.encode(hidden).float() if clf.kind == "sae" else hidden
    x = x.numpy().astype(np.float64)
    if clf.linear.indices is not None:
        x = x[:, clf.linear.indices]
    out = np.full(len(ids), np.nan)
    for t in range(len(prompt) - 1, len(ids)):
        part = np.concatenate([x[start:end], x[len(prompt) : t + 1]])
        pooled = part.mean(0) if clf.pool == "mean" else part.max(0)
        out[t] = 1 / (1 + math.exp(-(pooled @ clf.linear.weights.astype(np.float64) + clf.linear.bias)))
    return out


LONG_TURN = [
    {
        "role": "user",
        "content": "python code with numbers 1 2 3 4 5 and the cat sat on the mat while the dog ran to the park "
        "and the bird sang in the tree by the river under the sun",
    }
]


def test_a_chat_guard_decides_on_the_complete_turn_not_on_a_prefix_of_it(lab):
    """A prompt whose opening scores above the threshold but whose complete turn (and reply) stays below:
    the guard of a chat does not fire (the previous guard scored every prefix from the 16th token on and,
    the condition being sticky, aborted on the opening); a threshold just below the complete turn's score
    aborts before the first reply token."""
    params = sampling_params(max_completion_tokens=6, temperature=0)
    ids = prompt_ids(lab.lm.tokenizer, LONG_TURN)
    reply = [e.token_id for e in lab.generate(LONG_TURN, params) if e.token_id is not None]  # no probe changes it
    for seed in range(40):
        clf = make_classifier(lab, f"probe{seed}", "sae", "max", seed=seed)
        chat = turn_scores(lab, clf, LONG_TURN, reply)
        prefix = reference_scores(lab, clf, ids)[: len(ids) - 1]  # the previous guard, inside the prompt
        if np.nanmax(prefix) > np.nanmax(chat) + 0.02:
            break
    else:
        raise AssertionError("no probe whose prompt prefix scores above the whole turn")
    threshold = (float(np.nanmax(prefix)) + float(np.nanmax(chat))) / 2
    ctrl = guard(clf.name, threshold, abort=True)
    # the previous reading (bare ids: every prefix scored) fires inside the prompt ...
    assert events_by_chunks(lab, ctrl, ids, [len(ids)]), "the opening must cross the threshold"
    # ... a chat's guard reads the complete turn, then the reply: no abort, the whole reply
    tokens = list(lab.generate(LONG_TURN, params, Controller.from_json(ctrl.json())))
    assert [t.token_id for t in tokens if t.token_id is not None] == reply
    assert tokens[-1].finish_reason in ("stop", "length") and not any(t.events for t in tokens)
    # just below the complete turn's score: aborted at the prompt's last token, nothing decoded
    below = guard(clf.name, float(chat[len(ids) - 1]) - 1e-4, abort=True)
    tokens = list(lab.generate(LONG_TURN, params, Controller.from_json(below.json())))
    assert [t.finish_reason for t in tokens] == ["abort"] and tokens[0].events == ["guard"]


def test_a_flagged_earlier_turn_does_not_abort_a_later_ordinary_turn(lab, monkeypatch):
    """Turn 1 scores above the threshold, turn 2 (with its reply) below: a chat's guard reads the latest
    turn and lets turn 2 through; STEERLAB_GUARD_READS=conversation keeps the old reading (the whole
    conversation: turn 1 still counts, and the guard aborts)."""
    params = sampling_params(max_completion_tokens=4, temperature=0)
    first = "python code with numbers 1 2 3 4 5"
    later = "the cat sat on the mat and the dog ran to the park"
    for seed in range(40):
        clf = make_classifier(lab, f"probe{seed}", "sae", "max", seed=seed, positive=True)
        alone = turn_scores(lab, clf, [{"role": "user", "content": first}], [])
        chat = [
            {"role": "user", "content": first},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": later},
        ]
        reply = [e.token_id for e in lab.generate(chat, params) if e.token_id is not None]
        now = turn_scores(lab, clf, chat, reply)
        if alone[-1] > np.nanmax(now) + 0.02:
            break
    else:
        raise AssertionError("no probe that scores the first turn above the later one")
    threshold = (float(alone[-1]) + float(np.nanmax(now))) / 2
    ctrl = Controller.from_json(guard(clf.name, threshold, abort=True).json())
    assert [t.finish_reason for t in lab.generate(chat[:1], params, ctrl)] == ["abort"]  # turn 1 alone: flagged
    tokens = list(lab.generate(chat, params, ctrl))
    assert [t.token_id for t in tokens if t.token_id is not None] == reply and not any(t.events for t in tokens)
    # the whole conversation, as before: turn 1's features are in the pool (max pooling, positive weights)
    monkeypatch.setenv("STEERLAB_GUARD_READS", "conversation")
    assert np.nanmax(turn_scores(lab, clf, chat, [], reads="conversation")) > threshold
    assert [t.finish_reason for t in lab.generate(chat, params, ctrl)] == ["abort"]


def test_the_running_pool_of_a_chat_matches_the_reference_chunk_by_chunk(lab):
    """The guard's scores in a chat (prefill in pieces, then one token at a time) are the reference's."""
    from steerlab.steering.conversation import guard_span

    chat = [
        {"role": "user", "content": "python code with numbers 1 2 3"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": LONG_TURN[0]["content"]},
    ]
    for kind, pool, cut in (("sae", "mean", 256), ("raw", "max", 256), ("sae", "max", 9)):
        clf = make_classifier(lab, f"probe_{kind}_{pool}", kind, pool, seed=3, max_tokens=cut)  # 9: the turn is cut
        ids = prompt_ids(lab.lm.tokenizer, chat)
        reply = ids[-5:]  # any tokens: the pool reads whatever follows the prompt
        want = turn_scores(lab, clf, chat, reply)
        ctrl = guard(clf.name, 0.5)
        plan = compile_controller(ctrl, lab.sae, lab.sae_id, lab.condition_probes(ctrl))
        batch = SteeringBatch(lab.sae, [plan])
        batch.states[0].span = guard_span(lab.lm.tokenizer, chat, ids)
        with torch.inference_mode():
            hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids + reply]), lab.sae.cfg.hookpoint)
            got, start = [], 0
            for n in [7, len(ids) - 9, 2] + [1] * len(reply):
                codes = lab.sae.encode(hidden[:, start : start + n])
                valid = torch.ones(1, n, dtype=torch.bool)
                got += batch.probe_scores(hidden[:, start : start + n], codes, valid)[0][0].tolist()
                start += n
        assert np.isnan(got[: len(ids) - 1]).all()
        np.testing.assert_allclose(got[len(ids) - 1 :], want[len(ids) - 1 :], rtol=1e-4, atol=1e-5)


def test_a_prompt_only_guard_scores_once_at_the_prompts_end_and_never_reads_the_reply(lab, monkeypatch):
    """STEERLAB_GUARD_READS=prompt: the latest turn's score at the prompt's last token, nothing after; a
    threshold that only the reply's tokens would cross never fires (it does with the default, turn)."""
    from steerlab.steering.conversation import guard_span

    params = sampling_params(max_completion_tokens=12, temperature=0)
    ids = prompt_ids(lab.lm.tokenizer, MESSAGES)
    reply = [e.token_id for e in lab.generate(MESSAGES, params) if e.token_id is not None]  # no probe changes it
    for seed in range(40):
        clf = make_classifier(lab, f"rises{seed}", "sae", "mean", seed=seed)
        chat = turn_scores(lab, clf, MESSAGES, reply)
        if np.nanmax(chat) > chat[len(ids) - 1] + 0.02:
            break
    else:
        raise AssertionError("no probe whose score rises along the reply")
    span = guard_span(lab.lm.tokenizer, MESSAGES, ids, "prompt")
    assert not span.reply
    threshold = (float(np.nanmax(chat)) + float(chat[len(ids) - 1])) / 2
    ctrl = Controller.from_json(guard(clf.name, threshold, abort=True).json())
    assert list(lab.generate(MESSAGES, params, ctrl))[-1].finish_reason == "abort"  # turn: the reply crosses
    monkeypatch.setenv("STEERLAB_GUARD_READS", "prompt")
    tokens = list(lab.generate(MESSAGES, params, ctrl))
    assert [t.token_id for t in tokens if t.token_id is not None] == reply and not any(t.events for t in tokens)
    below = Controller.from_json(guard(clf.name, float(chat[len(ids) - 1]) - 1e-4, abort=True).json())
    assert [t.finish_reason for t in lab.generate(MESSAGES, params, below)] == ["abort"]
