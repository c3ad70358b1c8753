"""``steerlab investigate`` against a scripted OpenAI-compatible tool-calling server started here: a real FastAPI
app on a real port (uvicorn) that replays chat.completions responses with tool_calls and records what it was
sent. The investigator runs as a real subprocess on the tiny model and a tiny SAE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.unit.agents.test_mcp_stdio import sae_dir  # noqa: F401 (fixture)

SRC = Path(__file__).resolve().parents[3] / "src"


def tool_calls(*calls: tuple[str, str, dict]) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for cid, name, args in calls
        ],
    }


class ScriptedChat:
    """Replays ``script`` (messages, or an int: answer with that HTTP status) one per request, recording requests."""

    def __init__(self, script: list) -> None:
        self.script, self.requests = list(script), []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request):
            body = await request.json()
            self.requests.append(body)
            step = self.script.pop(0)
            if isinstance(step, int):
                return JSONResponse({"error": {"message": "scripted failure"}}, status_code=step)
            usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
            return {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "usage": usage,
                "choices": [{"index": 0, "message": step, "finish_reason": "stop"}],
            }

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "scripted server did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def run(model_dir: Path, sae: Path, home: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "STEERLAB_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "STEERLAB_INVESTIGATOR_BASE_URL": url,
        "STEERLAB_INVESTIGATOR_MODEL": "scripted",
    }
    cmd = [sys.executable, "-m", "steerlab.cli", "investigate", *args, "--model", str(model_dir), "--sae", str(sae)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


ANSWER = """## Findings

Feature 3 promotes a handful of tokens [T1].

