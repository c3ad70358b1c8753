"""``steerlab mcp`` through the official MCP client: a real subprocess on the tiny model and a tiny SAE."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
import torch
from mcp import ClientSession, StdioServerParameters, stdio_client

from steerlab.sae.config import SAEConfig
from steerlab.sae.variants.topk import TopKSAE

SRC = Path(__file__).resolve().parents[3] / "src"
D_SAE = 32
TOOLS = {
    "search_features",
    "get_feature",
    "inspect",
    "generate",
    "research_log_append",
    "research_log_read",
    "contrast",
    "steer",
    "ablate",
    "attribute",
    "autosteer",
    "search_corpus",
    "classify",
}


@pytest.fixture()
def sae_dir(tmp_path):
    cfg = SAEConfig(
        d_in=64, d_sae=D_SAE, architecture="topk", k=4, model_name="tiny-llama", hookpoint="model.layers.1", layer=1
    )
    TopKSAE(cfg, generator=torch.Generator().manual_seed(0)).eval().save(tmp_path / "sae")
    return tmp_path / "sae"


def server(model_dir: Path, sae: Path, home: Path, session: str = "s1") -> StdioServerParameters:
    env = {**os.environ, "PYTHONPATH": str(SRC), "STEERLAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
    args = ["-m", "steerlab.cli", "mcp", "--model", str(model_dir), "--sae", str(sae), "--session", session]
    return StdioServerParameters(command=sys.executable, args=args, env=env)


async def session_calls(params: StdioServerParameters, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """``(tools listed, results of calls in order)`` from one server process."""
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, args) for name, args in calls]
    return tools, results


def payload(result) -> dict:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def error_text(result) -> str:
    assert result.is_error
    return result.content[0].text


def test_tools_over_stdio(tiny_model_dir, sae_dir, tmp_path):
    home = tmp_path / "home"
    prompt = [{"role": "user", "content": "the cat sat on the mat"}]
    calls = [
        ("get_feature", {"index": 3, "neighbours": 4, "tokens": 5}),
        ("inspect", {"messages": prompt, "top_k": 5}),
        ("inspect", {"text": "the cat sat on the mat", "top_k": 5}),
        ("generate", {"messages": prompt, "edits": [{"index": 3, "value": 50.0}], "max_tokens": 6}),
        ("generate", {"text": "the cat sat on the mat", "max_tokens": 6}),
        ("get_feature", {"index": D_SAE}),
        ("generate", {"text": "hi", "edits": [{"index": 99, "value": 1.0}]}),
        ("inspect", {"messages": prompt, "text": "both"}),
        ("get_feature", {"index": "three"}),
        ("search_features", {"query": "cats"}),
        ("research_log_append", {"note": "feature 3 promotes nothing obvious"}),
        ("research_log_append", {"note": "second note"}),
        ("research_log_append", {"note": "  "}),
    ]
    tools, results = anyio.run(session_calls, server(tiny_model_dir, sae_dir, home), calls)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS
    assert by_name["get_feature"].input_schema["properties"]["index"]["type"] == "integer"
    assert "index" in by_name["get_feature"].input_schema["required"]
    assert by_name["search_features"].input_schema["required"] == ["query"]
    edit_schema = json.dumps(by_name["generate"].input_schema)
    assert '"nudge"' in edit_schema and '"pin"' in edit_schema  # the edit's mode is an enum in the schema

    feature, inspected, inspected_text, steered, plain = (payload(r) for r in results[:5])
    assert feature["index"] == 3 and feature["label"] == "" and feature["stats"] is None
    assert len(feature["promotes"]) == 5 and len(feature["suppresses"]) == 5
    assert feature["promotes"][0]["logit"] >= feature["promotes"][-1]["logit"] > feature["suppresses"][0]["logit"]
    assert [n["index"] for n in feature["neighbours"]] and 3 not in [n["index"] for n in feature["neighbours"]]
    cosines = [n["cosine"] for n in feature["neighbours"]]
    assert len(cosines) == 4 and cosines == sorted(cosines, reverse=True)

    assert inspected["tokens"] > 6 and 1 <= len(inspected["features"]) <= 5
    assert all(0 <= f["index"] < D_SAE and f["tokens_fired"] >= 1 for f in inspected["features"])
    assert inspected_text == inspected  # text is one user message

    assert set(steered) >= {"steered", "unsteered", "same"}
    assert steered["unsteered"] == plain["unsteered"]  # greedy: the same reply with and without compare
    assert steered["same"] is False and steered["steered"] != steered["unsteered"]
    assert "steered" not in plain

    assert "get_feature: index: must be an integer in 0..31, got 32" in error_text(results[5])
    assert "edits[0]" in error_text(results[6])
    assert "messages" in error_text(results[7]) and "exactly one" in error_text(results[7])
    assert "index" in error_text(results[8])  # the SDK's own schema validation names the argument
    assert "needs a feature database" in error_text(results[9])

    first, second = payload(results[10]), payload(results[11])
    assert (first["n"], second["n"], first["session"]) == (1, 2, "s1")
    assert "note: must be a non-empty string" in error_text(results[12])

    # A new server process on the same session reads the notes back; another session has its own log.
    _, (again,) = anyio.run(session_calls, server(tiny_model_dir, sae_dir, home), [("research_log_read", {})])
    assert [n["note"] for n in payload(again)["notes"]] == ["feature 3 promotes nothing obvious", "second note"]
    _, (other,) = anyio.run(session_calls, server(tiny_model_dir, sae_dir, home, "s2"), [("research_log_read", {})])
    assert payload(other)["notes"] == []


def test_analysis_tools_over_stdio(tiny_model_dir, sae_dir, tmp_path):
    """contrast, steer, ablate, attribute, search_corpus and classify through the MCP client, each with a bad
    argument refused naming it."""
    home = tmp_path / "home"
    cats = ["the cat sat on the mat", "a cat and a kitten", "cats purr and meow"]
    numbers = ["1 2 3 4 5 6", "seven eight nine ten", "11 12 13 14"]
    prompts = ["the cat sat on the", "numbers: 1 2 3"]
    calls = [
        ("contrast", {"dataset_1": cats, "dataset_2": numbers, "top_k": 3}),
        ("steer", {"name": "more-3", "edits": [{"index": 3, "value": 50.0}]}),
        ("ablate", {"index": 3, "prompts": prompts, "mode": "amplify", "value": 50.0, "max_tokens": 5}),
        ("attribute", {"text": "the cat sat on the mat", "position": -2, "top_k": 4}),
        ("contrast", {"dataset_1": cats, "dataset_2": [], "top_k": 3}),
        ("steer", {"name": "../etc", "edits": [{"index": 3, "value": 1.0}]}),
        ("ablate", {"index": 3, "prompts": prompts, "mode": "ablate", "value": 2.0}),
        ("ablate", {"index": 3, "prompts": ["p"] * 17}),
        ("attribute", {"text": "the cat", "position": 999}),
        ("search_corpus", {"query": "cats"}),
        ("classify", {"name": "toxicity", "texts": ["hello"]}),
        ("steer", {"name": "empty", "edits": []}),
        ("inspect", {"text": "x" * 20_001}),
        ("contrast", {"dataset_1": [[{"role": "user", "content": "y" * 20_001}]], "dataset_2": ["a"]}),
        ("contrast", {"dataset_1": cats, "dataset_2": numbers, "top_k": 3, "rank_by": "frequency"}),
        ("contrast", {"dataset_1": cats, "dataset_2": numbers, "top_k": 3, "rank_by": "relevance"}),
    ]
    tools, results = anyio.run(session_calls, server(tiny_model_dir, sae_dir, home), calls)
    assert {t.name for t in tools} == TOOLS
    assert by_schema(tools, "ablate")["properties"]["mode"]["enum"] == ["ablate", "amplify", "nudge"]

    contrasted, steered, ablated, attributed = (payload(r) for r in results[:4])
    assert contrasted["tokens"]["dataset_1"] > 0 and contrasted["tokens"]["dataset_2"] > 0
    sides = contrasted["dataset_1_features"] + contrasted["dataset_2_features"]
    assert sides and all(0 <= f["index"] < D_SAE and -1 <= f["effect"] <= 1 for f in sides)
    assert all(f["effect"] > 0 for f in contrasted["dataset_1_features"])

    assert steered["controller"]["interventions"] and steered["saved"]["name"] == "more-3"
    saved = json.loads(Path(steered["saved"]["path"]).read_text())
    assert saved["controller"] == steered["controller"]

    assert ablated["feature"]["index"] == 3 and ablated["edit"] == {"mode": "mul", "value": 50.0}
    assert len(ablated["prompts"]) == 2
    for row in ablated["prompts"]:
        assert row["kl"] >= 0 and "logprob_change" in row and row["first_token_changes"]
    assert ablated["mean_kl"] > 0  # a 50x amplification moves the distribution

    assert attributed["target"]["token"] and attributed["features"]
    assert all(0 <= f["index"] < D_SAE for f in attributed["features"])
    assert len(attributed["top"]) <= 4

    assert "dataset_2" in error_text(results[4])
    assert "name" in error_text(results[5]) and "not a variant name" in error_text(results[5])
    assert "value" in error_text(results[6]) and "leave value out" in error_text(results[6])
    assert "prompts" in error_text(results[7])
    assert "position" in error_text(results[8])
    assert "needs a feature database" in error_text(results[9])
    assert "classifier" in error_text(results[10]) and "name" in error_text(results[10])
    assert "edits" in error_text(results[11])
    assert "text: is 20001 characters; at most 20000" in error_text(results[12])
    assert "dataset_1[0]" in error_text(results[13]) and "at most 20000" in error_text(results[13])
    # contrast ranks as the native route does and says which ranking: without a feature database, frequency (the
    # default there too); a ranking named that needs one is refused naming rank_by
    assert contrasted["ranked_by"] == "frequency" and "note" in contrasted
    assert "relevance" in json.dumps(by_schema(tools, "contrast")["properties"]["rank_by"])
    named = payload(results[14])
    assert named["ranked_by"] == "frequency" and named["dataset_1_features"] == contrasted["dataset_1_features"]
    assert "rank_by" in error_text(results[15]) and "feature database" in error_text(results[15])


def by_schema(tools: list, name: str) -> dict:
    return next(t for t in tools if t.name == name).input_schema
