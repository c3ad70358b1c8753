"""An agent's tools over one ``Lab``: search features, read a feature, inspect a conversation, generate
with and without steering, and keep a research log.

Each tool is a plain method returning a small JSON-ready dict (compact: labels, numbers rounded, example
text clipped around the strongest token), so it is testable without MCP and the MCP server
(``agents.mcp_server``) only wires it up. Bad arguments raise ``SteerlabError`` subclasses naming the
argument (``field``), which the server turns into tool errors the agent can read and fix.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerlab.errors import InvalidInputError

if TYPE_CHECKING:
    from steerlab.engine.lab import Lab
    from steerlab.features.schema import Example

MAX_TOP_K = 100
MAX_NOTE_CHARS = 20_000
SESSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NoFeatureDatabaseError(InvalidInputError):
    """A tool that needs feature labels, on a lab without a feature database."""


def check_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"must be an integer in {low}..{high}, got {value!r}", field=field)
    return value


def conversation(messages: list[dict] | None, text: str | None) -> list[dict]:
    """The conversation a tool runs on: ``messages`` or one user turn of ``text`` (exactly one given)."""
    if (messages is None) == (text is None):
        raise InvalidInputError("give exactly one of messages or text", field="messages")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("must be a non-empty string", field="text")
        return [{"role": "user", "content": text}]
    assert messages is not None
    if not messages:
        raise InvalidInputError("must hold at least one message", field="messages")
    return [dict(m) for m in messages]


def _r(x: float) -> float:
    return round(float(x), 4)


def example_text(example: Example, before: int = 16, after: int = 6) -> str:
    """The example's text around its strongest token, that token in ``[[...]]``."""
    from steerlab.features.dashboard_common import clip, display_token

    tokens, acts = clip(example, before, after)
    peak = max(range(len(acts)), key=acts.__getitem__) if acts and max(acts) > 0 else -1
    return "".join(f"[[{display_token(t)}]]" if i == peak else display_token(t) for i, t in enumerate(tokens))


