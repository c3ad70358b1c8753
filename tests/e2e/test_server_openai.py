"""The openai client, unchanged, against a real server process on the default model."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.default_features import FRENCH

MSG = [{"role": "user", "content": "Name three colours."}]


def controller(index: int, value: float) -> dict:
    feature = {
        "uuid": "",  # index only: that latent of the served SAE (another SAE's UUID would be refused)
        "label": "",
        "index_in_sae": index,
        "max_activation_strength": 1,
    }
    return {
        "interventions": [{"mode": "nudge", "features": {"features": [feature]}, "value": value}],
        "scopes": [],
        "name": "e2e",
        "nonzero_strength_threshold": None,
        "min_nudge_entropy": None,
        "max_nudge_entropy": None,
    }


def _client(live_server, key=None) -> OpenAI:
    return OpenAI(base_url=f"{live_server.url}/v1", api_key=key or live_server.key, max_retries=0)


def test_openai_chat_plain_streaming_and_steered(live_server):
    oa = _client(live_server)
    model = oa.models.list().data[0].id
    assert model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    plain = oa.chat.completions.create(model=model, messages=MSG, max_tokens=24, temperature=0)
    text = plain.choices[0].message.content
    assert text and plain.usage.completion_tokens > 0
    streamed = oa.chat.completions.create(model=model, messages=MSG, max_tokens=24, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == text
    steered = oa.chat.completions.create(
        model=model, messages=MSG, max_tokens=24, temperature=0, extra_body={"controller": controller(FRENCH, 0.6)}
    )
    assert steered.choices[0].message.content != text


def test_wrong_and_revoked_keys_are_refused_at_once(live_server):
    with pytest.raises(AuthenticationError):
        _client(live_server, "sl-not-a-key").models.list()
    key, key_id = live_server.new_key("short-lived")
    assert _client(live_server, key).models.list().data
    assert live_server.cli("keys", "revoke", key_id).returncode == 0
    with pytest.raises(AuthenticationError):
        _client(live_server, key).models.list()


def test_32_concurrent_variants_each_equal_their_solo_run(live_server):
    def run(i: int) -> str:
        body = {
            "messages": [{"role": "user", "content": f"Say something about the number {i}."}],
            "max_completion_tokens": 12,
            "temperature": 0,
            "controller": controller(i * 271 % 9216, 1.5),
        }
        r = httpx.post(
            f"{live_server.url}/v1/chat/completions",
            json=body,
            timeout=300,
            headers={"Authorization": f"Bearer {live_server.key}"},
        )
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    alone = [run(i) for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(run, range(32)))
    assert together == alone
