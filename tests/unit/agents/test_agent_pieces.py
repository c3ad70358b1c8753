"""Pieces of the agent tools that need no model: the research log's bounds, the report's claim checks,
the investigator's log replay."""

from __future__ import annotations

import json

import pytest

from steerlab.agents import tools
from steerlab.agents.investigator import Log, State, claims, report
from steerlab.agents.tools import ResearchLog, conversation, dataset
from steerlab.errors import ConflictError, InvalidInputError


def test_research_log_stops_at_its_cap_and_keeps_what_it_has(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "MAX_NOTES", 3)
    log = ResearchLog(tmp_path, "s")
    for i in range(3):
        log.append(f"note {i}")
    with pytest.raises(ConflictError) as err:
        log.append("one too many")
    assert err.value.field == "note"
    assert [n["note"] for n in log.read()] == ["note 0", "note 1", "note 2"]


def test_conversation_and_dataset_bounds():
    with pytest.raises(InvalidInputError) as err:
        conversation([{"role": "user", "content": "x"}] * 257, None)
    assert err.value.field == "messages"
    with pytest.raises(InvalidInputError) as err:
        dataset(["a"] * 3, "dataset_1", 2)
    assert err.value.field == "dataset_1"
    with pytest.raises(InvalidInputError) as err:
        dataset(["a", 5], "dataset_2", 10)
    assert err.value.field == "dataset_2[1]"
    assert dataset(["hi", [{"role": "user", "content": "yo"}]], "d", 10) == [
        [{"role": "user", "content": "hi"}],
        [{"role": "user", "content": "yo"}],
    ]


def test_claims_and_citation_checks():
    answer = "# Title\n\nA is true [T1].\n- B holds [T2][T1].\n- C is asserted.\n1. D cites a ghost [T7]."
    assert claims(answer) == ["A is true [T1].", "- B holds [T2][T1].", "- C is asserted.", "1. D cites a ghost [T7]."]
    state = State("q", "m", answer=answer, stopped="answer")
    state.results = {
        t: {"id": t, "name": "get_feature", "arguments": {}, "result": {}, "error": None} for t in ("T1", "T2", "T3")
    }
    data = report(state)
    assert [c["cites"] for c in data["claims"]] == [["T1"], ["T2", "T1"], [], []]
    assert data["claims"][3]["unknown_cites"] == ["T7"]
    assert data["unsupported"] == ["- C is asserted.", "1. D cites a ghost [T7]."]
    assert [e["cited"] for e in data["evidence"]] == [True, True, False]


def test_log_replay_skips_a_torn_line_and_rebuilds_the_conversation(tmp_path):
    path = tmp_path / "log.jsonl"
    log = Log(path)
    log.write({"type": "start", "question": "q?", "model": "m"})
    call = {"id": "c1", "type": "function", "function": {"name": "get_feature", "arguments": "{}"}}
    log.write({"type": "message", "message": {"role": "assistant", "content": "", "tool_calls": [call]}})
    log.write(
        {
            "type": "tool",
            "id": "T1",
            "call_id": "c1",
            "name": "get_feature",
            "arguments": {},
            "result": {"a": 1},
            "error": None,
        }
    )
    log.write({"type": "usage", "steps": 1, "tokens": 50})
    with path.open("a") as f:
        f.write('{"type": "message", "mess')  # a crash mid-write
    state = log.replay()
    assert (state.question, state.steps, state.tokens) == ("q?", 1, 50)
    assert [m["role"] for m in state.messages] == ["system", "user", "assistant", "tool"]
    assert state.messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "[T1] " + json.dumps({"a": 1})}
    assert state.by_call == {"c1": "T1"} and state.answer is None
