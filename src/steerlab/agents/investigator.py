"""The investigator: an OpenAI-compatible chat model that supports tool calls answers a research question with
the agent tools (the same ``LabTools`` and the same schemas and errors as ``steerlab mcp``: it calls the
MCP server object in process), on a step and token budget, and writes a report whose every claim cites the
tool results behind it.

Everything is appended to a JSONL log as it happens (the question, each model message, each tool result
under its citation id ``T1``, ``T2``...), so an interrupted investigation resumes from its log: the
messages are rebuilt, tool calls the model asked for but that have no result yet are run, and the loop
goes on with the budget that is left. Tool results are clipped for the model (``RESULT_CHARS``); the log
keeps them whole.

The report (``report.md`` + ``report.json``): the answer, split into claims (paragraphs and list items),
each with the tool results it cites; claims citing nothing, or an id no tool call had, are listed as
unsupported rather than dropped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from steerlab.errors import InvalidInputError, SteerlabError

RESULT_CHARS = 6000
CITE = re.compile(r"\[(T\d+)\]")
SYSTEM_PROMPT = """You are an interpretability researcher investigating a language model through its sparse \
autoencoder (SAE) features, with tools. Work step by step: form hypotheses, test them with the tools \
(search_features, get_feature, inspect, contrast, generate, ablate, attribute, search_corpus, ...), and \
keep notes with research_log_append. Every tool result starts with its id, e.g. [T3].

When you are done, answer the question in a short report. Every claim (each paragraph or list item) must \
cite the tool results that support it with their ids in square brackets, e.g. "Feature 120 fires on \
French text [T2][T5]." Do not claim anything no tool result shows."""
FINAL_PROMPT = (
    "The budget for tool calls is spent. Write your final report now from the results you have, citing the "
    "tool result ids ([T1], [T2], ...) behind every claim."
)


class InvestigatorError(SteerlabError):
    """The chat endpoint failed or answered something that is not a chat completion (the log is kept)."""

    status = 502


@dataclass
class Budget:
    max_steps: int = 12
    """Chat completions that may ask for tools (the final report is one more)."""
    max_tokens: int = 60_000
    """Prompt + completion tokens over the whole investigation, as the endpoint reports them."""


@dataclass
class State:
    """What the log holds, replayed."""

    question: str = ""
    model: str = ""
    messages: list[dict] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)
    """Tool results by citation id."""
    by_call: dict[str, str] = field(default_factory=dict)
    """Model tool-call id -> citation id."""
    steps: int = 0
    tokens: int = 0
    answer: str | None = None
    stopped: str | None = None


class Log:
    """Append-only JSONL: one record a line, flushed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def replay(self) -> State:
        if not self.path.is_file():
            raise InvalidInputError(f"no investigation log at {self.path}", field="log")
        state = State()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
            kind = record.get("type")
            if kind == "start":
                state.question, state.model = record["question"], record["model"]
                state.messages = [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": record["question"]},
                ]
            elif kind == "message":
                state.messages.append(record["message"])
            elif kind == "tool":
                state.results[record["id"]] = record
                state.by_call[record["call_id"]] = record["id"]
                state.messages.append(tool_message(record))
            elif kind == "usage":
                state.steps, state.tokens = record["steps"], record["tokens"]
            elif kind == "final":
                state.answer, state.stopped = record["answer"], record["stopped"]
        return state


def tool_message(record: dict) -> dict:
    body = record["error"] if record.get("error") else json.dumps(record["result"], ensure_ascii=False)
    prefix = f"[{record['id']}] " + ("ERROR: " if record.get("error") else "")
    text = prefix + body
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"... (clipped; {len(text)} characters)"
    return {"role": "tool", "tool_call_id": record["call_id"], "content": text}


