"""Harvest the chat corpus while it is being written: one harvest shard per generation batch.

Generating a reply already runs the model over every token of the conversation, so the residual
stream at the SAE's hookpoint comes for free (``generate_batch(record=...)``); harvesting the finished
transcripts afterwards would run the first layers over ~2M tokens a second time (~50 min on 2 CPU
cores). The folder has the layout of ``harvest.py`` (manifest + ``shard_NNNNN.safetensors`` with
``acts``, ``token_ids``, ``seq_index`` = conversation id, ``position``), so the trainer reads it like
any other harvest. Shard ``b`` holds generation batch ``b``; it is written (atomically) before that
batch's transcripts, so a kill between the two only means the batch is generated again. Once every
shard exists, ``finish`` writes ``sequences.safetensors`` (each conversation's tokens, indexed by
conversation id), which the feature-database builder reads for example contexts.

Differences from harvesting the transcripts later, on purpose: sequences are whole conversations
(prompt cut at ``max_prompt_tokens``, reply up to ``max_new_tokens``) rather than 256-token windows,
and the last sampled token of a reply is never read by the model, so it has no residual.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from steerlab.activations.harvest import (
    HarvestError,
    _save_sequences,
    _write_json,
    count_harvest_massive,
    shard_path,
    write_shard,
)
from steerlab.generation.batch_generate import Generated
from steerlab.models.chat_template import chat_input_ids
from steerlab.models.hooks import resolve_hookpoint
from steerlab.models.loader import LoadedModel, parse_dtype


class ChatCapture:
    """Where and how a chat-generation run stores its residuals."""

    def __init__(
        self,
        lm: LoadedModel,
        out_dir: str | Path,
        layer: int | str,
        num_batches: int,
        generation: dict,
        store_dtype: str = "bfloat16",
        keep_id: Callable[[int], bool] | None = None,
        skip_first_position: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.hookpoint = resolve_hookpoint(lm.model, layer)
        self.store = parse_dtype(store_dtype)
        self.keep_id = keep_id or (lambda _id: True)
        self.skip_first = skip_first_position
        self.num_prompts = int(generation.get("prompts", 0))
        # Every conversation starts with the chat template's first token; its residual is skipped but the
        # token belongs in the example contexts.
        self.first_token = chat_input_ids(lm.tokenizer, [{"role": "user", "content": "x"}])[0]
        self.manifest = {
            "model": lm.name,
            "hookpoint": self.hookpoint,
            "store_dtype": store_dtype,
            "corpus": {"chat_generation": generation},
            "num_shards": num_batches,
            "skip_first_position": skip_first_position,
            "d_model": lm.d_model,
            "producer": "chat-generation",
        }
        path = self.out_dir / "manifest.json"
        if path.exists():
            old = json.loads(path.read_text())
            differs = [k for k in self.manifest if old.get(k) != self.manifest[k]]
            if differs:
                raise HarvestError(
                    f"{self.out_dir} holds a different harvest (differs in: {', '.join(differs)}); "
                    "use a new folder or delete this one"
                )
            self.manifest = old
        else:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            _write_json(path, {**self.manifest, "complete": False})

    def has(self, batch: int) -> bool:
        return shard_path(self.out_dir, batch).exists()

    def write(self, batch: int, conversation_ids: list[int], prompts: list[list[int]], results: list[Generated]) -> int:
        """Store one generation batch's residuals (kept conversations only); returns tokens stored."""
        acts, toks, seqs, poss = [], [], [], []
        start = int(self.skip_first)
        for cid, prompt, result in zip(conversation_ids, prompts, results):
            if not self.keep_id(cid) or result.activations is None:
                continue
            read = result.read_ids(prompt)
            n = len(read)
            acts.append(result.activations[start:].to(self.store))
            toks.append(torch.tensor(read[start:], dtype=torch.int32))
            seqs.append(torch.full((n - start,), cid, dtype=torch.int64))
            poss.append(torch.arange(start, n, dtype=torch.int32))
        d = int(self.manifest["d_model"])
        tensors = {
            "acts": torch.cat(acts) if acts else torch.zeros((0, d), dtype=self.store),
            "token_ids": torch.cat(toks) if toks else torch.zeros(0, dtype=torch.int32),
            "seq_index": torch.cat(seqs) if seqs else torch.zeros(0, dtype=torch.int64),
            "position": torch.cat(poss) if poss else torch.zeros(0, dtype=torch.int32),
        }
        write_shard(tensors, shard_path(self.out_dir, batch), self.hookpoint)
        return len(tensors["acts"])

    def finish(self) -> dict:
        """Once every batch has its shard: write ``sequences.safetensors`` (if missing) and mark the
        folder complete; returns the manifest. Rerunning the generation command on a finished run
        only does this step."""
        shards = [shard_path(self.out_dir, i) for i in range(self.manifest["num_shards"])]
        if not all(p.exists() for p in shards):
            return self.manifest
        sequences_file = self.out_dir / "sequences.safetensors"
        changed = False
        if not sequences_file.exists() or not self.manifest.get("complete"):
            sequences, total = self._sequences(shards)
            _save_sequences(sequences, sequences_file)
            self.manifest.update(complete=True, num_tokens=total, num_sequences=len(sequences))
            changed = True
        if count_harvest_massive(self.out_dir, self.manifest) or changed:
            _write_json(self.out_dir / "manifest.json", self.manifest)
        return self.manifest

    def _sequences(self, shards: list[Path]) -> tuple[list[list[int]], int]:
        """Each conversation's tokens by id (empty for held-out or never-generated ids), and the total
        number of harvested tokens."""
        from safetensors import safe_open

        by_id: dict[int, list[int]] = {}
        total = 0
        for path in shards:
            with safe_open(str(path), framework="pt") as f:
                seq, pos, tok = f.get_tensor("seq_index"), f.get_tensor("position"), f.get_tensor("token_ids")
            total += len(seq)
            order = torch.argsort(seq * (1 << 20) + pos.long())
            seq, tok = seq[order], tok[order]
            ids, counts = torch.unique_consecutive(seq, return_counts=True)
            for cid, part in zip(ids.tolist(), torch.split(tok, counts.tolist())):
                by_id[cid] = ([self.first_token] if self.skip_first else []) + part.tolist()
        size = max(self.num_prompts, max(by_id, default=-1) + 1)
        return [by_id.get(i, []) for i in range(size)], total
