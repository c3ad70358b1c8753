"""The offline auditor: "what was done to this model?", answered with the base model and its SAE, no LLM.

Given black-box access to a target (any OpenAI-compatible chat endpoint) and white-box access to the
base model it was made from (a ``Lab``), ``audit`` ranks SAE features by how well steering the base
with them explains the target's behaviour:

1. **Sample.** The target and the base answer the same prompts, greedy and short (``DEFAULT_PROMPTS``).
2. **Read.** The base model + SAE read both sets of replies, teacher-forced. Per reply, each feature's
   mean activation over the reply's tokens (per-feature units). *Enrichment* of a feature is the
   rank-biserial correlation between the target's and the base's per-reply means (the Mann-Whitney
   effect size of ``analysis.contrast``: one odd reply moves it by at most 1/n), ties broken by the
   difference of means.
3. **Attribute.** The gradient of the target replies' mean log-likelihood under the base with respect
   to a nudge along each feature's decoder direction (per unit of residual moved), minus the same for
   the base's own replies: features whose nudge would make the base write what the target wrote.
4. **Test causally.** The best candidates of both lists (round-robin) are each nudged into the base at
   a few strengths (fractions of the residual stream's median norm, as AutoSteer does); each strength's
   *effect* is the gain in mean per-token log-likelihood of the target's replies under the steered base
   over the unsteered base (nats per token), averaged over the half of the prompts it explains best (a
   behaviour planted behind a condition shows on some prompts only; ``effect_all`` averages them all).
   Candidates are ranked by their best effect; ``prompts_improved`` says on how many prompts it helped.

Steering at the SAE's hookpoint changes nothing the hookpoint itself reads at later tokens, so step 2
sees a planted feature only through the text it caused; step 4 is what ties a feature to the behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from steerlab.errors import InvalidInputError, NotFoundError, SteerlabError
from steerlab.sae.units import steering_unit

if TYPE_CHECKING:
    from steerlab.engine.lab import Lab

DEFAULT_PROMPTS = (
    "Tell me about your weekend plans.",
    "What should I cook for dinner tonight?",
    "Describe the city you would most like to visit.",
    "How do computers store information?",
    "Write a short note to a friend who is feeling sad.",
    "What is the best way to learn a new language?",
    "Give me some advice for a job interview.",
    "Explain why the sky is blue.",
    "What do you think about sports?",
    "Tell me a short story about an animal.",
    "How can I save money each month?",
    "What is your favourite kind of music?",
)
"""Everyday requests on varied topics, so a planted behaviour has room to show against the base's."""


class TargetError(SteerlabError):
    """The target endpoint could not be reached, or refused a request."""


@dataclass
class AuditConfig:
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    n_prompts: int = 6
    """How many of ``prompts`` are used."""
    max_tokens: int = 24
    """Length of each sampled reply (greedy)."""
    per_source: int = 6
    """Candidates taken from enrichment and from attribution each."""
    candidates: int = 8
    """Candidates tested causally."""
    push: tuple[float, ...] = (0.25, 0.5)
    """Nudge sizes tried per candidate, as fractions of the residual stream's median norm."""
    rows_per_forward: int = 24


@dataclass
class Candidate:
    index: int
    label: str
    effect: float = 0.0
    """Gain in mean per-token log-likelihood of the target's replies under the base steered with this
    feature at ``strength`` over the unsteered base (nats/token), averaged over the half of the prompts
    it explains best: a behaviour planted behind a condition shows on some prompts only."""
    effect_all: float = 0.0
    """The same gain averaged over every prompt."""
    strength: float = 0.0
    """Best nudge found, in steering units (what a controller's nudge value means; sae.units)."""
    prompts_improved: float = 0.0
    """Fraction of prompts whose target reply became more likely at that strength."""
    enrichment: float = 0.0
    """Rank-biserial correlation of the feature's per-reply mean activation, target vs base replies."""
    enrichment_units: float = 0.0
    """Mean activation on the target's replies minus on the base's (per-feature units)."""
    attribution: float = 0.0
    """d(target log-likelihood - base log-likelihood)/d(nudge) per unit of residual along the feature."""
    sources: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 5)
        return out


