"""``steerlab mcp`` on the real default model and its shipped feature database, through the MCP client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

SRC = Path(__file__).resolve().parents[2] / "src"


async def search_then_read(home: Path) -> tuple[dict, dict]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "STEERLAB_HOME": str(home)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "steerlab.cli", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        found = await session.call_tool("search_features", {"query": "French language", "top_k": 5})
        assert not found.is_error, found.content
        hits = json.loads(found.content[0].text)
        feature = await session.call_tool("get_feature", {"index": hits["features"][0]["index"], "examples": 2})
        assert not feature.is_error, feature.content
        return hits, json.loads(feature.content[0].text)


def test_search_and_read_a_feature_of_the_shipped_database(tmp_path):
    hits, feature = anyio.run(search_then_read, tmp_path / "home")
    assert len(hits["features"]) == 5
    assert any("french" in h["label"].lower() for h in hits["features"]), hits
    top = hits["features"][0]
    assert feature["index"] == top["index"] and feature["label"] == top["label"]
    assert feature["stats"]["density"] > 0 and feature["stats"]["tokens_scanned"] > 0
    assert len(feature["examples"]) == 2 and all("[[" in e["text"] for e in feature["examples"])
    assert feature["promotes"] and feature["neighbours"]