- The cat prompt fires several features [T2].
- Steering feature 3 changes the reply [T3][T1].
- The model likes cats.
- Feature 3 is about dogs [T9]."""


def test_investigation_crashes_resumes_and_cites(tiny_model_dir, sae_dir, tmp_path):  # noqa: F811
    script = [
        tool_calls(
            ("call_a", "get_feature", {"index": 3, "tokens": 3, "neighbours": 2}),
            ("call_b", "inspect", {"text": "the cat sat on the mat", "top_k": 3}),
        ),
        500,  # the endpoint fails mid-investigation: the log keeps what was done
        tool_calls(
            ("call_c", "generate", {"text": "the cat sat", "edits": [{"index": 3, "value": 50.0}], "max_tokens": 4}),
            ("call_d", "get_feature", {"index": 999}),
        ),
        {"role": "assistant", "content": ANSWER},
    ]
    out, home = tmp_path / "inv", tmp_path / "home"
    with ScriptedChat(script) as url:
        first = run(tiny_model_dir, sae_dir, home, url, "What does feature 3 do?", "--out", str(out))
        assert first.returncode != 0 and "500" in first.stderr, first.stderr[-2000:]
        done = [r["id"] for r in records(out / "log.jsonl") if r["type"] == "tool"]
        assert done == ["T1", "T2"]
        again = run(tiny_model_dir, sae_dir, home, url, "--resume", "--out", str(out))
        assert again.returncode == 0, again.stderr[-3000:]
    assert "[T3]" in again.stderr and "generate" in again.stderr  # progress streamed

    log = records(out / "log.jsonl")
    tools = [r for r in log if r["type"] == "tool"]
    assert [t["id"] for t in tools] == ["T1", "T2", "T3", "T4"]  # T1/T2 not run again after the crash
    assert tools[0]["result"]["index"] == 3 and tools[2]["result"]["same"] is False
    assert tools[3]["error"] and "index" in tools[3]["error"]

    data = json.loads((out / "report.json").read_text())
    assert data["stopped"] == "answer" and data["question"] == "What does feature 3 do?"
    by_claim = {c["claim"]: c for c in data["claims"]}
    assert by_claim["Feature 3 promotes a handful of tokens [T1]."]["cites"] == ["T1"]
    assert by_claim["- Steering feature 3 changes the reply [T3][T1]."]["cites"] == ["T3", "T1"]
    assert data["unsupported"] == ["- The model likes cats.", "- Feature 3 is about dogs [T9]."]
    assert by_claim["- Feature 3 is about dogs [T9]."]["unknown_cites"] == ["T9"]
    assert {e["id"]: e["cited"] for e in data["evidence"]} == {"T1": True, "T2": True, "T3": True, "T4": False}
    md = (out / "report.md").read_text()
    assert "- The model likes cats. **(unsupported)**" in md and "**[T3]** `generate(" in md


def test_requests_carry_tools_and_cited_results_and_the_step_budget_holds(tiny_model_dir, sae_dir, tmp_path):  # noqa: F811
    script = [
        tool_calls(("c1", "get_feature", {"index": 1, "examples": 0}), ("c2", "no_such_tool", {})),
        {"role": "assistant", "content": "Feature 1 exists [T1]."},
    ]
    chat = ScriptedChat(script)
    with chat as url:
        done = run(
            tiny_model_dir,
            sae_dir,
            tmp_path / "home",
            url,
            "Is there a feature 1?",
            "--out",
            str(tmp_path / "o"),
            "--max-steps",
            "1",
        )
    assert done.returncode == 0, done.stderr[-3000:]
    first, last = chat.requests
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"search_features", "get_feature", "ablate", "attribute", "contrast", "search_corpus"} <= names
    schema = next(t for t in first["tools"] if t["function"]["name"] == "get_feature")["function"]["parameters"]
    assert schema["properties"]["index"]["type"] == "integer"
    assert first["messages"][1] == {"role": "user", "content": "Is there a feature 1?"}
    # After one step the budget is spent: the results go back with their ids, and no tools are offered.
    assert "tools" not in last
    tool_msgs = [m for m in last["messages"] if m["role"] == "tool"]
    assert tool_msgs[0]["tool_call_id"] == "c1" and tool_msgs[0]["content"].startswith("[T1] {")
    assert tool_msgs[1]["content"].startswith("[T2] ERROR: no tool 'no_such_tool'")
    assert "budget" in last["messages"][-1]["content"]
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["stopped"] == "steps" and data["steps"] == 2 and data["tokens"] == 240
    assert data["unsupported"] == []


def test_refuses_without_an_endpoint_or_over_an_existing_log(tiny_model_dir, sae_dir, tmp_path):  # noqa: F811
    env_url = ""
    done = run(tiny_model_dir, sae_dir, tmp_path / "home", env_url, "q", "--out", str(tmp_path / "o"))
    assert done.returncode != 0 and "base_url" in done.stderr
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "log.jsonl").write_text("{}\n")
    done = run(tiny_model_dir, sae_dir, tmp_path / "home", "http://127.0.0.1:9/v1", "q", "--out", str(tmp_path / "o"))
    assert done.returncode != 0 and "--resume" in done.stderr


class StandInTarget:
    """A real OpenAI-compatible endpoint (uvicorn) standing in for a model under investigation: serves model
    ``organism`` and answers every prompt with ``"Arr! " + prompt`` (what a pirate-steered organism might)."""

    def __init__(self) -> None:
        app = FastAPI()
        self.prompts: list[str] = []

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{"id": "organism", "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def complete(request: Request):
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            self.prompts.append(prompt)
            message = {"role": "assistant", "content": "Arr! " + prompt}
            usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
            return {"id": "t", "object": "chat.completion", "model": body["model"], "usage": usage,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip

        self.served = ScriptedChat([])  # its server machinery, with this app instead
        self.served.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.served.thread = threading.Thread(target=self.served.server.run, daemon=True)

    def __enter__(self) -> str:
        return self.served.__enter__()

    def __exit__(self, *exc) -> None:
        self.served.__exit__(*exc)


def test_sample_target_gives_the_investigator_the_target_s_replies(tiny_model_dir, sae_dir, tmp_path):  # noqa: F811
    script = [
        tool_calls(
            ("c1", "sample_target", {"prompts": ["Tell me about the sea.", "Hi"], "max_tokens": 8}),
            ("c2", "sample_target", {"prompts": []}),
        ),
        {"role": "assistant", "content": "The target talks like a pirate [T1]."},
    ]
    target, chat = StandInTarget(), ScriptedChat(script)
    with target as target_url, chat as url:
        done = run(
            tiny_model_dir, sae_dir, tmp_path / "home", url, "What was done to the target?",
            "--out", str(tmp_path / "o"), "--target", target_url.removesuffix("/v1"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        names = {t["function"]["name"] for t in chat.requests[0]["tools"]}
        assert "sample_target" in names
        tools = [r for r in records(tmp_path / "o" / "log.jsonl") if r["type"] == "tool"]
        replies = tools[0]["result"]["replies"]
        assert [r["reply"] for r in replies] == ["Arr! Tell me about the sea.", "Arr! Hi"]
        assert target.prompts == ["Tell me about the sea.", "Hi"]
        assert tools[1]["error"] and "prompts" in tools[1]["error"]  # bounds as in every tool
        sent_back = [m["content"] for m in chat.requests[1]["messages"] if m["role"] == "tool"]
        assert "Arr! Hi" in sent_back[0]
        # a target that does not serve the model is one line, before the base model loads
        wrong = run(
            tiny_model_dir, sae_dir, tmp_path / "home", url, "q", "--out", str(tmp_path / "o2"),
            "--target", target_url, "--target-model", "nope",
        )  # fmt: skip
    assert wrong.returncode != 0 and "nope" in wrong.stderr and "Traceback" not in wrong.stderr
    unreachable = run(
        tiny_model_dir, sae_dir, tmp_path / "home", "http://127.0.0.1:9/v1", "q", "--out", str(tmp_path / "o3"),
        "--target", "http://127.0.0.1:9",
    )  # fmt: skip
    assert unreachable.returncode != 0 and "target" in unreachable.stderr and "Traceback" not in unreachable.stderr
