"""Turn user prompts into chat transcripts whose assistant turns the model writes itself.

Batched (``generate_batch``: one KV cache, finished rows leave the batch), seeded per batch so a
resumed run writes exactly what an uninterrupted one would, and appended to JSONL after every batch
so a kill loses one batch at most. With a ``ChatCapture`` the residual stream of every conversation
is stored as a harvest shard per batch at the same time (see ``chat_capture.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from steerlab.activations.chat_capture import ChatCapture
from steerlab.generation.batch_generate import BatchSampling, generate_batch
from steerlab.models.chat_template import stop_token_ids
from steerlab.models.loader import LoadedModel


@dataclass
class ChatGenerationConfig:
    batch_size: int = 64
    """Prompts decoded together; larger batches use the CPU's matmul units better."""
    max_new_tokens: int = 192
    """Cap on each assistant reply."""
    max_prompt_tokens: int = 512
    """Longer user turns are cut (from the end) to this many tokens."""
    temperature: float = 0.6
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    """Small models loop without it."""
    seed: int = 0


def read_transcripts(path: Path) -> list[dict]:
    """Every transcript of a finished ``generate_replies`` file."""
    # split("\n"), not splitlines(): replies hold U+2028, U+0085 ... raw (ensure_ascii=False), which
    # splitlines() also breaks on, tearing a JSON line in two
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def done_ids(path: Path) -> set[int]:
    """Ids already written; a torn last line (killed mid-write) is ignored and later overwritten."""
    ids: set[int] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): see read_transcripts
            try:
                ids.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                continue
    return ids


def _truncate_torn_tail(path: Path) -> None:
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


@torch.inference_mode()
def generate_replies(
    lm: LoadedModel,
    prompts: list[dict],
    out_path: Path,
    cfg: ChatGenerationConfig = ChatGenerationConfig(),
    progress: bool = True,
    capture: ChatCapture | None = None,
) -> int:
    """Append one transcript per prompt ({'id','source','messages','finish_reason'}) to ``out_path``.

    Returns the number of transcripts written by this call; already-written ids are skipped. A batch is
    always generated whole (same prompts, same seed), so a resumed run writes what an uninterrupted one
    would; with ``capture``, a batch whose transcripts exist but whose shard does not is generated again
    for its residuals only.
    """
    tok = lm.tokenizer
    sampling = BatchSampling(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        repetition_penalty=cfg.repetition_penalty,
    )
    stops = stop_token_ids(tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _truncate_torn_tail(out_path)
    finished = done_ids(out_path)
    batches = [prompts[i : i + cfg.batch_size] for i in range(0, len(prompts), cfg.batch_size)]
    todo = [
        (b, batch)
        for b, batch in enumerate(batches)
        if any(p["id"] not in finished for p in batch) or (capture is not None and not capture.has(b))
    ]
    written = 0
    bar = tqdm(
        total=len(prompts),
        initial=sum(p["id"] in finished for p in prompts),
        desc="chat replies",
        unit="conv",
        disable=not progress,
    )
    record_at = capture.hookpoint if capture is not None else None
    with out_path.open("a", encoding="utf-8") as out:
        for b, batch in todo:
            texts, templated = [], []
            for p in batch:
                ids = tok(p["prompt"], add_special_tokens=False)["input_ids"][: cfg.max_prompt_tokens]
                user = tok.decode(ids)
                texts.append(user)
                templated.append(
                    tok.apply_chat_template(
                        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
                    )
                )
            prompt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in templated]
            results = generate_batch(
                lm.model, prompt_ids, sampling, stops, pad_id, seed=cfg.seed * 1_000_003 + b, record=record_at
            )
            if capture is not None:
                capture.write(b, [p["id"] for p in batch], prompt_ids, results)
            for p, user, result in zip(batch, texts, results):
                if p["id"] in finished:
                    continue
                reply = tok.decode(result.token_ids, skip_special_tokens=True).strip()
                record = {
                    "id": p["id"],
                    "source": p["source"],
                    "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
                    "finish_reason": result.finish_reason,
                    "generation": asdict(cfg),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            new = sum(p["id"] not in finished for p in batch)
            written += new
            bar.update(new)
    bar.close()
    if capture is not None:
        capture.finish()
    return written
