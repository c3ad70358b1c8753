"""Only steerlab's own errors are 4xx/503; anything else is a 500 with a request id and a logged traceback."""

import logging

from fastapi.testclient import TestClient

from steerlab.engine.batcher import EngineBusy

MSG = [{"role": "user", "content": "the cat"}]


def test_an_internal_value_error_is_a_500_with_a_request_id_and_the_traceback_logged(
    steered_server, monkeypatch, caplog
):
    client, lab = steered_server

    def broken(_messages, max_tokens=None):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(lab, "prompt_ids", broken)
    caplog.set_level(logging.ERROR, logger="steerlab.server")
    r = TestClient(client.app, raise_server_exceptions=False).post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    request_id = error["request_id"]
    assert r.headers["X-Request-ID"] == request_id and request_id in error["message"]
    assert "broadcast" not in error["message"] and error["type"] == "server_error"
    [record] = [rec for rec in caplog.records if request_id in rec.getMessage()]
    assert record.exc_info and "could not be broadcast" in str(record.exc_info[1])
    assert "Traceback" in caplog.text and "in broken" in caplog.text


def test_our_errors_answer_their_status_naming_the_field(steered_server, monkeypatch):
    client, lab = steered_server
    r = client.post("/v1/chat/completions", json={"messages": MSG, "max_completion_tokens": 600})
    assert r.status_code == 400, r.text  # the engine's context check: an InvalidInputError, not a bare ValueError
    assert r.json()["error"]["param"] == "messages" and "context of 512" in r.json()["error"]["message"]
    assert r.headers["X-Request-ID"]

    def full(*_args, **_kwargs):
        raise EngineBusy(7, retry_after=3)

    monkeypatch.setattr(lab.engine, "submit", full)
    r = client.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 503 and r.headers["Retry-After"] == "3", r.text
    assert r.json()["error"]["code"] == "engine_busy" and "7 requests already waiting" in r.json()["error"]["message"]


def test_every_response_has_its_own_request_id(steered_server):
    client, _ = steered_server
    ids = {client.get("/health").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3
