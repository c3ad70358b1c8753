"""The agent tools on a real ``steerlab serve`` (tiny model, tiny SAE) at /mcp, through the official MCP client
over streamable HTTP: the same API keys as every route, the same quotas, per-key research logs and variants."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.unit.agents.test_mcp_stdio import D_SAE, TOOLS, error_text, payload, sae_dir  # noqa: F401 (fixture)

SRC = Path(__file__).resolve().parents[3] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "steerlab.cli", *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout)


@pytest.fixture()
def tiny_server(tiny_model_dir, sae_dir, tmp_path):  # noqa: F811 (the imported fixture)
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "STEERLAB_HOME": str(tmp_path / "home"),
        "STEERLAB_DB_PATH": str(tmp_path / "server.db"),
        "STEERLAB_MAX_ANALYSIS_TOKENS": "400",
        "OMP_NUM_THREADS": "1",
    }
    keys = [_cli(env, "keys", "create", name) for name in ("alice", "bob")]
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    args = ["serve", "--model", str(tiny_model_dir), "--sae", str(sae_dir), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "steerlab.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    yield url, keys, tmp_path / "home"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


async def mcp_calls(url: str, key: str | None, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=300) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, args) for name, args in calls]
    return tools, results


def test_every_tool_over_http_behind_the_keys(tiny_server):
    url, (alice, bob), home = tiny_server
    prompt = "the cat sat on the mat"
    calls = [
        ("get_feature", {"index": 3, "neighbours": 2, "tokens": 3}),
        ("inspect", {"text": prompt, "top_k": 3}),
        ("contrast", {"dataset_1": ["cats purr", "a cat"], "dataset_2": ["1 2 3", "4 5 6"], "top_k": 2}),
        ("generate", {"text": prompt, "edits": [{"index": 3, "value": 50.0}], "max_tokens": 4}),
        ("steer", {"name": "more-3", "edits": [{"index": 3, "value": 5.0}]}),
        ("ablate", {"index": 3, "prompts": [prompt], "mode": "amplify", "value": 50.0, "max_tokens": 4}),
        ("attribute", {"text": prompt, "position": -1, "top_k": 3}),
        ("autosteer", {"goal": "talk about cats"}),
        ("research_log_append", {"note": "alice's finding"}),
        ("research_log_read", {}),
        ("search_features", {"query": "cats"}),
        ("search_corpus", {"query": "cats"}),
        ("classify", {"name": "nope", "texts": ["hi"]}),
        # over the server's per-request analysis budget (STEERLAB_MAX_ANALYSIS_TOKENS=400): refused naming it
        ("inspect", {"text": "cat " * 600}),
    ]
    tools, results = anyio.run(mcp_calls, url, alice["api_key"], calls)
    assert {t.name for t in tools} == TOOLS
    feature, inspected, contrasted, generated, steered, ablated, attributed, autosteered = (
        payload(r) for r in results[:8]
    )
    assert feature["index"] == 3 and len(feature["neighbours"]) == 2
    assert 1 <= len(inspected["features"]) <= 3
    assert contrasted["dataset_1_features"] or contrasted["dataset_2_features"]
    assert generated["same"] is False
    assert steered["saved"]["variant_id"].startswith("v-")
    assert ablated["mean_kl"] > 0 and ablated["prompts"][0]["unsteered"]
    assert attributed["target"]["position"] > 0
    assert set(autosteered) >= {"edits", "controller", "score", "tried"} and autosteered["tried"] > 0
    assert payload(results[9])["notes"][-1]["note"] == "alice's finding"
    for i in (10, 11):
        assert "needs a feature database" in error_text(results[i])
    assert "name" in error_text(results[12])
    assert "messages" in error_text(results[13]) and "STEERLAB_MAX_ANALYSIS_TOKENS" in error_text(results[13])

    # The variant is alice's, on the REST API too; bob sees neither it nor alice's notes.
    listed = httpx.get(f"{url}/v1/variants", headers={"Authorization": f"Bearer {alice['api_key']}"}).json()
    assert [v["name"] for v in listed["variants"]] == ["more-3"]
    assert listed["variants"][0]["controller"] == steered["controller"]
    _, (notes,) = anyio.run(mcp_calls, url, bob["api_key"], [("research_log_read", {})])
    assert payload(notes)["notes"] == []
    assert (home / "research_logs" / f"key-{alice['key_id']}.jsonl").is_file()


def test_no_key_no_tools(tiny_server):
    url, _, _ = tiny_server
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for auth in ({}, {"Authorization": "Bearer sl-not-a-key"}):
        response = httpx.post(f"{url}/mcp", json=init, headers=headers | auth)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "get_feature", "arguments": {"index": 1}},
    }
    assert httpx.post(f"{url}/mcp", json=call, headers=headers).status_code == 401
    # The official client without a key fails too (it never gets to list the tools).
    with pytest.raises(Exception):  # noqa: B017 (the SDK wraps the 401 in its own error types)
        anyio.run(mcp_calls, url, None, [])
