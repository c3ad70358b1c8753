"""Continuous batching: many requests, each with its own steering, share every decode step.

One background thread owns the model. Each loop it admits waiting requests (prefilled together,
left-padded, at most ``prefill_tokens`` rows x padded width per forward, their KV caches joined to
the batch: on a CPU a forward costs about the same for one prompt as for ten, since reading the
weights dominates), runs one decode step for every active sequence, and pushes each new token to
its stream. A finished or cancelled sequence leaves the batch at once, so a slow request never
holds back the others, and no sequence waits for the longest one to finish.

Steering is per row: the hook at the SAE's hookpoint applies each sequence's own editor to its own
row only, so two researchers in one batch never see each other's edits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import DynamicCache

from steerlab.engine import kv_cache
from steerlab.engine.sequence import RowEditor, SequenceState
from steerlab.engine.stream import Stream, TokenEvent
from steerlab.errors import BusyError, InvalidInputError
from steerlab.generation.sampler import SamplingParams
from steerlab.models.hooks import BlockOutput, output_hidden, replace_output_hidden

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from steerlab.engine.fast_decode import FastDecoder

log = logging.getLogger("steerlab.engine")


class EngineBusy(BusyError):
    """The waiting queue is full; try again after ``retry_after`` seconds (the server answers 503)."""

    code = "engine_busy"

    def __init__(self, waiting: int, retry_after: int = 2) -> None:
        super().__init__(f"server busy: {waiting} requests already waiting; retry after {retry_after} s", retry_after)


class Engine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        hookpoint: str | None,
        stop_token_ids: set[int],
        max_batch: int = 32,
        max_queue: int = 512,
        prefill_tokens: int = 4096,
        outsider_share: float = 0.5,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.prefill_tokens = prefill_tokens
        """Rows x padded width of one admission forward (bounds its attention memory); a prompt
        longer than this is still admitted, alone."""
        self.threads = torch.get_num_threads()
        """Intra-op threads of the engine thread, fixed at start (see ``steerlab.torch_threads``)."""
        pad = tokenizer.pad_token_id if tokenizer is not None else None  # int or None (typed loosely by transformers)
        self.pad_token_id: int = pad if isinstance(pad, int) else 0
        self.stop_token_ids = set(stop_token_ids)
        self.max_batch, self.max_queue = max_batch, max_queue
        self.max_positions = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.device = next(model.parameters()).device
        self._waiting: deque[SequenceState] = deque()
        self._active: list[SequenceState] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._row_editors: list[RowEditor | None] = []
        self._row_starts: list[int] | None = None
        """During a padded prefill: where each row's real tokens start (editors never see padding)."""
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._hook = model.get_submodule(hookpoint).register_forward_hook(self._steer) if hookpoint else None
        self._fast = _fast_decoder(model)
        self.steps = 0
        self.prefill_forwards = 0
        self.lock = threading.RLock()
        """Held for every engine step; other users of the model (inspect, attribution, ...) take it
        through ``outside()``, which also makes the engine wait its turn for them."""
        self._outsiders_waiting = 0
        self._outsiders_served = 0
        if not 0 < outsider_share <= 1:
            raise InvalidInputError(f"must be in (0, 1], got {outsider_share}", field="outsider_share")
        self._credit_per_second = (1 - outsider_share) / outsider_share
        """Seconds of steps the engine is owed per second an outsider held the model while it had work."""
        self._engine_credit = 0.0
        """While positive and the engine has work, outsiders wait: the engine steps on (time-sharing)."""

    # ----- public API -------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active_count(self) -> int:
        return len(self._active)

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        editor: RowEditor | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Stream:
        """Queue a generation; events arrive on the returned stream (async when ``loop`` is given)."""
        params.validate()
        if not prompt_ids:
            raise InvalidInputError("the prompt is empty", field="messages")
        if len(prompt_ids) + params.max_new_tokens > self.max_positions:
            raise InvalidInputError(
                f"prompt ({len(prompt_ids)} tokens) + max_new_tokens "
                f"({params.max_new_tokens}) exceeds the model's context of {self.max_positions}",
                field="messages",
            )
        stream = Stream(loop)
        stream.prompt_tokens = len(prompt_ids)
        seq = SequenceState(list(prompt_ids), params, stream, editor, self.stop_token_ids)
        with self._wake:
            if self._closed:
                raise RuntimeError("engine is closed")
            if len(self._waiting) >= self.max_queue:
                raise EngineBusy(len(self._waiting))
            self._waiting.append(seq)
            self._ensure_thread()
            self._wake.notify()
        return stream

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Hold the model for work outside the engine (an inspection, an attribution).

        Python locks are not fair: nothing stops a busy engine thread from re-taking ``lock`` straight
        after each step, nor an outsider from re-taking it straight after its own hold. So turns are
        explicit, both ways. After its steps the engine lets one waiting outsider run before its next
        step, a bound on every outsider's wait. And the time an outsider held the model while the engine
        had work is owed back: until the engine has stepped for that long (times
        ``(1 - outsider_share) / outsider_share``) or has nothing left to do, outsiders wait. A long
        analysis that holds the model one chunk at a time (``models.chunked``) therefore takes about
        ``outsider_share`` of the model's time while others decode, never all of it.
        """
        with self._wake:
            self._outsiders_waiting += 1
            try:
                while not (self._outsiders_may_go() and self.lock.acquire(blocking=False)):
                    self._wake.wait(timeout=0.05)
            except BaseException:
                self._outsiders_waiting -= 1
                raise
        started = time.perf_counter()
        try:
            yield
        finally:
            held = time.perf_counter() - started
            self.lock.release()
            with self._wake:
                self._outsiders_waiting -= 1
                self._outsiders_served += 1
                if self._has_work():
                    self._engine_credit = max(self._engine_credit, held * self._credit_per_second)
                self._wake.notify_all()

    def _has_work(self) -> bool:
        return bool(self._active or self._waiting)

    def _outsiders_may_go(self) -> bool:
        """(``_wake`` held) Not while the engine is owed time and has work to spend it on."""
        return self._closed or self._engine_credit <= 0 or not self._has_work()

    def _stepped(self, seconds: float) -> None:
        """After one loop of the engine: spend its credit, wake outsiders that wait for their turn."""
        with self._wake:
            self._engine_credit = max(0.0, self._engine_credit - seconds) if self._has_work() else 0.0
            self._wake.notify_all()

    def _yield_to_outsiders(self) -> None:
        with self._wake:
            if self._engine_credit > 0 and self._has_work():
                return  # still owed time: step on
            served = self._outsiders_served
            while self._outsiders_waiting and self._outsiders_served == served and not self._closed:
                self._wake.wait(timeout=1.0)

    def generate(
        self, prompt_ids: list[int], params: SamplingParams, editor: RowEditor | None = None
    ) -> tuple[str, str | None, list[str]]:
        """Blocking convenience: (text, finish_reason, events)."""
        return self.submit(prompt_ids, params, editor).text()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._hook is not None:
            self._hook.remove()

    # ----- the loop ---------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="steerlab-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._active:
                    self._wake.wait()
                if self._closed:
                    self._fail_all("engine closed")
                    return
            started = time.perf_counter()
            try:
                with self.lock, torch.inference_mode():
                    started = time.perf_counter()  # the step's own time, not its wait for an outsider
                    self._admit()
                    if self._active:
                        self._decode()
            except Exception as err:  # never let one bad step kill the server's engine
                log.exception("engine step failed")
                self._fail_all(f"generation failed: {err}")
            self._stepped(time.perf_counter() - started)
            self._yield_to_outsiders()

    def _admit(self) -> None:
        while len(self._active) < self.max_batch:
            group = self._take_group()
            if not group:
                return
            self._prefill_or_fail(group)

    def _prefill_or_fail(self, group: list[SequenceState]) -> None:
        """Prefill ``group``; when that raises, retry its sequences one by one so only the one at fault
        fails. A failed sequence left the queue without joining the batch: it gets an error event here,
        or its caller would wait forever. Had part of the group joined, the batch is suspect: re-raise."""
        try:
            self._prefill(group)
        except Exception as err:
            if any(seq is running for seq in group for running in self._active):
                raise
            if len(group) > 1:
                for seq in group:
                    self._prefill_or_fail([seq])
                return
            log.exception("prefill failed")
            group[0].stream.push(TokenEvent("", None, 0, "error", error=f"generation failed: {err}"))

    def _take_group(self) -> list[SequenceState]:
        """The next waiting sequences (FIFO) that fit the batch and the prefill budget; at least one."""
        group, cancelled, width = [], [], 0
        with self._wake:
            while self._waiting and len(self._active) + len(group) < self.max_batch:
                seq = self._waiting[0]
                if seq.stream.cancelled.is_set():
                    cancelled.append(self._waiting.popleft())
                    continue
                wider = max(width, len(seq.prompt_ids))
                if group and wider * (len(group) + 1) > self.prefill_tokens:
                    break
                group.append(self._waiting.popleft())
                width = wider
        for seq in cancelled:
            seq.stream.push(TokenEvent("", None, 0, "cancelled"))
        return group

    def _prefill(self, group: list[SequenceState]) -> None:
        width = max(len(s.prompt_ids) for s in group)
        ids = torch.full((len(group), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, seq in enumerate(group):  # left padding: every row's last prompt token is at the end
            ids[row, width - len(seq.prompt_ids) :] = torch.tensor(seq.prompt_ids)
            mask[row, width - len(seq.prompt_ids) :] = 1
        extra = {}
        if len(group) > 1:
            extra = {
                "attention_mask": mask.to(self.device),
                "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(self.device),
            }
        cache = DynamicCache()
        self._row_editors = [s.editor for s in group]
        self._row_starts = [width - len(s.prompt_ids) for s in group]
        try:
            out = self.model(input_ids=ids.to(self.device), cache=cache, use_cache=True, logits_to_keep=1, **extra)
        finally:
            self._row_starts = None
        self.prefill_forwards += 1
        logits = out.logits[:, -1].float().cpu()
        keep = [row for row, seq in enumerate(group) if not seq.step(logits[row], self.tokenizer)]
        if not keep:
            return
        mask = mask.to(self.device)
        if len(keep) < len(group):
            cache, mask = kv_cache.select(cache, mask, torch.tensor(keep, device=self.device))
        self._cache, self._mask = kv_cache.join(self._cache, self._mask, cache, mask)
        self._active.extend(group[row] for row in keep)

    def _decode(self) -> None:
        rows = self._active
        assert self._cache is not None and self._mask is not None  # the active rows' (set when the first was admitted)
        ids = torch.tensor([[s.generated[-1]] for s in rows], device=self.device)
        positions = torch.tensor([[s.length - 1] for s in rows], device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        self._row_editors = [s.editor for s in rows]
        if self._fast is not None and self._fast.usable():
            logits = self._fast.step(ids, mask, positions, self._cache)
        else:
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, cache=self._cache, use_cache=True
            ).logits[:, -1]
        self._mask = mask
        self.steps += 1
        logits = logits.float().cpu()
        argmax = logits.argmax(-1).tolist()  # one call for every greedy row (~0.1 ms each on its own)
        keep = [i for i, s in enumerate(rows) if not s.step(logits[i], self.tokenizer, argmax[i])]
        if len(keep) < len(rows):
            self._active = [rows[i] for i in keep]
            if keep:
                index = torch.tensor(keep, device=self.device)
                self._cache, self._mask = kv_cache.select(self._cache, self._mask, index)
            else:
                self._cache, self._mask = None, None

    def _steer(self, _module: nn.Module, _inputs: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        """Forward hook: each row gets its own sequence's editor (rows without one are untouched)."""
        editors = self._row_editors
        if threading.current_thread() is not self._thread or not any(e is not None for e in editors):
            return None  # another user's forward (analysis, tests): not ours to steer
        hidden = output_hidden(output)
        edited = hidden.clone()
        starts = self._row_starts
        for row, editor in enumerate(editors):
            if editor is not None:
                start = starts[row] if starts else 0
                edited[row : row + 1, start:] = editor(hidden[row : row + 1, start:])
        return replace_output_hidden(output, edited)

    def _fail_all(self, message: str) -> None:
        for seq in self._active:
            seq.stream.push(TokenEvent("", None, len(seq.generated), "error", error=message))
        self._active, self._cache, self._mask = [], None, None
        with self._wake:
            waiting, self._waiting = list(self._waiting), deque()
        for seq in waiting:
            seq.stream.push(TokenEvent("", None, 0, "error", error=message))


def _fast_decoder(model: nn.Module) -> FastDecoder | None:
    """The engine's decode loop (``fast_decode.py``) when the model's architecture allows, else None."""
    from steerlab.engine.fast_decode import FastDecoder

    if not FastDecoder.supports(model):
        reason = FastDecoder.unsupported_reason(model)
        if reason is not None:  # said once per engine (at its start), never per step
            log.info("fast decode unavailable (%s); decoding with the model's forward", reason)
        return None
    try:
        return FastDecoder(model)
    except (AttributeError, ValueError) as err:  # a Llama-like model laid out differently: transformers' forward
        log.info("fast decode unavailable (%s); decoding with the model's forward", err)
        return None


def wait_idle(engine: Engine, timeout: float = 30.0) -> None:
    """Test helper semantics for callers that must know the batch drained (e.g. benchmarks)."""
    deadline = time.monotonic() + timeout
    while (engine.active_count or engine.queue_depth) and time.monotonic() < deadline:
        time.sleep(0.01)
