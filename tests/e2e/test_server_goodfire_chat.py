"""The goodfire 0.3.5 SDK, unchanged, chatting with variants through a real server process."""

import goodfire
import pytest
from goodfire.exceptions import InferenceAbortedException
from goodfire.features.features import Feature

from tests.default_features import FRENCH

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MSG = [{"role": "user", "content": "Tell me about your weekend."}]


@pytest.fixture(scope="module")
def client(live_server):
    return goodfire.Client(api_key=live_server.key, base_url=live_server.url)


@pytest.fixture(scope="module")
def feature_at(client):
    """The server's feature at an index, its UUID naming the served SAE (the server refuses others')."""

    def feature(index: int) -> Feature:
        return client.features.lookup([index], model=MODEL)[index]

    return feature


def _reply(client, model, **kw):
    r = client.chat.completions.create(
        MSG, model=model, max_completion_tokens=24, temperature=0, system_prompt="", **kw
    )
    return r.choices[0].message["content"]


def test_sdk_variant_set_changes_reply_and_streaming_matches(client, feature_at):
    variant = goodfire.Variant(MODEL)
    base = _reply(client, MODEL)
    variant.set(feature_at(FRENCH), 0.6)
    steered = _reply(client, variant)
    assert steered != base
    chunks = client.chat.completions.create(
        MSG, model=variant, max_completion_tokens=24, temperature=0, system_prompt="", stream=True
    )
    assert "".join(c.choices[0].delta.content for c in chunks) == steered


def test_sdk_set_when_applies_only_after_the_condition(client, feature_at):
    never = goodfire.Variant(MODEL)
    never.set_when(feature_at(1) > 1e5, {feature_at(FRENCH): 0.6})
    assert _reply(client, never) == _reply(client, MODEL)
    always = goodfire.Variant(MODEL)
    always.set_when(feature_at(1) >= 0, {feature_at(FRENCH): 0.6})
    assert _reply(client, always) != _reply(client, MODEL)


def test_sdk_abort_when_raises_in_the_client(client, feature_at):
    variant = goodfire.Variant(MODEL)
    variant.abort_when(feature_at(1) >= 0)
    with pytest.raises(InferenceAbortedException):
        list(client.chat.completions.create(MSG, model=variant, max_completion_tokens=16, stream=True))
