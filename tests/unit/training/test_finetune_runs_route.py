"""GET /v1/finetune/runs[/NAME]: a real tiny fine-tuning run's dials read back through the server, and
nothing outside the server's fine-tuning folder ever read (names, symlinks, broken lines, huge runs)."""

import json

import pytest
from fastapi.testclient import TestClient

from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings
from steerlab.training.finetune import FinetuneConfig, Finetuner, split_examples
from steerlab.training.plots import read_metrics
from steerlab.training.runs import MAX_TRAIN_POINTS
from tests.unit.training.test_finetune import examples

SECRET = "TOP-SECRET-OUTSIDE-THE-ROOT"


def train_run(lm, sae, out, save: bool, **knobs) -> None:
    cfg = FinetuneConfig(
        out=str(out), max_steps=6, batch_size=4, eval_every=3, save_every=3, warmup_steps=1, probe_size=4, **knobs
    )
    train, ev = split_examples(examples(lm.tokenizer), 0.2, cfg.seed)
    tuner = Finetuner(lm, sae, train, ev, cfg, progress=False)
    tuner.run()
    if save:
        tuner.save_model()


@pytest.fixture()
def runs_root(tmp_path, fresh_lm, sae):
    root = tmp_path / "finetune"
    train_run(fresh_lm(), sae, root / "ablate-run", save=True, ablate=[3, 4], watch=[3, 4, 7])
    train_run(fresh_lm(), sae, root / "steer-run", save=False, steer={5: 1.5})
    return root


@pytest.fixture()
def client(tmp_path, runs_root):
    settings = Settings(db_path=tmp_path / "server.db", finetune_dir=runs_root)
    _, key = KeyStore(settings.resolved_db_path()).create("tester")
    with TestClient(create_app(settings)) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


def test_runs_list_and_a_runs_dials_match_its_metrics_file(client, runs_root):
    listed = client.get("/v1/finetune/runs")
    assert listed.status_code == 200, listed.text
    runs = {r["name"]: r for r in listed.json()["runs"]}
    assert set(runs) == {"ablate-run", "steer-run"}
    assert runs["ablate-run"]["finished"] and not runs["steer-run"]["finished"]  # model/ written or not
    assert runs["ablate-run"]["knobs"] == {"ablate": [3, 4], "watch": [3, 4, 7]}
    assert runs["steer-run"]["knobs"] == {"steer": {"5": 1.5}, "watch": [5]}
    assert runs["steer-run"]["last_step"] == 6 and runs["steer-run"]["total_steps"] == 6

    run = client.get("/v1/finetune/runs/ablate-run").json()
    rows = read_metrics(runs_root / "ablate-run" / "metrics.jsonl")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [e["step"] for e in run["evals"]] == [e["step"] for e in evals] == [0, 3, 6]
    for got, want in zip(run["evals"], evals, strict=True):
        assert got["features"] == want["features"] and set(got["features"]) == {"3", "4", "7"}
        assert got["sae_fvu"] == want["sae_fvu"] and got["sae_ce_loss_score"] == want["sae_ce_loss_score"]
        assert got["eval_loss"] == want["eval_loss"]
    assert [t["loss"] for t in run["train"]] == [r["loss"] for r in rows if r["kind"] == "train"]
    assert run["config"]["finetune"]["ablate"] == [3, 4] and run["finished"] and run["skipped_lines"] == 0


def test_unauthenticated_callers_get_401(client):
    assert client.get("/v1/finetune/runs", headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/finetune/runs/ablate-run", headers={"Authorization": ""}).status_code == 401


def test_nothing_outside_the_root_is_read(client, runs_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 1, "note": SECRET}) + "\n")
    (runs_root / "escape").symlink_to(outside, target_is_directory=True)  # a run folder leading out
    (runs_root / "leaky").mkdir()
    (runs_root / "leaky" / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")  # a file leading out
    (runs_root / "leaky" / "run.json").symlink_to(outside / "metrics.jsonl")
    for name in ("escape", "leaky", "no-such-run"):
        r = client.get(f"/v1/finetune/runs/{name}")
        assert r.status_code == 404 and r.json()["error"]["param"] == "name", (name, r.text)
    for name in ("..", ".hidden", "-x", "a%20b", "x" * 200, "%2Fetc%2Fpasswd", "..%2F..%2Fetc", "a%00b"):
        r = client.get(f"/v1/finetune/runs/{name}")
        assert r.status_code in (400, 404), (name, r.status_code)
        assert SECRET not in r.text and "root:" not in r.text
        if r.status_code == 400:
            assert r.json()["error"]["param"] == "name" and "folder name" in r.json()["error"]["message"]
    listed = client.get("/v1/finetune/runs").json()["runs"]
    assert {r["name"] for r in listed} == {"ablate-run", "steer-run"}
    assert SECRET not in json.dumps(listed)


def test_a_missing_root_lists_no_runs(tmp_path):
    settings = Settings(db_path=tmp_path / "server.db", finetune_dir=tmp_path / "nothing-here", open_mode=True)
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/finetune/runs").json() == {"runs": []}
        assert c.get("/v1/finetune/runs/any").status_code == 404


def test_broken_lines_and_non_numbers_do_not_break_the_view(client, runs_root):
    metrics = runs_root / "steer-run" / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write(json.dumps({"kind": "train", "step": 7, "loss": float("nan"), "lr": float("inf")}) + "\n")
        f.write('["not", "a", "row"]\n{"kind": "train", "step": 8, "lo')  # a run killed mid-write
    r = client.get("/v1/finetune/runs/steer-run")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["skipped_lines"] == 2
    assert run["train"][-1] == {"step": 7, "loss": None, "lr": None}


def test_a_long_run_is_thinned_but_keeps_its_ends(client, runs_root):
    folder = runs_root / "long-run"
    folder.mkdir()
    n = 5 * MAX_TRAIN_POINTS + 3
    rows = [{"kind": "train", "step": s, "loss": 1.0 / s, "lr": 1e-3} for s in range(1, n + 1)]
    rows.insert(0, {"kind": "eval", "step": 0, "features": {"3": 0.5, "not-a-feature": 1}, "sae_fvu": 0.2})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = client.get("/v1/finetune/runs/long-run").json()
    steps = [t["step"] for t in run["train"]]
    assert MAX_TRAIN_POINTS <= len(steps) <= 2 * MAX_TRAIN_POINTS + 1
    assert steps[0] == 1 and steps[-1] == n and steps == sorted(set(steps))
    assert run["train_rows"] == n and run["config"] is None and not run["finished"]
    assert run["evals"] == [{"step": 0, "sae_fvu": 0.2, "features": {"3": 0.5}}]
