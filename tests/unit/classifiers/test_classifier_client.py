"""``steerlab.Client().classifiers`` in-process and over HTTP (a real app): same calls, same answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import steerlab
from steerlab.client_http import APIError
from steerlab.errors import ConflictError


@pytest.fixture()
def both(tiny_lm, tiny_sae, tmp_path, steerlab_home):
    from steerlab.engine.lab import Lab
    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    local = steerlab.Client(lm=tiny_lm, sae=tiny_sae, model="tiny-llama")
    lab = Lab(tiny_lm, tiny_sae, max_batch=2)
    with TestClient(create_app(Settings(db_path=tmp_path / "server.db", open_mode=True), lab)) as http:
        yield local, steerlab.Client(api_key="k", base_url="http://testserver", http_client=http)
    lab.close()
    local._backend.lab.close()


def test_train_in_process_then_list_get_and_score_on_both_backends(both, texts):
    local, remote = both
    pos, neg = texts
    result = local.classifiers.train("pirate", pos, neg, kind="sae")
    assert result["name"] == "pirate" and result["kind"] == "sae" and "kinds" in result["report"]
    assert (
        local.classifiers.list()
        == remote.classifiers.list()
        == [{"name": "pirate", "kind": "sae", "pool": result["pool"], "shipped": False}]
    )
    assert local.classifiers.get("pirate", top=3) == remote.classifiers.get("pirate", top=3)
    texts_in = ["arr matey gold", [{"role": "user", "content": "def f(a): return a"}]]
    here, there = local.classifiers.score("pirate", texts_in), remote.classifiers.score("pirate", texts_in)
    assert [r["score"] for r in here] == pytest.approx([r["score"] for r in there], abs=1e-6)
    assert [[f["index"] for f in r["features"]] for r in here] == [[f["index"] for f in r["features"]] for r in there]
    heat = remote.classifiers.score("pirate", "arr matey gold", tokens=True)[0]
    assert heat["tokens"] and "bias" in heat
    with pytest.raises(ConflictError):
        local.classifiers.train("pirate", pos, neg)
    with pytest.raises(APIError) as err:
        remote.classifiers.train("pirate", pos, neg)
    assert err.value.status_code == 409 and "overwrite" in err.value.message


def test_train_over_http_waits_for_the_job_or_hands_it_back(both, texts):
    local, remote = both
    pos, neg = texts
    done = remote.classifiers.train("coder", neg, pos, kind="text", timeout=240)
    assert done["kind"] == "text" and done["name"] == "coder"
    assert [c["name"] for c in local.classifiers.list()] == ["coder"]
    job = remote.classifiers.train("coder", neg, pos, kind="sae", overwrite=True, wait=False)
    assert job["state"] in ("queued", "running", "done") and job["progress"]["texts_total"] == 20
    import time

    deadline = time.monotonic() + 240
    while (job := remote.classifiers.job(job["id"]))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["state"] == "done" and job["result"]["kind"] == "sae"
    assert remote.classifiers.get("coder")["kind"] == "sae"
    with pytest.raises(APIError) as err:
        remote.classifiers.train("coder", [], pos)
    assert err.value.status_code == 400 and "pos" in err.value.message
