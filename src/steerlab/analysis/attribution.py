"""Attribution: which features, at which earlier tokens, drive the logit of a chosen token.

Method: gradient x activation through the SAE at its hookpoint. The residual there is rewritten as
``decode(f) + error`` with ``error = h - decode(f)`` held as its own input, so the model computes
exactly what it computes without the SAE (the error term is kept, not dropped). One backward pass
from the target logit gives ``d logit / d f`` at every position; a feature's attribution at a
position is that gradient times its activation: the first-order estimate of how much the logit
would fall if that feature were ablated (set to 0) at that token alone. ``error_by_position`` is the
same estimate for the SAE's error term, i.e. what the dictionary does not explain.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from steerlab.analysis.codes import labeler
from steerlab.models.chat_template import token_strings
from steerlab.models.chunked import Hold
from steerlab.models.hooks import output_hidden, register_own_thread_hook, replace_output_hidden
from steerlab.steering.conversation import check_context, conversation_ids
from steerlab.steering.errors import ConversationError


@dataclass
class FeatureAttribution:
    index: int
    label: str
    position: int
    token: str
    attribution: float
    """Logit units: the first-order drop of the target logit if this feature were ablated here."""
    act_units: float
    act_raw: float


class AttributionResult:
    def __init__(
        self,
        tokens: list[str],
        position: int,
        token_id: int,
        token: str,
        logit: float,
        scores: torch.Tensor,
        codes: torch.Tensor,
        error_scores: torch.Tensor,
        scale: torch.Tensor,
        labels,
        num_input_tokens: int,
    ):
        self.tokens = tokens
        """The tokens before the target (the positions attributions refer to)."""
        self.num_input_tokens = num_input_tokens
        self.target_position, self.target_token_id, self.target_token, self.logit = position, token_id, token, logit
        self.scores = scores  # [position, d_sae]: attribution of each feature at each earlier token
        self.codes_raw = codes  # [position, d_sae]
        self.error_by_position = error_scores  # [position]
        self.scale = scale
        self.label = labeler(labels)

    def _entry(self, pos: int, index: int) -> FeatureAttribution:
        raw = float(self.codes_raw[pos, index])
        return FeatureAttribution(
            index,
            self.label(index),
            pos,
            self.tokens[pos],
            float(self.scores[pos, index]),
            raw / float(self.scale[index]),
            raw,
        )

    def top(self, k: int = 10, sign: str = "abs") -> list[FeatureAttribution]:
        """The ``k`` largest (feature, position) attributions: by magnitude (``abs``), or the most
        ``positive`` (raise the logit) or ``negative`` (lower it)."""
        values = {"abs": self.scores.abs(), "positive": self.scores, "negative": -self.scores}.get(sign)
        if values is None:
            raise ConversationError(f"must be abs, positive or negative, got {sign!r}", field="sign")
        flat = values.flatten()
        order = flat.topk(min(k, int((self.scores != 0).sum()))).indices.tolist()
        width = self.scores.shape[1]
        return [self._entry(i // width, i % width) for i in order]

    def by_position(self) -> list[tuple[int, str, float, float]]:
        """Per earlier token: ``(position, token, summed feature attribution, error attribution)``."""
        per_feature = self.scores.sum(1).tolist()
        return [(p, self.tokens[p], per_feature[p], float(self.error_by_position[p])) for p in range(len(per_feature))]

    def by_feature(self, k: int = 10) -> list[tuple[int, str, float]]:
        """Per feature summed over positions, largest first: ``(index, label, attribution)``."""
        totals = self.scores.sum(0)
        order = totals.argsort(descending=True)[:k].tolist()
        return [(i, self.label(i), float(totals[i])) for i in order if self.scores[:, i].any()]

    def firing(self, index: int) -> list[tuple[int, float]]:
        """Where feature ``index`` fired before the target: ``(position, activation in per-feature units)``."""
        fired = self.codes_raw[:, index].nonzero().flatten().tolist()
        return [(p, float(self.codes_raw[p, index] / self.scale[index])) for p in fired]


def attribute(
    lm, sae, messages, index: int, token: int | str | None = None, *, labels=None, hold: Hold = nullcontext
) -> AttributionResult:
    """Attribute the logit of the token at position ``index`` of the conversation (negative counts
    from the end), or of ``token`` (an id or a one-token string) in its place. The forward and backward
    pass run inside one ``hold()`` (the backward needs the whole forward's graph)."""
    tokenizer = lm.tokenizer
    ids = conversation_ids(tokenizer, messages)
    check_context(lm.model, len(ids))
    position = index + len(ids) if isinstance(index, int) and index < 0 else index
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= position < len(ids):
        raise ConversationError(
            f"must be a token position in 1..{len(ids) - 1} (or negative from the end), got {index!r}", field="index"
        )
    token_id = _token_id(tokenizer, token, ids[position], lm.model.get_output_embeddings().out_features)
    prefix = torch.tensor([ids[:position]], device=lm.device)
    held: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        h = output_hidden(output)
        codes = sae.encode(h.detach().to(sae.W_enc.dtype)).requires_grad_(True)
        error = (h.detach().to(sae.W_dec.dtype) - sae.decode(codes.detach())).requires_grad_(True)
        held["codes"], held["error"] = codes, error
        return replace_output_hidden(output, (sae.decode(codes) + error).to(h.dtype))

    handle = register_own_thread_hook(lm.model.get_submodule(sae.cfg.hookpoint), hook)
    try:
        with hold(), torch.enable_grad():
            logit = lm.model(input_ids=prefix).logits[0, -1, token_id]
            logit.backward()
    finally:
        handle.remove()
    codes, error = held["codes"], held["error"]
    scores = (codes.grad * codes).detach()[0].float()
    error_scores = (error.grad * error).detach()[0].float().sum(-1)
    tokens = token_strings(tokenizer, ids)
    return AttributionResult(
        tokens[:position],
        position,
        token_id,
        tokenizer.decode([token_id]),
        float(logit.detach()),
        scores,
        codes.detach()[0].float(),
        error_scores,
        sae.feature_scale.float().clamp_min(1e-12),
        labels,
        len(ids),
    )


def _token_id(tokenizer, token, default: int, vocab: int) -> int:
    if token is None:
        return default
    if isinstance(token, str):
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise ConversationError(f"{token!r} is {len(encoded)} tokens; give one token", field="token")
        return encoded[0]
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
        raise ConversationError(
            f"must be a token id in 0..{vocab - 1} or a one-token string, got {token!r}", field="token"
        )
    return token
