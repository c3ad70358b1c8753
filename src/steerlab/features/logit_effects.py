"""Logit effects: which next tokens a feature's decoder direction promotes and suppresses.

The direction is read the way the model reads the residual stream at its output: through the final
norm's elementwise weight and the unembedding (``W_U (g * d)``). The norm's division by the RMS is
left out: it rescales every logit alike and so does not change which tokens rank first. This
"direct" effect ignores the layers between the hookpoint and the output, as is usual for these
summaries (circuit-tracer, Neuronpedia): it says what the direction *writes*, not everything it causes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from steerlab.features.schema import TokenEffect

_NORM_NAMES = (
    "model.norm",
    "transformer.ln_f",
    "model.final_layernorm",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
)


def unembedding(model) -> tuple[Tensor, Tensor | None]:
    """(``W_U: [vocab, d_model]``, final norm weight ``[d_model]`` or None) of an HF causal LM."""
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise ValueError(f"{type(model).__name__} has no output embedding; logit effects need an LM head")
    weight = None
    for name in _NORM_NAMES:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        weight = getattr(module, "weight", None)
        break
    return head.weight.detach(), None if weight is None else weight.detach()


def vocabulary(tokenizer, size: int) -> list[str]:
    """Display string of every token id (``decode([id])``; ids past the tokenizer's end are "")."""
    n = min(size, len(tokenizer))
    tokens = tokenizer.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    return tokens + [""] * (size - n)


@torch.no_grad()
def logit_effects(
    decoder: Tensor, w_u: Tensor, norm_weight: Tensor | None, vocab: list[str], top: int = 10, chunk: int = 256
):
    """Yield ``(promoted, suppressed)`` TokenEffect lists per decoder row, in row order.

    ``decoder: [n, d_model]``; processed ``chunk`` rows at a time, so memory is ``chunk x vocab``."""
    w_u = w_u.float()
    k = min(top, w_u.shape[0])
    for start in range(0, decoder.shape[0], chunk):
        rows = decoder[start : start + chunk].float().to(w_u.device)
        if norm_weight is not None:
            rows = rows * norm_weight.float().to(w_u.device)
        logits = rows @ w_u.T  # [chunk, vocab]
        high, high_idx = logits.topk(k, dim=1)
        low, low_idx = logits.topk(k, dim=1, largest=False)
        for values, ids, lows, low_ids in zip(high.tolist(), high_idx.tolist(), low.tolist(), low_idx.tolist()):
            yield (
                [TokenEffect(token=vocab[i], token_id=i, value=round(v, 5)) for i, v in zip(ids, values)],
                [TokenEffect(token=vocab[i], token_id=i, value=round(v, 5)) for i, v in zip(low_ids, lows)],
            )
