"""Search by example (Neuronpedia's search-by-inference): the features a pasted text wakes more than usual.

The text is read as plain text (no chat template, like the corpus texts the database was built from) up to
the SAE's hookpoint, a chunk at a time when long (``hold`` frees the model between chunks), and each feature's
max activation over its tokens (the first excepted, as in the database) is scored against the feature's own
statistics (``features/specificity.py``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from steerlab.features.search import check_example_text
from steerlab.features.specificity import CorpusStats, reason, specificity
from steerlab.models.chat_template import token_strings
from steerlab.models.chunked import Hold, forward_chunks
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import check_context

FIRST_POSITION = 1
"""Position 0 is an attention sink with outsized activations; the database's statistics never saw it (the build
skips it, ``build_sources.py``), so neither does the comparison (unless the text is a single token)."""


@dataclass
class ExampleHit:
    index: int
    score: float
    """Specificity (``features/specificity.py``): -log10 of the corpus fraction of tokens this active."""
    act_raw: float
    """The feature's max activation on the text."""
    token: str
    """The token it peaked on."""
    position: int
    reason: str


@torch.no_grad()
def text_max_codes(lm, sae, text: str, *, chunk_tokens: int | None = None, hold: Hold = nullcontext):
    """``(max activation [d_sae], argmax position [d_sae], token strings)`` of a plain text."""
    text = check_example_text(text)
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        from steerlab.errors import InvalidInputError

        raise InvalidInputError("gives no tokens", field="text")
    check_context(lm.model, len(ids), "text")
    input_ids = torch.tensor([ids], device=lm.device)
    hookpoint = sae.cfg.hookpoint
    if chunk_tokens is None or chunk_tokens >= len(ids):
        with hold():
            hidden = [forward_to_hookpoint(lm.model, input_ids, hookpoint)]
            pieces = [sae.encode(h.to(sae.W_enc.dtype))[0].float() for h in hidden]
    else:
        pieces = [
            sae.encode(h.to(sae.W_enc.dtype))[0].float()
            for h in forward_chunks(lm.model, input_ids, chunk_tokens, hookpoint, hold)
        ]
    codes = torch.cat(pieces)  # [T, d_sae]
    first = FIRST_POSITION if len(ids) > FIRST_POSITION else 0
    best, where = codes[first:].max(0)
    return best.cpu().numpy(), (where + first).cpu().numpy(), token_strings(lm.tokenizer, ids)


def search_by_example(
    lm,
    sae,
    text: str,
    stats: CorpusStats,
    top_k: int = 10,
    *,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
) -> list[ExampleHit]:
    """The ``top_k`` features whose activation on ``text`` is most unusual for them, best first."""
    best, where, tokens = text_max_codes(lm, sae, text, chunk_tokens=chunk_tokens, hold=hold)
    if stats.d_sae != len(best):
        from steerlab.errors import InvalidInputError

        raise InvalidInputError(
            f"the database's statistics cover {stats.d_sae} features, the SAE has {len(best)}", field="db"
        )
    score = specificity(torch.from_numpy(best), stats).numpy()
    order = np.argsort(-score, kind="stable")[:top_k]
    return [
        ExampleHit(
            index=int(i),
            score=float(score[i]),
            act_raw=float(best[i]),
            token=tokens[int(where[i])],
            position=int(where[i]),
            reason=reason(float(score[i])),
        )
        for i in order
        if score[i] > 0
    ]
