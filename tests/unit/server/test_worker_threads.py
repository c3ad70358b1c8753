"""Requests waiting for a busy model must not starve the quick routes of worker threads."""

import threading

from fastapi.testclient import TestClient

from steerlab.server.app import create_app
from steerlab.settings import Settings

WAITERS = 48  # more than anyio's default pool of 40 worker threads


def test_quick_routes_answer_while_many_inspections_wait_for_the_model(tmp_path, steered_server):
    _, lab = steered_server
    settings = Settings(db_path=tmp_path / "other.db", open_mode=True, worker_threads=64)
    body = {"messages": [{"role": "user", "content": "hello there"}]}
    with TestClient(create_app(settings, lab)) as client:
        statuses, health = [], []
        with lab.engine.lock:  # the model is busy: every inspection blocks on a worker thread
            waiters = [
                threading.Thread(target=lambda: statuses.append(client.post("/v1/inspect", json=body).status_code))
                for _ in range(WAITERS)
            ]
            for t in waiters:
                t.start()
            probe = threading.Thread(target=lambda: health.append(client.get("/health").status_code))
            probe.start()
            probe.join(timeout=60)
            answered_while_busy = list(health)
        for t in waiters:
            t.join(timeout=120)
    assert answered_while_busy == [200], "a quick route waited behind the inspections"
    assert statuses == [200] * WAITERS
