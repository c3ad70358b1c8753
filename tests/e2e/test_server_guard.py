"""A classifier guard through a real server on the default model: the openai client (``extra_body``) and
steerlab's own HTTP client, with the shipped ``jailbreak`` classifier."""

from __future__ import annotations

import pytest
from openai import BadRequestError, OpenAI

from steerlab.steering import InferenceAborted, Variant, classifier

ORDINARY = [{"role": "user", "content": "What is the capital of France, and what is it famous for?"}]


@pytest.fixture(scope="module")
def jailbreak(flagged_jailbreak):
    return [{"role": "user", "content": flagged_jailbreak}]


def guard(threshold: float = 0.9) -> dict:
    v = Variant("default")
    v.abort_when(classifier("jailbreak") > threshold, name="jailbreak-guard")
    return v.controller.json()


def _openai(live_server) -> OpenAI:
    return OpenAI(base_url=f"{live_server.url}/v1", api_key=live_server.key, max_retries=0)


def _ask(oa: OpenAI, messages, **extra):
    return oa.chat.completions.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct", messages=messages, max_tokens=24, temperature=0, **extra
    )


def test_openai_client_guard_aborts_a_held_out_jailbreak_and_leaves_an_ordinary_question(live_server, jailbreak):
    oa = _openai(live_server)
    plain = _ask(oa, jailbreak)
    assert plain.usage.completion_tokens > 0 and plain.choices[0].message.content
    guarded = _ask(oa, jailbreak, extra_body={"controller": guard()})
    assert guarded.model_extra["gf_event_names"] == ["jailbreak-guard"]
    assert guarded.choices[0].finish_reason == "stop"
    assert guarded.usage.completion_tokens == 0 and guarded.choices[0].message.content == ""  # stopped in the prompt
    streamed = oa.chat.completions.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        messages=jailbreak,
        max_tokens=24,
        temperature=0,
        stream=True,
        extra_body={"controller": guard()},
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    assert any((c.model_extra or {}).get("gf_event_names") == ["jailbreak-guard"] for c in chunks)
    # the same guard on an ordinary question: the same reply as unguarded, no event
    ordinary_plain = _ask(oa, ORDINARY)
    ordinary_guarded = _ask(oa, ORDINARY, extra_body={"controller": guard()})
    assert ordinary_guarded.choices[0].message.content == ordinary_plain.choices[0].message.content
    assert not ordinary_guarded.model_extra.get("gf_event_names")


def test_a_flagged_turn_does_not_abort_the_next_ordinary_turn_of_the_chat(live_server, jailbreak):
    """The guard reads the latest user turn: after a jailbreak turn (flagged, aborted), an ordinary question
    in the same chat is answered as it is unguarded, through the openai client and the server's route."""
    oa = _openai(live_server)
    assert _ask(oa, jailbreak, extra_body={"controller": guard()}).model_extra["gf_event_names"] == ["jailbreak-guard"]
    chat = [*jailbreak, {"role": "assistant", "content": "I'm sorry, but I can't help with that."}, *ORDINARY]
    plain = _ask(oa, chat)
    guarded = _ask(oa, chat, extra_body={"controller": guard()})
    assert not guarded.model_extra.get("gf_event_names")
    assert guarded.usage.completion_tokens == plain.usage.completion_tokens > 0
    assert guarded.choices[0].message.content == plain.choices[0].message.content


def test_an_unknown_classifier_is_a_400_naming_the_field_and_the_choices(live_server):
    bad = guard()
    bad["scopes"][0]["conditionals"]["conditionals"][0]["classifier"] = "jailbrake"
    with pytest.raises(BadRequestError) as err:
        _ask(_openai(live_server), ORDINARY, extra_body={"controller": bad})
    message = err.value.body["message"] if isinstance(err.value.body, dict) else str(err.value)
    assert "scopes[0].conditionals.conditionals[0].classifier" in message
    assert "jailbreak" in message and "jailbrake" in message


def test_steerlab_http_client_variant_guard_raises_inference_aborted(live_server, jailbreak):
    from steerlab.client import Client

    client = Client(api_key=live_server.key, base_url=live_server.url)
    v = Variant("default")
    v.abort_when(classifier("jailbreak") > 0.9)
    with pytest.raises(InferenceAborted):
        client.chat.completions.create(jailbreak, model=v, max_completion_tokens=16, temperature=0)
    reply = client.chat.completions.create(ORDINARY, model=v, max_completion_tokens=16, temperature=0)
    assert reply.choices[0].message["content"]