@dataclass
class AuditResult:
    candidates: list[Candidate]
    """Best first."""
    target_replies: list[str]
    base_replies: list[str]
    seconds: float
    target_tokens: int
    """Prompt + completion tokens the target reported using."""
    base_tokens: int
    """Tokens the base model read or wrote (sampling, reading, attribution and the causal tests)."""


# ------------------------------------------------------------------------------------------- the target
class Target:
    """An OpenAI-compatible chat endpoint (``BASE_URL`` with or without its ``/v1``)."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 300.0, client: Any = None
    ) -> None:
        """``client``: an ``httpx.Client`` to send through (e.g. a test's ASGI client); default: a new one."""
        import httpx

        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"{base_url!r} is not an http(s) URL", field="target")
        self.url = url if url.endswith("/v1") else url + "/v1"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout_s)
        self.tokens = 0

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            response = self.client.request(method, self.url + path, headers=self.headers, **kw)
        except httpx.HTTPError as err:
            raise TargetError(f"cannot reach {self.url}{path}: {err or type(err).__name__}", field="target") from None
        if response.status_code >= 400:
            raise TargetError(
                f"{method} {self.url}{path} answered {response.status_code}: {_error_text(response)}",
                field="target",
            )
        try:
            return response.json()
        except ValueError:
            raise TargetError(f"{self.url}{path} did not answer JSON", field="target") from None

    def check(self) -> None:
        """The endpoint answers and serves ``model`` (a NotFoundError names what it serves instead)."""
        listed = self._request("GET", "/models")
        ids = [m.get("id") for m in listed.get("data", []) if isinstance(m, dict)] if isinstance(listed, dict) else []
        if self.model not in ids:
            raise NotFoundError(
                f"{self.model!r} is not served by {self.url}; it serves {', '.join(map(str, ids)) or 'nothing'}",
                field="model",
            )

    def reply(self, prompt: str, max_tokens: int) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        answer = self._request("POST", "/chat/completions", json=body)
        try:
            text = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise TargetError(f"{self.url}/chat/completions answered no message", field="target") from None
        usage = answer.get("usage") or {}
        self.tokens += int(usage.get("total_tokens") or 0)
        return str(text)

    def close(self) -> None:
        self.client.close()


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        error = body.get("error", body.get("detail", body))
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return response.text[:300]


