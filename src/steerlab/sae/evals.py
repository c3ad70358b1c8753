"""Evaluate an SAE spliced into its model on held-out text.

Reported: ``fvu``, ``l0``, ``dead_fraction`` (latents that never fire on the eval tokens),
``ce_loss_clean``, ``ce_loss_sae`` (residual replaced by the SAE's reconstruction), ``ce_loss_zero``
(residual zero-ablated), ``ce_loss_score`` = (CE_zero - CE_sae) / (CE_zero - CE_clean), and
``kl_div`` = KL(clean || spliced) of the next-token distributions. Position 0 is left untouched in
every run: the SAE is not trained on it (attention-sink position, see activations/harvest.py).

``fvu``, ``l0`` and ``dead_fraction`` also leave out *massive activations*: tokens whose residual norm is over
``massive_factor`` (``STEERLAB_MASSIVE_FACTOR``, default 10) times the median norm of their batch
(``massive_tokens`` counts them; the definition is shared with the trainer and the harvester:
``steerlab.activations.massive``). A window that starts on
a newline or a digit can put a second attention sink at position 1 with ~100x the usual norm; one such token
among 10,000 holds most of the pooled variance, and a pooled FVU then measures that token alone (the bundled
SAE's held-out text read 0.043 with one in it and 0.153 without). The CE-loss score still splices every token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from tqdm import tqdm

from steerlab.activations.corpus import CorpusSource, iter_records, record_to_sequences
from steerlab.activations.massive import massive_factor, massive_mask
from steerlab.errors import InvalidInputError, MissingFileError
from steerlab.models.hooks import capture_residual, edit_residual

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from steerlab.models.loader import LoadedModel
    from steerlab.sae.base import SAE


def sequences_from_text_file(
    path: str | Path, tokenizer: PreTrainedTokenizerBase, context_length: int = 256, max_tokens: int | None = None
) -> list[list[int]]:
    """A .txt file (split into windows) or a .jsonl/.parquet corpus (text or chat records)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist", field="--text-file")
    source = CorpusSource(path=str(path))
    if path.suffix == ".txt":
        records = [{"text": path.read_text(encoding="utf-8", errors="replace")}]
    else:
        records = iter_records(source)
    sequences, total = [], 0
    for record in records:
        for seq in record_to_sequences(record, tokenizer, source, context_length):
            sequences.append(seq)
            total += len(seq)
            if max_tokens is not None and total >= max_tokens:
                return sequences
    if not sequences:
        raise InvalidInputError(f"{path} holds no text with at least 32 tokens", field="--text-file")
    return sequences


def _next_token_ce(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, ids[:, 1:, None])[..., 0]
    valid = mask[:, 1:].bool()
    return float(nll[valid].sum()), int(valid.sum())


@torch.inference_mode()
def evaluate_sae(
    lm: LoadedModel,
    sae: SAE,
    sequences: list[list[int]],
    batch_size: int = 8,
    progress: bool = True,
    massive: float | None = None,
) -> dict[str, Any]:
    """Metrics of ``sae`` spliced into ``lm`` over ``sequences`` (see the module docstring). ``massive``: the
    massive-token factor (None: ``STEERLAB_MASSIVE_FACTOR``; 0 keeps every token)."""
    factor = massive_factor(massive)
    hookpoint = sae.cfg.hookpoint
    model, device = lm.model, lm.device
    pad = cast(int, lm.tokenizer.pad_token_id or 0)  # transformers types it as "ids or tokens"
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "kl": 0.0}
    n_pred = 0
    sq_err, x_sum, x_sq, n_tok, l0_sum = 0.0, torch.zeros(sae.cfg.d_in, dtype=torch.float64), 0.0, 0, 0.0
    n_massive = 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="eval", unit="batch", disable=not progress):
        width = max(len(sequences[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : len(sequences[i])] = torch.tensor(sequences[i])
            mask[r, : len(sequences[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        with capture_residual(model, [hookpoint]) as cap:
            clean = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        h = cap[hookpoint]
        x = h[:, 1:][mask[:, 1:].bool()].float()  # real tokens after position 0: [n, d_in]
        ordinary = ~massive_mask(x, factor)
        n_massive += int((~ordinary).sum())
        x = x[ordinary]
        f = sae.encode(x.to(sae.W_enc.dtype))
        x_hat = sae.decode(f).float()
        sq_err += float(((x - x_hat) ** 2).sum())
        x_sum += x.double().sum(0).cpu()
        x_sq += float((x.double() ** 2).sum())
        n_tok += x.shape[0]
        active = f > 0
        l0_sum += float(active.sum())
        fired += active.sum(0).cpu()

        recon = h.clone()
        recon[:, 1:] = sae.decode(sae.encode(h[:, 1:].to(sae.W_enc.dtype))).to(h.dtype)
        with edit_residual(model, hookpoint, lambda _h: recon):
            spliced = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        zeroed = h.clone()
        zeroed[:, 1:] = 0
        with edit_residual(model, hookpoint, lambda _h: zeroed):
            ablated = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        for key, logits in (("clean", clean), ("sae", spliced), ("zero", ablated)):
            total, count = _next_token_ce(logits, ids, mask)
            sums[key] += total
        n_pred += count
        logp_clean = torch.log_softmax(clean[:, :-1].float(), -1)
        logp_sae = torch.log_softmax(spliced[:, :-1].float(), -1)
        kl = (logp_clean.exp() * (logp_clean - logp_sae)).sum(-1)
        sums["kl"] += float(kl[mask[:, 1:].bool()].sum())
    total_var = x_sq - float((x_sum**2).sum()) / n_tok
    ce = {k: sums[k] / n_pred for k in ("clean", "sae", "zero")}
    return {
        "fvu": sq_err / total_var,
        "l0": l0_sum / n_tok,
        "dead_fraction": float((fired == 0).float().mean()),
        "ce_loss_clean": ce["clean"],
        "ce_loss_sae": ce["sae"],
        "ce_loss_zero": ce["zero"],
        "ce_loss_score": (ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"]),
        "kl_div": sums["kl"] / n_pred,
        "num_tokens": n_tok,
        "massive_tokens": n_massive,
        "massive_factor": factor,
        "hookpoint": hookpoint,
    }
