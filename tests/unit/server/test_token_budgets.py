"""Per-request token budgets (413 naming the field) and tokens/min reserved at admission, settled at the end."""

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.server.rate_limits import RateLimited, TokenLedger
from steerlab.settings import Settings
from steerlab.steering.conversation import conversation_ids

LONG = [{"role": "user", "content": "the cat sat on the mat and the dog ran in the park " * 4}]
SHORT = [{"role": "user", "content": "the cat"}]


def test_ten_concurrent_chats_are_granted_at_most_the_quota(tmp_path, tiny_lab):
    quota = 400
    settings = Settings(
        db_path=tmp_path / "server.db", tokens_per_minute=quota, requests_per_minute=10_000, max_completion_tokens=64
    )
    _, key = KeyStore(settings.resolved_db_path()).create("tester")
    app = create_app(settings, tiny_lab)
    body = {"messages": [{"role": "user", "content": "hello"}], "max_completion_tokens": 64, "temperature": 0}

    async def run():
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers, timeout=120) as http:
            return await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(10)))

    replies = asyncio.run(run())
    granted = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert granted and refused
    held = sum(r.json()["usage"]["prompt_tokens"] + 64 for r in granted)  # what each was allowed to use
    assert held <= 1.1 * quota
    assert all(r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert all(r.json()["error"]["code"] == "tokens_per_minute" for r in refused)
    # settled: the key is charged what the granted chats used, not what they reserved
    limiter = app.state.rate_limiter
    key_id = next(iter(limiter.tokens._entries))
    assert limiter.tokens.used(key_id) == sum(r.json()["usage"]["total_tokens"] for r in granted)


@pytest.fixture()
def budget_client(tmp_path, steered_server):
    _, lab = steered_server
    settings = Settings(
        db_path=tmp_path / "budget.db", open_mode=True, max_analysis_tokens=100, max_attribution_tokens=50
    )
    with TestClient(create_app(settings, lab)) as client:
        yield client, lab


def _error(r, status: int, field: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == field, error
    return error["message"]


def test_analyses_over_the_token_budget_are_413_naming_the_field(budget_client):
    client, lab = budget_client
    assert len(conversation_ids(lab.lm.tokenizer, LONG)) > 100 > 2 * len(conversation_ids(lab.lm.tokenizer, SHORT))
    ember = "/api/inference/v1"
    for path in (
        "/v1/inspect",
        f"{ember}/chat-attribution/compute-features",
        f"{ember}/chat-attribution/compute-logits",
    ):
        message = _error(client.post(path, json={"messages": LONG}), 413, "messages")
        assert "STEERLAB_MAX_ANALYSIS_TOKENS" in message and "100" in message
        assert client.post(path, json={"messages": SHORT}).status_code == 200
    # contrast counts both datasets together: the one that crosses the budget is named
    r = client.post("/v1/contrast", json={"dataset_1": [SHORT], "dataset_2": [SHORT, SHORT, SHORT]})
    _error(r, 413, "dataset_2")
    assert client.post("/v1/contrast", json={"dataset_1": [SHORT], "dataset_2": [SHORT]}).status_code == 200
    attribution = f"{ember}/attributions/compute-logit-attribution"
    middle = [{"role": "user", "content": "the cat sat on the mat and the dog ran"}]
    assert 50 < len(conversation_ids(lab.lm.tokenizer, middle)) <= 100
    message = _error(client.post(attribution, json={"messages": middle, "startIndex": 3}), 413, "messages")
    assert "STEERLAB_MAX_ATTRIBUTION_TOKENS" in message


def test_analyses_are_charged_to_the_key(budget_client):
    client, lab = budget_client
    limiter = client.app.state.rate_limiter
    key_id = client.get("/v1/whoami").json()["key_id"]
    before = limiter.tokens.used(key_id)
    assert client.post("/v1/inspect", json={"messages": SHORT}).status_code == 200
    n = len(conversation_ids(lab.lm.tokenizer, SHORT))
    assert limiter.tokens.used(key_id) == before + n
    r = client.post("/v1/contrast", json={"dataset_1": [SHORT], "dataset_2": [SHORT]})
    assert r.status_code == 200 and limiter.tokens.used(key_id) == before + 3 * n
    # refused for its input (a bad target position): nothing ran, nothing charged
    attribution = "/api/inference/v1/attributions/compute-logit-attribution"
    assert client.post(attribution, json={"messages": SHORT, "startIndex": 999}).status_code == 400
    assert limiter.tokens.used(key_id) == before + 3 * n
    assert client.post(attribution, json={"messages": SHORT, "startIndex": 2}).status_code == 200
    assert limiter.tokens.used(key_id) == before + 4 * n


def test_an_analysis_over_the_keys_tokens_per_minute_is_429(tmp_path, steered_server):
    _, lab = steered_server
    settings = Settings(db_path=tmp_path / "q.db", open_mode=True, tokens_per_minute=60)
    with TestClient(create_app(settings, lab)) as client:
        assert client.post("/v1/inspect", json={"messages": SHORT}).status_code == 200  # 43 tokens
        r = client.post("/v1/inspect", json={"messages": LONG})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_ledger_reserves_settles_and_says_when_there_is_room():
    now = [1000.0]
    ledger = TokenLedger(100, clock=lambda: now[0])
    first = ledger.reserve("k", 60)
    with pytest.raises(RateLimited) as refused:
        ledger.reserve("k", 50)
    assert refused.value.retry_after == 60
    ledger.settle(first, 20)  # used less than it held: the rest is free again at once
    now[0] += 30
    second = ledger.reserve("k", 50)
    assert ledger.used("k") == 70 and ledger.used("other") == 0
    ledger.settle(second, 500)  # settling never charges more than was held
    assert ledger.used("k") == 70
    with pytest.raises(RateLimited) as refused:
        ledger.reserve("k", 40)
    assert refused.value.retry_after == 30  # when the first entry leaves the window
    now[0] += 31
    assert ledger.used("k") == 50 and ledger.reserve("k", 40)
    with pytest.raises(RateLimited, match="more than the whole quota"):
        ledger.reserve("k", 101)