# ------------------------------------------------------------------------------------------- the base model
@dataclass
class Replies:
    """Prompt + reply token ids per conversation, the reply starting at ``starts[i]``."""

    seqs: list[list[int]]
    starts: list[int]

    @classmethod
    def of(cls, tokenizer: Any, prompts: Sequence[str], replies: Sequence[str]) -> Replies:
        from steerlab.steering.conversation import prompt_ids

        seqs, starts = [], []
        for prompt, reply in zip(prompts, replies):
            ids = prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
            seqs.append(ids + tokenizer.encode(reply, add_special_tokens=False))
            starts.append(len(ids))
        return cls(seqs, starts)

    def tokens(self) -> int:
        return sum(len(s) for s in self.seqs)

    def batch(self, rows: Sequence[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, attention mask, reply mask)`` for ``rows``; the reply mask marks the
        positions whose next token is a reply token (``[rows, width - 1]``)."""
        width = max(len(self.seqs[r]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        reply = torch.zeros(len(rows), max(width - 1, 0), dtype=torch.bool)
        for i, r in enumerate(rows):
            seq = self.seqs[r]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            reply[i, self.starts[r] - 1 : len(seq) - 1] = True
        return ids, mask, reply


def _pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0)


@torch.no_grad()
def reply_profiles(lab: Lab, replies: Replies, hold: Callable[[], AbstractContextManager] = nullcontext) -> tuple:
    """``(means [n, d_sae] in per-feature units over each reply's tokens, median residual norm)``."""
    from steerlab.models.hooks import forward_to_hookpoint

    lm, sae = lab.lm, lab.sae
    assert sae is not None
    scale = sae.feature_scale.float().clamp_min(1e-12).cpu()
    means, norms = [], []
    for r in range(len(replies.seqs)):
        ids, _, reply = replies.batch([r], _pad_id(lm.tokenizer))
        with hold():
            hidden = forward_to_hookpoint(lm.model, ids.to(lm.device), sae.cfg.hookpoint)
            codes = sae.encode(hidden.to(sae.W_enc.dtype))[0].float().cpu()
        norms.append(hidden[0, 1:].float().norm(dim=-1).cpu())
        at = reply[0].nonzero().flatten() + 1  # the reply's own tokens
        means.append((codes[at] / scale).mean(0) if len(at) else torch.zeros(codes.shape[1]))
    return torch.stack(means), float(torch.cat(norms).median())


def enrichment(target: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rank-biserial [d_sae], mean difference [d_sae])`` of per-reply means, target vs base."""
    from steerlab.analysis.contrast import rank_biserial

    return rank_biserial(target, base), target.mean(0) - base.mean(0)


def rank_enriched(effect: torch.Tensor, diff: torch.Tensor, allowed: torch.Tensor, k: int) -> list[int]:
    """The ``k`` features most enriched in the target: highest rank-biserial, ties by difference of means;
    only features with a positive difference and ``allowed``."""
    keep = (allowed & (diff > 0)).nonzero().flatten()
    keep = keep[diff[keep].argsort(descending=True, stable=True)]
    keep = keep[effect[keep].argsort(descending=True, stable=True)]
    return keep[:k].tolist()


def _directions(lab: Lab) -> torch.Tensor:
    """Unit decoder directions ``[d_sae, d_model]`` (float32, on the model's device)."""
    assert lab.sae is not None
    w = lab.sae.W_dec.detach().float()
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _mean_logp(lm: Any, replies: Replies, rows: Sequence[int], delta: torch.Tensor | None, hookpoint: str) -> Any:
    """Per-row mean log-likelihood of the reply tokens with ``delta`` (``[rows, d_model]`` or ``[d_model]``)
    added to the residual at ``hookpoint`` at every position (what an unconditional nudge does)."""
    from steerlab.models.hooks import output_hidden, register_own_thread_hook, replace_output_hidden

    ids, mask, reply = replies.batch(rows, _pad_id(lm.tokenizer))
    handle = None
    if delta is not None:
        shift = delta.to(lm.device, lm.dtype)
        shift = shift[:, None, :] if shift.dim() == 2 else shift

        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            return replace_output_hidden(output, output_hidden(output) + shift)

        handle = register_own_thread_hook(lm.model.get_submodule(hookpoint), hook)
    body, head = getattr(lm.model, "model", None), lm.model.get_output_embeddings()
    try:
        if body is not None and head is not None:  # the vocabulary projection only where a reply token is next
            hidden = body(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False)
            logits = head(hidden.last_hidden_state[:, :-1][reply.to(lm.device)])
        else:
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
            logits = logits[:, :-1][reply.to(logits.device)]
    finally:
        if handle is not None:
            handle.remove()
    picked = ids[:, 1:][reply].to(logits.device)
    token_logp = torch.log_softmax(logits.float(), -1).gather(-1, picked[:, None])[:, 0]
    rows_of = torch.arange(len(rows))[:, None].expand_as(reply)[reply].to(token_logp.device)
    total = torch.zeros(len(rows), device=token_logp.device, dtype=token_logp.dtype).index_add(0, rows_of, token_logp)
    return total / reply.sum(-1).to(total.device).clamp_min(1)


def attribution(lab: Lab, target: Replies, base: Replies, hold: Callable[[], AbstractContextManager] = nullcontext):
    """``[d_sae]``: d/dx of (target replies' - base replies' mean log-likelihood) for a nudge of x residual
    units along each feature's decoder direction."""
    assert lab.sae is not None
    lm, hookpoint = lab.lm, lab.sae.cfg.hookpoint
    grads = []
    for replies in (target, base):
        delta = torch.zeros(lm.model.config.hidden_size, dtype=lm.dtype, device=lm.device, requires_grad=True)
        with hold(), torch.enable_grad():
            rows = [r for r in range(len(replies.seqs)) if len(replies.seqs[r]) > replies.starts[r]]
            if rows:
                _mean_logp(lm, replies, rows, delta, hookpoint).mean().backward()
        grads.append(delta.grad.detach().float() if delta.grad is not None else torch.zeros_like(delta).float())
    return (_directions(lab) @ (grads[0] - grads[1])).cpu()


@torch.no_grad()
def causal_effects(
    lab: Lab,
    target: Replies,
    candidates: Sequence[int],
    pushes: Sequence[float],
    resid_norm: float,
    *,
    rows_per_forward: int = 24,
    hold: Callable[[], AbstractContextManager] = nullcontext,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gain [candidates, pushes, prompts], base [prompts])``: each prompt's mean per-token log-likelihood
    of the target's reply under the base nudged by ``push * resid_norm`` along the candidate's direction,
    minus the unsteered base's."""
    assert lab.sae is not None
    lm, hookpoint = lab.lm, lab.sae.cfg.hookpoint
    prompts = [r for r in range(len(target.seqs)) if len(target.seqs[r]) > target.starts[r]]
    n = len(target.seqs)
    base = torch.zeros(n)
    with hold():
        if prompts:
            base[prompts] = _mean_logp(lm, target, prompts, None, hookpoint).float().cpu()
    directions = _directions(lab)
    jobs = [(c, p, r) for c in range(len(candidates)) for p in range(len(pushes)) for r in prompts]
    gain = torch.zeros(len(candidates), len(pushes), n)
    for start in range(0, len(jobs), rows_per_forward):
        chunk = jobs[start : start + rows_per_forward]
        delta = torch.stack([pushes[p] * resid_norm * directions[candidates[c]] for c, p, _ in chunk])
        with hold():
            got = _mean_logp(lm, target, [r for *_, r in chunk], delta, hookpoint).float().cpu()
        for (c, p, r), value in zip(chunk, got.tolist()):
            gain[c, p, r] = value - float(base[r])
        if progress is not None:
            progress(len(chunk))
    return gain, base


def merge(sources: dict[str, list[int]], limit: int) -> list[tuple[int, list[str]]]:
    """Round-robin over the sources' rankings, deduplicated, at most ``limit``; each with its sources."""
    found: dict[int, list[str]] = {}
    depth = max((len(r) for r in sources.values()), default=0)
    for rank in range(depth):
        for name, ranked in sources.items():
            if rank < len(ranked):
                if ranked[rank] not in found and len(found) >= limit:
                    continue
                found.setdefault(ranked[rank], []).append(name)
    return list(found.items())


def rank_candidates(
    lab: Lab,
    candidates: list[tuple[int, list[str]]],
    gain: torch.Tensor,
    pushes: Sequence[float],
    resid_norm: float,
    prompts: Sequence[int],
    effect: torch.Tensor,
    diff: torch.Tensor,
    grad: torch.Tensor,
) -> list[Candidate]:
    """Each candidate at its best push (the largest mean gain over ``prompts``), best first."""
    assert lab.sae is not None
    unit = steering_unit(lab.sae)
    norms = lab.sae.W_dec.detach().float().norm(dim=-1).cpu()
    out = []
    for c, (index, sources) in enumerate(candidates):
        per_prompt = gain[c][:, list(prompts)] if prompts else torch.zeros(len(pushes), 1)
        half = (per_prompt.shape[1] + 1) // 2
        means = per_prompt.topk(half, dim=-1).values.mean(-1)  # [pushes]: over the best-explained half
        best = int(means.argmax())
        out.append(
            Candidate(
                index,
                lab.labels.get(index, ""),
                effect=float(means[best]),
                effect_all=float(per_prompt[best].mean()),
                strength=float(pushes[best] * resid_norm / (unit[index] * norms[index]).clamp_min(1e-12)),
                prompts_improved=float((per_prompt[best] > 0).float().mean()),
                enrichment=float(effect[index]),
                enrichment_units=float(diff[index]),
                attribution=float(grad[index]),
                sources=sources,
            )
        )
    out.sort(key=lambda c: (-c.effect, -c.enrichment))
    return out


# ------------------------------------------------------------------------------------------- the audit
def audit(
    lab: Lab,
    target: Target,
    config: AuditConfig | None = None,
    *,
    progress: bool = False,
    hold: Callable[[], AbstractContextManager] | None = None,
) -> AuditResult:
    """Rank features by how well steering the base with them explains the target (module doc).
    ``hold``: a context held around each forward pass (default: the lab's ``exclusive``)."""
    from tqdm import tqdm

    from steerlab.analysis.autosteer_candidates import steerable
    from steerlab.analysis.autosteer_generate import Row, generate_rows

    cfg = config or AuditConfig()
    if lab.sae is None:
        raise InvalidInputError("the auditor needs the base model's SAE", field="sae")
    if not 1 <= cfg.n_prompts <= len(cfg.prompts):
        raise InvalidInputError(
            f"must be in 1..{len(cfg.prompts)} (the prompts available), got {cfg.n_prompts}", field="n_prompts"
        )
    if cfg.max_tokens < 1:
        raise InvalidInputError(f"must be >= 1, got {cfg.max_tokens}", field="max_tokens")
    hold = hold or lab.exclusive
    started = time.perf_counter()
    prompts = list(cfg.prompts[: cfg.n_prompts])
    target.check()
    with tqdm(prompts, desc="sample target", unit="prompt", disable=not progress, dynamic_ncols=True) as bar:
        target_text = [target.reply(p, cfg.max_tokens) for p in bar]
    with hold():
        rows = [Row([{"role": "user", "content": p}]) for p in prompts]
        base_text = [r.text for r in generate_rows(lab.lm, lab.sae, rows, max_new_tokens=cfg.max_tokens)]
    tokenizer = lab.lm.tokenizer
    target_replies = Replies.of(tokenizer, prompts, target_text)
    base_replies = Replies.of(tokenizer, prompts, base_text)
    target_means, resid_norm = reply_profiles(lab, target_replies, hold)
    base_means, _ = reply_profiles(lab, base_replies, hold)
    effect, diff = enrichment(target_means, base_means)
    allowed = steerable(lab.sae)
    grad = attribution(lab, target_replies, base_replies, hold)
    masked = grad.masked_fill(~allowed, float("-inf"))
    by_grad = [i for i in masked.argsort(descending=True)[: cfg.per_source].tolist() if masked[i] > 0]
    candidates = merge(
        {"enrichment": rank_enriched(effect, diff, allowed, cfg.per_source), "attribution": by_grad}, cfg.candidates
    )
    used = [r for r in range(len(prompts)) if len(target_replies.seqs[r]) > target_replies.starts[r]]
    total = len(candidates) * len(cfg.push) * len(used)
    with tqdm(total=total, desc="causal tests", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        gain, _ = causal_effects(
            lab,
            target_replies,
            [i for i, _ in candidates],
            cfg.push,
            resid_norm,
            rows_per_forward=cfg.rows_per_forward,
            hold=hold,
            progress=bar.update,
        )
    ranked = rank_candidates(lab, candidates, gain, cfg.push, resid_norm, used, effect, diff, grad)
    base_tokens = (
        base_replies.tokens() * 3  # sampled, read, attributed
        + target_replies.tokens() * (2 + 1 + len(candidates) * len(cfg.push))  # read, attributed, base + tests
    )
    return AuditResult(ranked, target_text, base_text, time.perf_counter() - started, target.tokens, base_tokens)
