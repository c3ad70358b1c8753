"""Static-batch generation for bulk jobs (the default corpus's chat replies): many prompts, one KV cache.

Why not ``model.generate``: on a CPU its per-step bookkeeping and its habit of decoding finished rows
until the longest one ends cost more than half the throughput. Here finished rows leave the batch
(their KV-cache rows are dropped), and sampling is a few vectorised ops per step. Each call takes its
own ``torch.Generator`` so a batch's text depends only on its seed.

With ``record=HOOKPOINT`` it also returns the residual stream at that hookpoint for every token the
model read (prompt, then each generated token as it is fed back): the default corpus harvests its chat
part while writing it, instead of running the model over the finished transcripts a second time.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from steerlab.models.hooks import capture_residual

NUCLEUS_CANDIDATES = 512
"""Top-p looks at this many most likely tokens first (exact: falls back to a full sort when needed)."""


@dataclass
class BatchSampling:
    max_new_tokens: int = 192
    temperature: float = 0.6
    """0 means greedy."""
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    """HF semantics: logits of tokens already in the row are divided (if > 0) or multiplied by it."""


@dataclass
class Generated:
    token_ids: list[int]
    """New tokens only, without the stop token."""
    finish_reason: str  # "stop" (a stop token) or "length"
    activations: torch.Tensor | None = None
    """With ``record``: float32 [tokens read, d_model], the prompt's tokens then the generated ones the
    model read back (all of ``token_ids`` but the last when the row ran out of length)."""

    def read_ids(self, prompt: list[int]) -> list[int]:
        """The token ids whose residuals ``activations`` holds, in order."""
        return (prompt + self.token_ids)[: len(self.activations)] if self.activations is not None else []


def sample_rows(
    logits: torch.Tensor, cfg: BatchSampling, generator: torch.Generator | None, seen: torch.Tensor | None = None
) -> torch.Tensor:
    """Next token per row from ``logits: [rows, vocab]``; ``seen: [rows, vocab]`` bool for the penalty."""
    logits = logits.float()
    if seen is not None and cfg.repetition_penalty != 1.0:
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if cfg.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / cfg.temperature, dim=-1)
    if cfg.top_p < 1:
        # Sorting the whole vocabulary (49k) per row cost as much as the forward pass; the nucleus
        # nearly always lies inside the top few hundred tokens, so sort only those unless it does not.
        sorted_p, order = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
        if bool((sorted_p.sum(-1) < cfg.top_p).any()):
            sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= cfg.top_p
        drop[:, 0] = False  # the most likely token always survives
        probs = sorted_p.masked_fill(drop, 0.0)
        picked = torch.multinomial(probs, 1, generator=generator)
        return order.gather(-1, picked).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate_batch(
    model,
    prompts: list[list[int]],
    cfg: BatchSampling,
    stop_token_ids: set[int],
    pad_token_id: int,
    seed: int | None = None,
    record: str | None = None,
) -> list[Generated]:
    """Continue every prompt (token ids) until a stop token or ``max_new_tokens``; order is kept.

    ``record``: a hookpoint whose residual stream is returned per row in ``Generated.activations``.
    """
    from transformers import DynamicCache

    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be non-empty token lists")
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):  # left padding: every row's last prompt token is at the end
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    vocab = model.get_output_embeddings().out_features
    seen = torch.zeros((len(prompts), vocab), dtype=torch.bool)
    seen.scatter_(1, ids, mask.bool())
    stops = torch.tensor(sorted(stop_token_ids), dtype=torch.long)

    cache = DynamicCache()
    live = torch.arange(len(prompts))  # original row of each row still in the batch
    out: list[list[int]] = [[] for _ in prompts]
    finish = ["length"] * len(prompts)
    step_ids, step_pos = ids, positions
    pieces: list[list[torch.Tensor]] = [[] for _ in prompts]
    with capture_residual(model, [record]) if record else nullcontext({}) as captured:
        for step in range(cfg.max_new_tokens):
            logits = model(
                input_ids=step_ids.to(device),
                attention_mask=mask.to(device),
                position_ids=step_pos.to(device),
                cache=cache,
                use_cache=True,
            ).logits[:, -1]
            if record:
                _keep_residuals(captured[record], pieces, live, prompts if step == 0 else None)
            tokens = sample_rows(logits.cpu(), cfg, generator, seen)
            stopped = torch.isin(tokens, stops)
            for row, token, is_stop in zip(live.tolist(), tokens.tolist(), stopped.tolist()):
                if is_stop:
                    finish[row] = "stop"
                else:
                    out[row].append(token)
            seen[torch.arange(len(tokens)), tokens] = True
            if step == cfg.max_new_tokens - 1 or bool(stopped.all()):
                break
            keep = (~stopped).nonzero().squeeze(-1)
            if len(keep) < len(live):  # drop finished rows from the batch and its KV cache
                cache.batch_select_indices(keep.to(device))
                live, tokens, mask, seen = live[keep], tokens[keep], mask[keep], seen[keep]
                step_pos = step_pos[keep]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=torch.long)], dim=-1)
            step_pos = step_pos[:, -1:] + 1
            step_ids = tokens.unsqueeze(-1)
    acts = [torch.cat(p) if p else None for p in pieces]
    return [Generated(tokens, reason, a) for tokens, reason, a in zip(out, finish, acts)]


def _keep_residuals(
    hidden: torch.Tensor, pieces: list[list[torch.Tensor]], live: torch.Tensor, prompts: list[list[int]] | None
) -> None:
    """Append this step's residuals to each row's list: the whole (unpadded) prompt on the first step,
    then the one token each live row read."""
    hidden = hidden.float().cpu()
    if prompts is not None:
        width = hidden.shape[1]
        for row, p in enumerate(prompts):
            pieces[row].append(hidden[row, width - len(p) :].clone())
        return
    last = hidden[:, -1].clone()
    for i, row in enumerate(live.tolist()):
        pieces[row].append(last[i : i + 1])
