"""``steerlab mcp`` on the real default model and its shipped feature database, through the MCP client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.pirate_conversations import PIRATE, PLAIN

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
    assert top["reason"] == "label+contexts"  # the shipped database has context vectors: the default uses them
    assert feature["index"] == top["index"] and feature["label"] == top["label"]
    assert feature["stats"]["density"] > 0 and feature["stats"]["tokens_scanned"] > 0
    assert len(feature["examples"]) == 2 and all("[[" in e["text"] for e in feature["examples"])
    assert feature["promotes"] and feature["neighbours"]


async def contrast_calls(home: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "STEERLAB_HOME": str(home)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "steerlab.cli", "mcp"], env=env)
    out = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for extra in ({}, {"rank_by": "frequency"}):
            result = await session.call_tool("contrast", {"dataset_1": PIRATE, "dataset_2": PLAIN, "top_k": 3, **extra})
            assert not result.is_error, result.content
            out.append(json.loads(result.content[0].text))
    return out


def test_contrast_ranks_as_the_native_route_and_says_so(tmp_path, default_lm, default_sae):
    """The MCP contrast tool ranks by the native route's default (relevance: the shipped database has topic
    vectors), names it and says the data is thin; the frequency ranking stays reachable by name."""
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.engine.lab import Lab
    from steerlab.features.identity import DB_FILENAME
    from steerlab.features.store import FeatureStore

    default, old = anyio.run(contrast_calls, tmp_path / "home")
    assert default["ranked_by"] == "relevance" and "too little data" in default["note"]
    rows = default["dataset_1_features"]
    assert len(rows) == 3
    assert all(r["effect_low"] <= r["effect"] <= r["effect_high"] and 0 <= r["support"] <= 1 for r in rows)
    assert all(r["relevance"] is not None for r in rows)
    assert old["ranked_by"] == "frequency" and old["dataset_1_features"]
    assert all(-1 <= r["effect"] <= 1 and "support" not in r for r in old["dataset_1_features"])
    # the native route's ranking (Lab.contrast, what /v1/contrast runs), feature for feature
    store = FeatureStore(bundled_sae_path(default_lm.name) / DB_FILENAME, readonly=True)
    lab = Lab.with_database(default_lm, default_sae, store, max_batch=2)
    try:
        native = lab.contrast(PIRATE, PLAIN, top_k=3)
        assert native.ranked_by == "relevance"
        assert [r["index"] for r in rows] == [f.index for f in native.dataset_1_features]
        assert [r["index"] for r in default["dataset_2_features"]] == [f.index for f in native.dataset_2_features]
    finally:
        lab.close()
