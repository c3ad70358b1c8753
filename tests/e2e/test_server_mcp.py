"""The agent tools at /mcp of the real ``steerlab serve`` on the default model and its shipped feature database,
through the official MCP client over streamable HTTP."""

from __future__ import annotations

import json

import anyio
import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def calls(url: str, key: str, todo: list[tuple[str, dict]]) -> list[dict]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=300) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        out = []
        for name, args in todo:
            result = await session.call_tool(name, args)
            assert not result.is_error, (name, result.content)
            out.append(json.loads(result.content[0].text))
        return out


def test_search_features_and_the_corpus_over_http(live_server):
    found, words, meaning = anyio.run(
        calls,
        live_server.url,
        live_server.key,
        [
            ("search_features", {"query": "French language", "top_k": 5}),
            ("search_corpus", {"query": "Python function", "by": "words", "top_k": 3}),
            ("search_corpus", {"query": "French language", "by": "meaning", "top_k": 3}),
        ],
    )
    assert any("french" in f["label"].lower() for f in found["features"]), found
    assert len(words["passages"]) == 3 and all("python" in p["text"].lower() for p in words["passages"])
    assert meaning["passages"] and all(p["features"] for p in meaning["passages"])
    assert any("french" in f["label"].lower() for p in meaning["passages"] for f in p["features"])


def test_mcp_refuses_a_request_without_a_key(live_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(f"{live_server.url}/mcp", json=body, headers=headers).status_code == 401