@dataclass
class ResearchLog:
    """Notes an agent keeps, one JSON object a line in ``folder/SESSION.jsonl``; they outlive the process."""

    folder: Path
    session: str

    def __post_init__(self) -> None:
        if not SESSION_PATTERN.match(self.session):
            raise InvalidInputError(
                f"{self.session!r} is not a session id",
                field="session",
                allowed="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.folder / f"{self.session}.jsonl"

    def append(self, note: str) -> dict:
        if not isinstance(note, str) or not note.strip():
            raise InvalidInputError("must be a non-empty string", field="note")
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidInputError(f"is {len(note)} characters; at most {MAX_NOTE_CHARS}", field="note")
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            n = len(self.read())
            entry = {"n": n + 1, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": note}
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash loses that note only
        return out


class LabTools:
    """The tools, over ``lab`` (which must have an SAE) and ``log``."""

    def __init__(self, lab: Lab, log: ResearchLog) -> None:
        if lab.sae is None:
            raise InvalidInputError("the agent tools need a lab with an SAE", field="sae")
        self.lab, self.log = lab, log

    # ------------------------------------------------------------------ features
    def search_features(self, query: str, top_k: int = 10) -> dict:
        """Features whose labels match ``query`` (hybrid: meaning and words), best first."""
        top_k = check_int(top_k, "top_k", 1, MAX_TOP_K)
        search = self.lab.search
        if search is None:
            raise NoFeatureDatabaseError(
                "search_features needs a feature database (labels), and this lab has none; build one with "
                "'steerlab features build' and 'steerlab features label', or start with --db",
                field="query",
            )
        hits = search.search(query, top_k=top_k)
        return {
            "query": query,
            "features": [
                {"index": h.index, "label": h.label, "score": _r(h.score)}
                | ({"label_score": _r(h.label_score)} if h.label_score is not None else {})
                for h in hits
            ],
        }

    def get_feature(self, index: int, examples: int = 3, neighbours: int = 5, tokens: int = 8) -> dict:
        """A feature's label, statistics, top activating examples, logit effects and decoder neighbours."""
        lab = self.lab
        index = check_int(index, "index", 0, lab.d_sae - 1)
        examples = check_int(examples, "examples", 0, 20)
        neighbours = check_int(neighbours, "neighbours", 0, MAX_TOP_K)
        tokens = check_int(tokens, "tokens", 0, 50)
        out: dict[str, Any] = {"index": index, "label": lab.labels.get(index, "")}
        promoted = suppressed = None
        if lab.store is not None:
            assert lab.sae_id is not None
            feature = lab.store.get_feature(lab.sae_id, index, with_examples=examples > 0)
            if feature.label is not None and feature.label.score is not None:
                out["label_score"] = _r(feature.label.score)
            s = feature.stats
            out["stats"] = (
                None
                if s is None
                else {
                    "density": float(f"{s.density:.4g}"),
                    "max_act": _r(s.max_act),
                    "mean_act": _r(s.mean_act),
                    "tokens_scanned": s.tokens_scanned,
                }
            )
            out["examples"] = [
                {"text": example_text(e), "max_act": _r(e.max_act)} for e in feature.examples_of("top")[:examples]
            ]
            if feature.promoted:
                promoted, suppressed = feature.promoted, feature.suppressed
        else:
            out["stats"] = None
            out["examples"] = []
            out["note"] = "no feature database: no label, statistics or examples"
        if promoted is None:
            promoted, suppressed = self._logit_effects(index, tokens)
        assert suppressed is not None
        out["promotes"] = [{"token": t.token, "logit": _r(t.value)} for t in promoted[:tokens]]
        out["suppresses"] = [{"token": t.token, "logit": _r(t.value)} for t in suppressed[:tokens]]
        out["neighbours"] = self._neighbours(index, neighbours)
        return out

    def _logit_effects(self, index: int, top: int) -> tuple[list, list]:
        from steerlab.features.logit_effects import logit_effects, unembedding, vocabulary

        lab = self.lab
        assert lab.sae is not None
        w_u, norm = unembedding(lab.lm.model)
        vocab = vocabulary(lab.lm.tokenizer, w_u.shape[0])
        row = lab.sae.W_dec.detach()[index : index + 1]
        return next(iter(logit_effects(row, w_u, norm, vocab, top=max(top, 1))))

    def _neighbours(self, index: int, k: int) -> list[dict]:
        import torch

        if k == 0:
            return []
        assert self.lab.sae is not None
        w = torch.nn.functional.normalize(self.lab.sae.W_dec.detach().float(), dim=-1)
        scores = w @ w[index]
        scores[index] = -2.0
        top = scores.topk(min(k, len(scores) - 1))
        labels = self.lab.labels
        return [
            {"index": i, "label": labels.get(i, ""), "cosine": _r(v)}
            for v, i in zip(top.values.tolist(), top.indices.tolist())
        ]

    # ------------------------------------------------------------------ analyses
    def inspect(self, messages: list[dict] | None = None, text: str | None = None, top_k: int = 10) -> dict:
        """The features most active over a conversation: how many tokens each fired on and its peak."""
        from steerlab.analysis.inspect import inspect

        top_k = check_int(top_k, "top_k", 1, MAX_TOP_K)
        convo = conversation(messages, text)
        lab = self.lab
        inspection = lab.run_exclusive(inspect, lab.lm, lab.sae, convo, None, labels=lab.labels, sae_id=lab.sae_id)
        peaks = {f.index: f for f in inspection.top(lab.d_sae, by="max")}
        features = []
        for f in inspection.top(top_k, by="count"):
            peak = peaks.get(f.index)
            features.append(
                {
                    "index": f.index,
                    "label": f.label,
                    "tokens_fired": f.count,
                    "max_act": _r(peak.act_units) if peak is not None else 0.0,
                }
            )
        return {"tokens": len(inspection), "features": features}

    def generate(
        self,
        messages: list[dict] | None = None,
        text: str | None = None,
        edits: list[dict] | None = None,
        variant: dict | None = None,
        max_tokens: int = 48,
        compare: bool = True,
    ) -> dict:
        """A greedy reply steered by ``edits`` (and/or an Ember ``variant`` controller), and with
        ``compare`` the unsteered reply to the same prompt beside it."""
        from steerlab.engine.lab import sampling_params
        from steerlab.steering.controller_json import Controller
        from steerlab.steering.edits import FeatureEdit
        from steerlab.steering.errors import SteeringError
        from steerlab.steering.plan import edits_controller

        convo = conversation(messages, text)
        max_tokens = check_int(max_tokens, "max_tokens", 1, 512)
        try:
            controller = Controller.from_json(variant) if variant else Controller()
        except SteeringError as err:
            raise SteeringError(err.message, field=f"variant.{err.field}" if err.field else "variant") from None
        parsed = []
        for i, edit in enumerate(edits or []):
            try:
                parsed.append(
                    FeatureEdit(int(edit["index"]), float(edit["value"]), str(edit.get("mode", "nudge"))).validate(
                        self.lab.d_sae
                    )
                )
            except SteeringError as err:
                raise SteeringError(err.message, field=f"edits[{i}]") from None
            except (KeyError, TypeError, ValueError):
                raise InvalidInputError(f"must be {{index, value, mode?}}, got {edit!r}", field=f"edits[{i}]") from None
        controller.interventions.extend(edits_controller(parsed).interventions)
        params = sampling_params(max_completion_tokens=max_tokens, temperature=0.0)
        out: dict[str, Any] = {}
        steered = not controller.is_empty()
        if steered:
            out["steered"], events = self._reply(convo, params, controller)
            if events:
                out["events"] = events
        if compare or not steered:
            out["unsteered"], _ = self._reply(convo, params, None)
        if steered and compare:
            out["same"] = out["steered"] == out["unsteered"]
        return out

    def _reply(self, messages: list[dict], params: Any, variant: Any) -> tuple[str, list[str]]:
        text, events = "", []
        for event in self.lab.generate(messages, params, variant):
            text += event.text
            events += event.events
        return text, events

    # ------------------------------------------------------------------ research log
    def research_log_append(self, note: str) -> dict:
        """Add a note to this session's research log (kept on disk)."""
        entry = self.log.append(note)
        return {"session": self.log.session, **entry}

    def research_log_read(self) -> dict:
        """Every note of this session's research log, oldest first."""
        return {"session": self.log.session, "notes": self.log.read()}