class ChatEndpoint:
    """``POST {base_url}/chat/completions`` of any OpenAI-compatible server."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def complete(self, messages: list[dict], tools: list[dict] | None) -> tuple[dict, int]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if tools:
            body |= {"tools": tools, "tool_choice": "auto"}
        try:
            response = self.client.post("/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise InvestigatorError(f"chat endpoint unreachable: {err}", field="base_url") from None
        if response.status_code != 200:
            raise InvestigatorError(
                f"chat endpoint answered {response.status_code}: {response.text[:300]}", field="base_url"
            )
        try:
            data = response.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise InvestigatorError(f"not a chat completion: {response.text[:300]}", field="base_url") from None
        usage = data.get("usage") or {}
        tokens = usage.get("total_tokens")
        if not isinstance(tokens, int):  # no usage reported: about 4 characters a token
            tokens = (len(json.dumps(messages)) + len(json.dumps(message))) // 4
        return message, tokens

    def close(self) -> None:
        self.client.close()


class ToolBox:
    """The MCP server's tools, called in process: ``specs`` for the chat API, ``call`` -> (result, error)."""

    def __init__(self, server: Any) -> None:
        import anyio

        self.server = server
        listed = anyio.run(server.list_tools)
        self.specs = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in listed
        ]
        self.names = {t.name for t in listed}

    def call(self, name: str, arguments: dict) -> tuple[Any, str | None]:
        import anyio
        from mcp.server.mcpserver.exceptions import ToolError

        if name not in self.names:
            return None, f"no tool {name!r}; tools: {', '.join(sorted(self.names))}"
        try:
            result = anyio.run(self.server.call_tool, name, arguments)
        except ToolError as err:
            return None, str(err)
        if getattr(result, "is_error", False):
            return None, " ".join(getattr(c, "text", "") for c in result.content)
        text = "".join(getattr(c, "text", "") for c in result.content)
        try:
            return json.loads(text), None
        except json.JSONDecodeError:
            return text, None


def _arguments(raw: Any) -> tuple[dict, str | None]:
    if isinstance(raw, dict):
        return raw, None
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}, f"arguments are not JSON: {str(raw)[:200]}"
    return (parsed, None) if isinstance(parsed, dict) else ({}, "arguments must be a JSON object")


def investigate(
    question: str | None,
    endpoint: ChatEndpoint,
    tools: ToolBox,
    log_path: Path,
    budget: Budget,
    resume: bool = False,
    progress: Callable[[str, str], None] = lambda kind, text: None,
) -> State:
    """Run (or with ``resume``, continue) the investigation logged at ``log_path``; returns its final state."""
    log = Log(log_path)
    if resume:
        state = log.replay()
        if question and question.strip() != state.question:
            raise InvalidInputError("differs from the logged investigation's question; leave it out", field="question")
        progress("resume", f"{len(state.results)} tool results, {state.steps} steps, {state.tokens} tokens so far")
    else:
        if not question or not question.strip():
            raise InvalidInputError("must say what to investigate", field="question")
        if log_path.exists():
            raise InvalidInputError(f"{log_path} exists: pass --resume to continue it, or another --log", field="log")
        state = State(question.strip(), endpoint.model)
        state.messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": state.question}]
        log.write({"type": "start", "question": state.question, "model": endpoint.model, "time": time.time()})
    if state.answer is not None:
        return state

    def run_pending() -> None:
        """Results for the tool calls of the last assistant message that have none yet (after a crash too)."""
        last = next((m for m in reversed(state.messages) if m["role"] == "assistant"), None)
        for call in (last or {}).get("tool_calls") or []:
            if call["id"] in state.by_call:
                continue
            name = call.get("function", {}).get("name", "")
            arguments, error = _arguments(call.get("function", {}).get("arguments"))
            cite = f"T{len(state.results) + 1}"
            progress("tool", f"[{cite}] {name}({json.dumps(arguments, ensure_ascii=False)[:160]})")
            result = None
            if error is None:
                result, error = tools.call(name, arguments)
            record = {"type": "tool", "id": cite, "call_id": call["id"], "name": name, "arguments": arguments}
            record |= {"result": result, "error": error}
            log.write(record)
            state.results[cite], state.by_call[call["id"]] = record, cite
            state.messages.append(tool_message(record))
            progress(
                "result", f"[{cite}] " + (f"error: {error}" if error else json.dumps(result, ensure_ascii=False)[:200])
            )

    def ask(with_tools: bool) -> dict:
        message, tokens = endpoint.complete(state.messages, tools.specs if with_tools else None)
        state.steps += 1
        state.tokens += tokens
        kept = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls") and with_tools:
            kept["tool_calls"] = [
                {"id": c.get("id") or f"call_{state.steps}_{i}", "type": "function", "function": c.get("function", {})}
                for i, c in enumerate(message["tool_calls"])
            ]
        state.messages.append(kept)
        log.write({"type": "message", "message": kept})
        log.write({"type": "usage", "steps": state.steps, "tokens": state.tokens})
        if kept["content"]:
            progress("model", kept["content"][:300])
        return kept

    run_pending()
    stopped = "answer"
    while True:
        if state.steps >= budget.max_steps:
            stopped = "steps"
            break
        if state.tokens >= budget.max_tokens:
            stopped = "tokens"
            break
        message = ask(with_tools=True)
        if not message.get("tool_calls"):
            return finish(state, log, message["content"], "answer")
        run_pending()
    state.messages.append({"role": "user", "content": FINAL_PROMPT})
    log.write({"type": "message", "message": state.messages[-1]})
    progress("budget", f"{stopped} budget spent: asking for the final report")
    message = ask(with_tools=False)
    return finish(state, log, message["content"], stopped)


