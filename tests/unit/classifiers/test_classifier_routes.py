"""``/v1/classifiers`` on the tiny model: list, get, score, training jobs; limits, budgets and errors."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from steerlab.classifiers.data import MAX_CHARS
from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings


def _client(tmp_path, lab, **settings):
    settings = Settings(db_path=tmp_path / "server.db", **settings)
    keys = KeyStore(settings.resolved_db_path())
    _, key = keys.create("owner")
    _, other = keys.create("other")
    client = TestClient(create_app(settings, lab))
    client.headers["Authorization"] = f"Bearer {key}"
    return client, other


@pytest.fixture()
def api(tmp_path, tiny_lab, steerlab_home):
    client, other = _client(tmp_path, tiny_lab)
    with client:
        yield client, other


def _wait(client, job_id: str, until=("done", "failed", "cancelled"), timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/v1/classifiers/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()["job"]
        if job["state"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def _error(r, status: int, field: str | None) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == field, error
    return error["message"]


def test_train_in_the_background_then_list_get_and_score(api, tiny_lab, texts):
    client, _ = api
    pos, neg = texts
    assert client.get("/v1/classifiers").json() == {"classifiers": []}
    r = client.post("/v1/classifiers", json={"name": "pirate", "pos": pos, "neg": neg, "kind": "sae"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert r.headers["Location"] == f"/v1/classifiers/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["progress"]["texts_total"] == 20
    done = _wait(client, job["id"])
    assert done["state"] == "done", done
    assert done["progress"]["texts_done"] == 20 and done["progress"]["fraction"] == 1.0
    assert done["progress"]["tokens"] > 0
    assert done["result"]["kind"] == "sae" and set(done["result"]["report"]["kinds"]) == {"sae", "raw", "text"}
    # the tokens it read were charged to the key, batch by batch
    limiter = client.app.state.rate_limiter
    assert sum(limiter.tokens.used(k) for k in list(limiter.tokens._entries)) >= done["progress"]["tokens"]

    listed = client.get("/v1/classifiers").json()["classifiers"]
    assert listed == [{"name": "pirate", "kind": "sae", "pool": listed[0]["pool"], "shipped": False}]
    info = client.get("/v1/classifiers/pirate", params={"top": 3}).json()
    assert info["kind"] == "sae" and info["sae_id"] == tiny_lab.sae_id
    assert 1 <= len(info["weights"]) <= 3 and {"index", "label", "weight"} == set(info["weights"][0])

    scored = client.post(
        "/v1/classifiers/pirate/score",
        json={"texts": ["arr matey gold", [{"role": "user", "content": "def f(a): return a"}]], "top": 2},
    )
    assert scored.status_code == 200, scored.text
    results = scored.json()["results"]
    assert len(results) == 2 and results[0]["score"] > results[1]["score"]
    assert all(0 <= r["score"] <= 1 and len(r["features"]) <= 2 and "tokens" not in r for r in results)
    named = [f for r in results for f in r["features"]]
    assert named and all({"index", "label", "contribution"} == set(f) for f in named)
    heat = client.post("/v1/classifiers/pirate/score", json={"texts": ["arr matey gold"], "tokens": True}).json()
    tokens = heat["results"][0]["tokens"]
    assert tokens and {"token", "contribution"} == set(tokens[0]) and "bias" in heat["results"][0]


def test_bad_training_data_is_refused_before_anything_runs(api, texts):
    client, _ = api
    pos, neg = texts

    def train(**body):
        return client.post("/v1/classifiers", json={"name": "pirate", "pos": pos, "neg": neg, **body})

    assert "no texts" in _error(train(pos=[]), 400, "pos")
    assert "no texts" in _error(train(neg=[]), 400, "neg")  # one class
    assert "at least 4" in _error(train(neg=neg[:2]), 400, "neg")
    assert "same texts" in _error(train(neg=pos), 400, "neg")
    assert "empty" in _error(train(pos=[*pos[:5], "  "]), 400, "pos[5]")
    assert str(MAX_CHARS) in _error(train(pos=["x" * (MAX_CHARS + 1), *pos]), 400, "pos[0]")
    assert "user turn" in _error(train(pos=[[{"role": "assistant", "content": "hi"}], *pos]), 400, "pos[0]")
    _error(train(name="../etc"), 400, "name")
    _error(train(kind="forest"), 400, "kind")
    _error(train(max_tokens=0), 400, "max_tokens")
    r = client.post("/v1/classifiers", json={"name": "pirate", "pos": pos, "neg": neg, "surprise": 1})
    _error(r, 400, "surprise")
    assert getattr(client.app.state, "classifier_jobs", None) is None  # no job was started


def test_budgets_conflicts_and_other_keys(tmp_path, tiny_lab, texts, steerlab_home):
    pos, neg = texts
    client, other = _client(tmp_path, tiny_lab, max_classifier_train_tokens=50, max_analysis_tokens=40)
    with client:
        message = _error(client.post("/v1/classifiers", json={"name": "p", "pos": pos, "neg": neg}), 413, "pos")
        assert "STEERLAB_MAX_CLASSIFIER_TRAIN_TOKENS" in message
        client.app.state.settings.max_classifier_train_tokens = 10**6
        job = client.post("/v1/classifiers", json={"name": "p", "pos": pos, "neg": neg, "kind": "text"}).json()["job"]
        # the same name while it trains, then once it exists
        second = client.post("/v1/classifiers", json={"name": "p", "pos": pos, "neg": neg})
        assert second.status_code == 409, second.text
        assert _wait(client, job["id"])["state"] == "done"
        assert "overwrite" in _error(
            client.post("/v1/classifiers", json={"name": "p", "pos": pos, "neg": neg}), 409, "name"
        )
        # another key sees neither the job nor a way to cancel it
        for method in ("GET", "DELETE"):
            r = client.request(
                method, f"/v1/classifiers/jobs/{job['id']}", headers={"Authorization": f"Bearer {other}"}
            )
            _error(r, 404, "job_id")
        _error(client.get("/v1/classifiers/nope"), 404, "name")
        _error(client.post("/v1/classifiers/nope/score", json={"texts": ["a"]}), 404, "name")
        _error(client.post("/v1/classifiers/p/score", json={"texts": []}), 400, "texts")
        _error(client.post("/v1/classifiers/p/score", json={"texts": [""]}), 400, "texts[0]")
        _error(client.get("/v1/classifiers/p", params={"top": 1000}), 400, "top")


def test_score_is_charged_and_capped_like_an_analysis(tmp_path, tiny_lab, texts, steerlab_home):
    pos, neg = texts
    tiny_lab.train_classifier("pirate", pos, neg, kind="sae")
    client, _ = _client(tmp_path, tiny_lab, max_analysis_tokens=60)
    with client:
        ok = client.post("/v1/classifiers/pirate/score", json={"texts": ["arr"]})
        assert ok.status_code == 200, ok.text
        limiter = client.app.state.rate_limiter
        used = sum(limiter.tokens.used(k) for k in list(limiter.tokens._entries))
        assert used == tiny_lab.classifier_token_count("pirate", ["arr"])
        message = _error(client.post("/v1/classifiers/pirate/score", json={"texts": ["arr matey"] * 10}), 413, "texts")
        assert "STEERLAB_MAX_ANALYSIS_TOKENS" in message


def test_a_cancelled_job_saves_nothing(tmp_path, tiny_lab, texts, steerlab_home):
    pos, neg = texts
    tiny_lab.train_classifier("pirate", pos, neg, kind="text")
    before = tiny_lab.classifier_info("pirate")
    # a tokens/min quota so small that the job soon waits for room: cancel it there
    client, _ = _client(tmp_path, tiny_lab, tokens_per_minute=60)
    with client:
        r = client.post("/v1/classifiers", json={"name": "pirate", "pos": pos, "neg": neg, "overwrite": True})
        job = r.json()["job"]
        deadline = time.monotonic() + 120
        while "waiting" not in client.get(f"/v1/classifiers/jobs/{job['id']}").json()["job"]["message"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the one job slot is taken: another job waits its turn (429 + Retry-After), the same name is a 409
        other = client.post("/v1/classifiers", json={"name": "other", "pos": pos, "neg": neg})
        assert other.status_code == 429 and other.headers["Retry-After"] == "30", other.text
        assert "STEERLAB_CLASSIFIER_JOBS" in other.json()["error"]["message"]
        same = client.post("/v1/classifiers", json={"name": "pirate", "pos": pos, "neg": neg, "overwrite": True})
        _error(same, 409, "name")
        assert client.delete(f"/v1/classifiers/jobs/{job['id']}").status_code == 200
        assert _wait(client, job["id"], timeout=30)["state"] == "cancelled"
    tiny_lab.forget_classifier("pirate")
    assert tiny_lab.classifier_info("pirate") == before


def test_a_lab_without_an_sae_answers_400(tmp_path, tiny_lm, steerlab_home):
    from steerlab.engine.lab import Lab

    lab = Lab(tiny_lm, max_batch=1)
    client, _ = _client(tmp_path, lab)
    try:
        with client:
            _error(client.get("/v1/classifiers"), 400, "sae")
            r = client.post("/v1/classifiers", json={"name": "p", "pos": ["a"] * 4, "neg": ["b"] * 4})
            _error(r, 400, "sae")
            _error(client.post("/v1/classifiers/p/score", json={"texts": ["a"]}), 400, "sae")
    finally:
        lab.close()
