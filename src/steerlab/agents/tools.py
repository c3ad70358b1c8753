"""An agent's tools over one ``Lab``: search features, read a feature, inspect a conversation, contrast two
datasets, generate with and without steering, build and save a variant, ablate or amplify a feature and
measure the effect, attribute a token, AutoSteer, search the build corpus, classify, and keep a research log.

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
import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steerlab.errors import ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from steerlab.engine.lab import Lab
    from steerlab.features.schema import Example

MAX_TOP_K = 100
MAX_NOTE_CHARS = 20_000
MAX_NOTES = 5_000
MAX_TEXT_CHARS = 20_000
MAX_MESSAGES = 256
MAX_PROMPTS = 16
MAX_REPLY_TOKENS = 256
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
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
        return [{"role": "user", "content": check_text(text, "text")}]
    assert messages is not None
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("must hold at least one message", field="messages")
    if len(messages) > MAX_MESSAGES:
        raise InvalidInputError(f"has {len(messages)} messages; at most {MAX_MESSAGES}", field="messages")
    return checked_messages(messages, "messages")


def checked_messages(messages: list, field: str) -> list[dict]:
    """Copies of the messages, their text at most ``MAX_TEXT_CHARS`` characters together."""
    out = [dict(m) for m in messages]
    chars = sum(len(str(m.get("content", ""))) for m in out)
    if chars > MAX_TEXT_CHARS:
        raise InvalidInputError(f"holds {chars} characters of text; at most {MAX_TEXT_CHARS}", field=field)
    return out


def check_text(value: object, field: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("must be a non-empty string", field=field)
    if len(value) > limit:
        raise InvalidInputError(f"is {len(value)} characters; at most {limit}", field=field)
    return value


def dataset(items: object, field: str, limit: int) -> list[list[dict]]:
    """Conversations from a list whose items are texts (one user message each) or message lists."""
    if not isinstance(items, list) or not items:
        raise InvalidInputError("must be a non-empty list of texts or conversations", field=field)
    if len(items) > limit:
        raise InvalidInputError(f"has {len(items)} conversations; at most {limit}", field=field)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append([{"role": "user", "content": check_text(item, f"{field}[{i}]")}])
        elif isinstance(item, list) and 0 < len(item) <= MAX_MESSAGES:
            out.append(checked_messages(item, f"{field}[{i}]"))
        else:
            raise InvalidInputError("must be a text or a non-empty list of messages", field=f"{field}[{i}]")
    return out


class Meter:
    """What a tool call costs whoever called it. In process nothing is charged; the server's meter
    (``server.mcp_http``) checks the per-request budgets and reserves tokens from the API key's quota, as
    the equivalent REST routes do."""

    def admit(self, counts: dict[str, int], budget: str) -> AbstractContextManager[None]:
        """Run ``counts`` tokens (per argument) through the model, within the settings field ``budget``
        (e.g. ``max_analysis_tokens``)."""
        return nullcontext()

    def job(self, kind: str) -> AbstractContextManager[None]:
        """A long search (AutoSteer): one of the few allowed at once on a server."""
        return nullcontext()


class VariantSink(Protocol):
    def save(self, name: str, model: str, controller: dict) -> dict: ...


@dataclass
class FileVariants:
    """Variants saved as ``folder/NAME.json`` (``steerlab mcp``: the researcher's own machine)."""

    folder: Path

    def save(self, name: str, model: str, controller: dict) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.json"
        path.write_text(json.dumps({"name": name, "model": model, "controller": controller}, indent=1))
        return {"name": name, "path": str(path)}


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
            if n >= MAX_NOTES:
                raise ConflictError(
                    f"this research log holds {n} notes, the most kept; start another session", field="note"
                )
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


_UNIT_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_UNIT_LOCK = threading.Lock()


def unit_decoder(sae: Any) -> Any:
    """The SAE's decoder rows scaled to unit length, computed once per SAE (every caller's tools share it)."""
    import torch

    with _UNIT_LOCK:
        w = _UNIT_DECODERS.get(sae)
        if w is None:
            w = _UNIT_DECODERS[sae] = torch.nn.functional.normalize(sae.W_dec.detach().float(), dim=-1)
    return w


class LabTools:
    """The tools, over ``lab`` (which must have an SAE) and ``log``."""

    def __init__(
        self,
        lab: Lab,
        log: ResearchLog,
        meter: Meter | None = None,
        variants: VariantSink | None = None,
        corpus: Any = None,
    ) -> None:
        if lab.sae is None:
            raise InvalidInputError("the agent tools need a lab with an SAE", field="sae")
        self.lab, self.log = lab, log
        self.meter = meter or Meter()
        self.variants = variants
        if corpus is None:
            from steerlab.agents.corpus import CorpusSearch

            corpus = CorpusSearch(lab)
        self.corpus = corpus

    # ------------------------------------------------------------------ features
    def search_features(self, query: str, top_k: int = 10) -> dict:
        """Features whose labels match ``query`` (meaning and words; re-scored by their contexts when the database has
        context vectors: ``FeatureSearch.default_by``), best first; each says why it was returned (``reason``)."""
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
                {"index": h.index, "label": h.label, "score": _r(h.score), "reason": h.reason}
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
        if k == 0:
            return []
        assert self.lab.sae is not None
        w = unit_decoder(self.lab.sae)
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
        """The features most specific to a conversation's text, ranked as inspect ranks by default (``Lab.inspect``:
        ``relevance`` with the feature database's statistics and topic vectors, ``specificity`` with statistics
        alone, else ``frequency``; named in ``ranked_by``; template tokens left out): tokens each counted on, its
        peak activation."""
        top_k = check_int(top_k, "top_k", 1, MAX_TOP_K)
        convo = conversation(messages, text)
        lab = self.lab
        with self.meter.admit({"messages": self._tokens(convo, "messages")}, "max_analysis_tokens"):
            inspection = lab.inspect(convo)
        peaks = {f.index: f for f in inspection.top(lab.d_sae, by="max", rank_by="frequency")}
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
        return {"tokens": len(inspection), "ranked_by": inspection.ranking(None), "features": features}

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

        convo = conversation(messages, text)
        max_tokens = check_int(max_tokens, "max_tokens", 1, 512)
        controller = self._controller(edits, variant)
        params = sampling_params(max_completion_tokens=max_tokens, temperature=0.0)
        out: dict[str, Any] = {}
        steered = not controller.is_empty()
        replies = 1 + int(steered and compare)
        prompt = len(self.lab.prompt_ids(convo))
        counts = {"messages": prompt * replies, "max_tokens": max_tokens * replies}
        with self.meter.admit(counts, "max_analysis_tokens"):
            if steered:
                out["steered"], events = self._reply(convo, params, controller)
                if events:
                    out["events"] = events
            if compare or not steered:
                out["unsteered"], _ = self._reply(convo, params, None)
        if steered and compare:
            out["same"] = out["steered"] == out["unsteered"]
        return out

    def _controller(self, edits: list[dict] | None, variant: dict | None) -> Any:
        """An Ember controller from ``variant`` JSON plus plain ``edits``, compiled against the SAE (errors
        name the argument)."""
        from steerlab.steering.controller_json import Controller
        from steerlab.steering.edits import FeatureEdit
        from steerlab.steering.errors import SteeringError
        from steerlab.steering.plan import edits_controller

        if edits is not None and (not isinstance(edits, list) or len(edits) > MAX_TOP_K):
            raise InvalidInputError(f"must be a list of at most {MAX_TOP_K} edits", field="edits")
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
        try:
            self.lab.steering_for(controller.json())  # refuse what could not run (features of another SAE...)
        except SteeringError as err:
            raise SteeringError(err.message, field=f"variant.{err.field}" if err.field else "variant") from None
        return controller

    def _reply(self, messages: list[dict], params: Any, variant: Any) -> tuple[str, list[str]]:
        text, events = "", []
        for event in self.lab.generate(messages, params, variant):
            text += event.text
            events += event.events
        return text, events

    def _tokens(self, convo: list[dict], field: str) -> int:
        from steerlab.steering.conversation import conversation_ids

        return len(conversation_ids(self.lab.lm.tokenizer, convo, field))

    def contrast(self, dataset_1: list, dataset_2: list, top_k: int = 10, rank_by: str | None = None) -> dict:
        """Features that separate two datasets (texts or conversations), most distinguishing first, ranked as the
        native ``/v1/contrast`` ranks (``Lab.contrast``; named in ``ranked_by``): by default ``relevance`` (with the
        feature database and topic vectors) or ``specificity`` (``effect``: difference of the sides' mean pooled
        specificity, with its 90% interval ``effect_low``/``effect_high``; ``support``: the favoured side's share of
        conversations it fires notably in), else ``frequency`` (``effect``: the rank-biserial correlation). Positive
        effect: more active in dataset_1. ``rank_by`` names another ranking; ``note`` says when the data is thin."""
        from steerlab.settings import get_settings

        top_k = check_int(top_k, "top_k", 1, MAX_TOP_K)
        limit = min(get_settings().max_dataset_conversations, 256)
        d1, d2 = dataset(dataset_1, "dataset_1", limit), dataset(dataset_2, "dataset_2", limit)
        counts = {
            side: sum(self._tokens(c, f"{side}[{i}]") for i, c in enumerate(data))
            for side, data in (("dataset_1", d1), ("dataset_2", d2))
        }
        with self.meter.admit(counts, "max_analysis_tokens"):
            result = self.lab.contrast(d1, d2, top_k=top_k, rank_by=rank_by)

        def rows(features: list) -> list[dict]:
            out = []
            for f in features:
                row = {
                    "index": f.index,
                    "label": f.label,
                    "effect": _r(f.effect),
                    "mean_1": _r(f.mean_units_1),
                    "mean_2": _r(f.mean_units_2),
                    "firing_rate_1": _r(f.firing_rate_1),
                    "firing_rate_2": _r(f.firing_rate_2),
                }
                extra = {
                    "effect_low": f.effect_low,
                    "effect_high": f.effect_high,
                    "support": f.support,
                    "relevance": f.relevance,
                }
                row.update({k: _r(v) for k, v in extra.items() if v is not None})
                out.append(row)
            return out

        return {
            "tokens": counts,
            "ranked_by": result.ranked_by,
            "note": result.note,
            "dataset_1_features": rows(result.dataset_1_features),
            "dataset_2_features": rows(result.dataset_2_features),
        }

    def steer(self, name: str, edits: list[dict] | None = None, variant: dict | None = None, save: bool = True) -> dict:
        """Build a variant (an Ember controller) from feature edits and/or controller JSON, checked against this
        SAE; with ``save``, store it under ``name`` (the server: the key's saved variants, within its quota)."""
        name = check_text(name, "name", 100).strip()
        if not VARIANT_NAME.match(name):
            raise InvalidInputError(
                f"{name!r} is not a variant name",
                field="name",
                allowed="1-100 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit",
            )
        controller = self._controller(edits, variant)
        if controller.is_empty():
            raise InvalidInputError("give edits or a variant that changes something", field="edits")
        out: dict[str, Any] = {"name": name, "controller": controller.json()}
        if save:
            if self.variants is None:
                raise InvalidInputError("this tool server does not store variants; call with save=false", field="save")
            out["saved"] = self.variants.save(name, self.lab.model_name, controller.json())
        return out

    def ablate(
        self,
        index: int,
        prompts: list[str],
        mode: str = "ablate",
        value: float | None = None,
        max_tokens: int = 24,
    ) -> dict:
        """Ablate (pin to 0), amplify (multiply by ``value``, default 4) or nudge (add ``value``) one feature and
        measure it on each prompt: the unsteered greedy reply, the steered one, the unsteered reply's
        log-probability under the edited model, and the KL of the next-token distributions along it."""
        from steerlab.agents.measure import effect_on_reply
        from steerlab.engine.lab import sampling_params

        lab = self.lab
        index = check_int(index, "index", 0, lab.d_sae - 1)
        modes = {"ablate": ("pin", 0.0), "amplify": ("mul", 4.0), "nudge": ("nudge", 0.5)}
        if mode not in modes:
            raise InvalidInputError(f"must be one of {', '.join(modes)}, got {mode!r}", field="mode")
        edit_mode, default = modes[mode]
        if mode == "ablate" and value not in (None, 0, 0.0):
            raise InvalidInputError("ablate pins the feature to 0; leave value out", field="value")
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or abs(value) > 1e4):
            raise InvalidInputError(f"must be a number in -10000..10000, got {value!r}", field="value")
        strength = float(default if value is None else value)
        max_tokens = check_int(max_tokens, "max_tokens", 1, MAX_REPLY_TOKENS)
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_PROMPTS:
            raise InvalidInputError(f"must be a list of 1..{MAX_PROMPTS} prompts", field="prompts")
        convos = [[{"role": "user", "content": check_text(p, f"prompts[{i}]")}] for i, p in enumerate(prompts)]
        controller = self._controller([{"index": index, "value": strength, "mode": edit_mode}], None)
        _, editor = lab.steering_for(controller.json())
        params = sampling_params(max_completion_tokens=max_tokens, temperature=0.0)
        prompt_ids = [lab.prompt_ids(c) for c in convos]
        # Two replies and two scoring forwards of prompt + reply per prompt.
        counts = {"prompts": 4 * sum(len(p) for p in prompt_ids), "max_tokens": 4 * max_tokens * len(prompts)}
        rows = []
        with self.meter.admit(counts, "max_analysis_tokens"):
            for convo, ids in zip(convos, prompt_ids):
                base_text, base_ids = self._reply_ids(convo, params, None)
                steered_text, _ = self._reply_ids(convo, params, controller)
                row: dict[str, Any] = {"prompt": convo[0]["content"][:200], "unsteered": base_text}
                row["steered"] = steered_text
                if base_ids:
                    effect = lab.run_shared(effect_on_reply, lab, ids, base_ids, editor)
                    row |= {
                        "logprob_change": _r(effect.logprob_steered - effect.logprob_unsteered),
                        "kl": _r(effect.kl),
                        "first_token_changes": [{"token": t, "logprob_change": _r(v)} for t, v in effect.top_changes],
                    }
                rows.append(row)
        scored = [r for r in rows if "kl" in r]
        return {
            "feature": {"index": index, "label": lab.labels.get(index, "")},
            "edit": {"mode": edit_mode, "value": strength},
            "mean_kl": _r(sum(r["kl"] for r in scored) / len(scored)) if scored else None,
            "mean_logprob_change": _r(sum(r["logprob_change"] for r in scored) / len(scored)) if scored else None,
            "changed_replies": sum(r["steered"] != r["unsteered"] for r in rows),
            "prompts": rows,
        }

    def _reply_ids(self, messages: list[dict], params: Any, variant: Any) -> tuple[str, list[int]]:
        text, ids = "", []
        for event in self.lab.generate(messages, params, variant):
            text += event.text
            if event.token_id is not None and event.finish_reason != "stop":
                ids.append(event.token_id)
        return text, ids

    def attribute(
        self, messages: list[dict] | None = None, text: str | None = None, position: int = -1, top_k: int = 10
    ) -> dict:
        """Which features (at which earlier tokens) drive the logit of the token at ``position`` of the
        conversation (negative counts from the end): gradient x activation, in logit units."""
        from steerlab.analysis.attribution import attribute

        convo = conversation(messages, text)
        top_k = check_int(top_k, "top_k", 1, MAX_TOP_K)
        if isinstance(position, bool) or not isinstance(position, int):
            raise InvalidInputError(f"must be an integer, got {position!r}", field="position")
        lab = self.lab
        with self.meter.admit({"messages": self._tokens(convo, "messages")}, "max_attribution_tokens"):
            try:
                result = lab.run_shared(attribute, lab.lm, lab.sae, convo, position, labels=lab.labels)
            except InvalidInputError as err:
                if err.field == "index":
                    raise InvalidInputError(err.message, field="position") from None
                raise
        return {
            "target": {"position": result.target_position, "token": result.target_token, "logit": _r(result.logit)},
            "features": [
                {"index": i, "label": label, "attribution": _r(v)} for i, label, v in result.by_feature(top_k)
            ],
            "top": [
                {"index": a.index, "position": a.position, "token": a.token, "attribution": _r(a.attribution)}
                for a in result.top(top_k)
            ],
        }

    def autosteer(self, goal: str, effort: str = "quick") -> dict:
        """Find feature nudges that make the model pursue ``goal`` (plain language) while staying fluent: a
        search that generates and scores short replies (``quick``: about half the work of ``thorough``)."""
        from steerlab.analysis.autosteer import AutoSteerConfig, auto_steer

        goal = check_text(goal, "goal", 500).strip()
        if effort not in ("quick", "thorough"):
            raise InvalidInputError(f"must be quick or thorough, got {effort!r}", field="effort")
        config = AutoSteerConfig.quick() if effort == "quick" else AutoSteerConfig()
        lab = self.lab
        # charged like POST /v1/autosteer: its estimate reserved from the key's tokens/min on a server
        with self.meter.admit({"goal": config.token_estimate()}, "max_autosteer_tokens"), self.meter.job("autosteer"):
            result = auto_steer(
                lab.lm, lab.sae, goal, config=config, search=lab.search, labels=lab.labels, sae_id=lab.sae_id
            )
        best, base = result.best, result.unsteered
        return {
            "goal": result.goal,
            "edits": [{"index": f.index, "label": f.label, "value": _r(v), "mode": "nudge"} for f, v in result.edits],
            "controller": result.controller.json(),
            "score": {"steered": _r(best.score), "unsteered": _r(base.score), "fluency": _r(best.fluency)},
            "example_replies": [r[:300] for r in best.replies[:3]],
            "tried": len(result.trials),
        }

    def search_corpus(self, query: str, by: str = "words", top_k: int = 5) -> dict:
        """Passages of the corpus the feature database was built from: ``words`` (bm25 over the text) or
        ``meaning`` (sequences where the features whose labels match the query fire most)."""
        from steerlab.agents.corpus import check_query

        query = check_query(query)
        top_k = check_int(top_k, "top_k", 1, 50)
        if by not in ("words", "meaning"):
            raise InvalidInputError(f"must be words or meaning, got {by!r}", field="by")
        if self.lab.store is None or self.lab.search is None:
            raise NoFeatureDatabaseError(
                "search_corpus needs a feature database (it stores the corpus); build one with "
                "'steerlab features build', or start with --db",
                field="query",
            )
        hits = self.corpus.by_words(query, top_k) if by == "words" else self.corpus.by_meaning(query, top_k)
        return {"query": query, "by": by, "passages": hits}

    def classify(self, name: str, texts: list[str], top: int = 3) -> dict:
        """Score texts with a trained classifier (``steerlab classify train``): probability of the positive
        class, whether it is flagged, and the features that moved the score."""
        name = check_text(name, "name", 100)
        top = check_int(top, "top", 0, 20)
        if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_PROMPTS * 4:
            raise InvalidInputError(f"must be a list of 1..{MAX_PROMPTS * 4} texts", field="texts")
        texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
        lab = self.lab
        tokenizer = lab.lm.tokenizer
        counts = {"texts": sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)}
        try:
            lab.classifier(name)
        except LookupError:
            raise NotFoundError(f"no classifier {name!r}", field="name") from None
        with self.meter.admit(counts, "max_analysis_tokens"):
            results = lab.classify(name, texts, top=top)
        return {
            "classifier": name,
            "results": [
                {
                    "text": t[:120],
                    "score": _r(r["score"]),
                    "flagged": bool(r["flagged"]),
                    "features": [
                        {"index": f["index"], "label": f["label"], "contribution": _r(f["contribution"])}
                        for f in r["features"]
                    ],
                }
                | ({"truncated": True} if r.get("truncated") else {})
                for t, r in zip(texts, results)
            ],
        }

    # ------------------------------------------------------------------ research log
    def research_log_append(self, note: str) -> dict:
        """Add a note to this session's research log (kept on disk)."""
        entry = self.log.append(note)
        return {"session": self.log.session, **entry}

    def research_log_read(self) -> dict:
        """Every note of this session's research log, oldest first."""
        return {"session": self.log.session, "notes": self.log.read()}
