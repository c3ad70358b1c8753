import json

import pytest

MSG = [{"role": "user", "content": "the cat"}]


def _sse(text: str) -> list[dict]:
    chunks = [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]
    assert chunks[-1] == "[DONE]"
    return [json.loads(c) for c in chunks[:-1]]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/inference/v1/chat/completions"])
def test_stream_and_non_stream_agree_for_a_seed(server, route):
    client, _ = server
    body = {"messages": MSG, "model": "tiny-llama", "max_completion_tokens": 12, "temperature": 1.0, "seed": 7}
    whole = client.post(route, json=body).json()
    assert whole["object"] == "chat.completion" and whole["usage"]["completion_tokens"] >= 1
    chunks = _sse(client.post(route, json={**body, "stream": True}).text)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == whole["choices"][0]["message"]["content"]
    assert [c["choices"][0]["gf_token_index"] for c in chunks] == list(range(len(chunks)))
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]


def test_openai_client_unchanged(server):
    from openai import OpenAI

    client, key = server
    oa = OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client)
    assert [m.id for m in oa.models.list().data] == ["tiny-llama"]
    reply = oa.chat.completions.create(model="tiny-llama", messages=MSG, max_tokens=8, temperature=0)
    streamed = oa.chat.completions.create(model="tiny-llama", messages=MSG, max_tokens=8, temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert text == reply.choices[0].message.content


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"temperature": 9}, "temperature"),
        ({"max_completion_tokens": 100000}, "max_completion_tokens"),
        ({"model": "gpt-5"}, "model"),
        ({"messages": [{"role": "user", "content": "the cat " * 300}]}, "messages"),
        ({"stop": ["x" * 100]}, "stop"),
        ({"variant_id": "v-missing"}, "variant_id"),
    ],
)
def test_bad_chat_requests_name_the_field(server, patch, field):
    client, _ = server
    r = client.post("/v1/chat/completions", json={"messages": MSG, "model": "tiny-llama", **patch})
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert err["param"] == field or field in err["message"], err


def test_non_json_and_wrong_types(server):
    client, _ = server
    assert (
        client.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.post("/v1/chat/completions", json=[1, 2]).status_code == 400