def finish(state: State, log: Log, answer: str, stopped: str) -> State:
    state.answer, state.stopped = answer, stopped
    log.write({"type": "final", "answer": answer, "stopped": stopped})
    return state


def claims(answer: str) -> list[str]:
    """The answer's claims: its paragraphs and list items (headings dropped)."""
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)", answer.strip()):
        text = block.strip()
        if text and not text.startswith("#"):
            out.append(text)
    return out


def report(state: State) -> dict:
    """The report as JSON: every claim with the tool results it cites, and what is unsupported."""
    rows, unsupported = [], []
    for text in claims(state.answer or ""):
        cited = list(dict.fromkeys(CITE.findall(text)))
        known = [c for c in cited if c in state.results]
        unknown = [c for c in cited if c not in state.results]
        rows.append({"claim": text, "cites": known} | ({"unknown_cites": unknown} if unknown else {}))
        if not known or unknown:
            unsupported.append(text)
    cited_ids = {c for r in rows for c in r["cites"]}
    return {
        "question": state.question,
        "model": state.model,
        "answer": state.answer,
        "stopped": state.stopped,
        "steps": state.steps,
        "tokens": state.tokens,
        "claims": rows,
        "unsupported": unsupported,
        "evidence": [
            {
                "id": r["id"],
                "tool": r["name"],
                "arguments": r["arguments"],
                "error": r.get("error"),
                "cited": r["id"] in cited_ids,
                "result": r.get("result"),
            }
            for r in state.results.values()
        ],
    }


def markdown(data: dict) -> str:
    lines = [f"# {data['question']}", ""]
    lines += [f"*{data['model']}: {data['steps']} steps, {data['tokens']} tokens; stopped on {data['stopped']}.*", ""]
    lines += ["## Findings", ""]
    for row in data["claims"]:
        mark = "" if row["cites"] and not row.get("unknown_cites") else " **(unsupported)**"
        lines += [row["claim"] + mark, ""]
    lines += ["## Evidence", ""]
    for e in data["evidence"]:
        args = json.dumps(e["arguments"], ensure_ascii=False)
        outcome = f"error: {e['error']}" if e["error"] else json.dumps(e["result"], ensure_ascii=False)
        if len(outcome) > 400:
            outcome = outcome[:400] + "..."
        lines += [
            f"- **[{e['id']}]** `{e['tool']}({args[:300]})`{'' if e['cited'] else ' (not cited)'}",
            f"  {outcome}",
        ]
    if data["unsupported"]:
        lines += ["", f"{len(data['unsupported'])} claim(s) cite no tool result (or an unknown id)."]
    return "\n".join(lines) + "\n"


def write_report(state: State, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = report(state)
    (out / "report.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(markdown(data), encoding="utf-8")
    return out / "report.md", out / "report.json"
