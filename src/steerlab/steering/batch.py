"""Run compiled controllers inside the residual hook: one batch, a different controller per row.

``SteeringBatch(sae, plans)`` is an editor for ``edit_residual``: called on the hookpoint's hidden
state ``[rows, seq, d_model]`` it (1) encodes it with the SAE, (2) evaluates every row's conditions
at every token, (3) turns scopes on from the first token where their condition holds (sticky, per
row, carried across calls so a KV-cached decode continues where the prefill stopped), and (4) adds
``(target - current) @ W_dec`` for the edited features only, so the SAE's reconstruction error
never reaches the model. Conditions read the codes before any edit at that token; a classifier
condition reads its probe's score over the row's tokens so far (``steering.probes``: a running pool
per row and probe, kept in the row's state).

Per-row state lives in ``SteeringState`` objects, so a continuous batcher can ``select`` rows that
remain, ``concat`` new ones, and every row keeps its own scopes and events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from steerlab.steering.batch_tensors import BatchTensors
from steerlab.steering.edits import FeatureEdit
from steerlab.steering.plan import ControllerPlan, compile_edits
from steerlab.steering.probes import ProbePool, PromptSpan

if TYPE_CHECKING:
    from steerlab.sae.base import SAE


@dataclass
class SteeringState:
    """What one sequence has accumulated: which scopes are on, whether nudges are paused, events."""

    active: list[bool]
    nudges_on: bool = True
    events: list[tuple[str, int]] = field(default_factory=list)
    """``(event_name, position)`` not yet drained; position counts tokens seen by this row."""
    seen: int = 0
    pools: list[ProbePool] = field(default_factory=list)
    """One running pool per classifier the plan's conditions read (``plan.probes``)."""
    span: PromptSpan | None = None
    """Where the row's classifier conditions read its prompt (``RowSteering.read_prompt``); None: every
    token from the template's prefix on, scored as it arrives."""

    @classmethod
    def initial(cls, plan: ControllerPlan) -> SteeringState:
        return cls([s.starts_active for s in plan.scopes], pools=[ProbePool() for _ in plan.probes])


class SteeringBatch:
    def __init__(
        self, sae: SAE, plans: list[ControllerPlan], states: list[SteeringState] | None = None, capture: bool = False
    ) -> None:
        self.sae, self.plans = sae, list(plans)
        self.states = list(states) if states is not None else [SteeringState.initial(p) for p in self.plans]
        if len(self.states) != len(self.plans):
            raise ValueError("states: need one per plan")
        self.capture = capture
        self.valid: torch.Tensor | None = None
        """``[rows, seq]`` real-token mask used by the hook call when rows are padded (set per forward)."""
        self.last_codes: torch.Tensor | None = None
        """With ``capture``: the codes after edits, ``[rows, seq, d_sae]`` raw units, of the last call."""
        self.t = BatchTensors(sae, self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    # ----------------------------------------------------------------- batch bookkeeping
    def select(self, rows: list[int]) -> SteeringBatch:
        """The rows that remain (their states are shared, not copied)."""
        return SteeringBatch(self.sae, [self.plans[r] for r in rows], [self.states[r] for r in rows], self.capture)

    @staticmethod
    def concat(batches: list[SteeringBatch]) -> SteeringBatch:
        first = batches[0]
        return SteeringBatch(
            first.sae, [p for b in batches for p in b.plans], [s for b in batches for s in b.states], first.capture
        )

    def drain_events(self) -> list[list[tuple[str, int]]]:
        """Per row, the events fired since the last drain: ``(name, position)``."""
        out = []
        for state in self.states:
            out.append(state.events)
            state.events = []
        return out

    @torch.no_grad()
    def observe_logits(self, logits: torch.Tensor) -> None:
        """Entropy guard: after sampling from ``logits [rows, vocab]``, pause or resume each row's
        nudges for the next token (only rows whose controller sets entropy bounds)."""
        t = self.t
        if not t.has_entropy_bounds:
            return
        logp = torch.log_softmax(logits.float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).cpu()
        ok = (entropy >= t.min_entropy.nan_to_num(float("-inf"))) & (entropy <= t.max_entropy.nan_to_num(float("inf")))
        for state, on in zip(self.states, ok.tolist()):
            state.nudges_on = on

    # ---------------------------------------------------------------------- the edit
    def __call__(self, hidden: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return hidden + self.delta(hidden, self.valid if valid is None else valid).to(hidden.dtype)

    @torch.no_grad()
    def delta(self, hidden: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """What to add to ``hidden [rows, seq, d_model]``; ``valid [rows, seq]`` marks real tokens
        (padding neither triggers conditions nor gets edited)."""
        rows, seq, _ = hidden.shape
        if rows != len(self.plans):
            raise ValueError(f"hidden has {rows} rows but the steering batch has {len(self.plans)}")
        t = self.t
        if valid is None:
            valid = torch.ones(rows, seq, dtype=torch.bool, device=hidden.device)
        valid = valid.to(hidden.device, torch.bool)
        gate = torch.tensor([s.nudges_on for s in self.states], device=t.device)
        coefs = torch.where(gate[:, None, None, None], t.coefs[:, :, 0], t.coefs[:, :, 1])  # [R, 1+S, 2, E]
        if self.capture or t.needs_codes:
            codes = self.sae.encode(hidden.to(self.sae.W_enc.dtype))  # [R, T, d_sae]
            active = self._scopes(codes, valid, hidden)  # [R, S, T]
            current = codes[..., t.features]  # [R, T, E]
            target = coefs[:, 0, 0, None, :] * current + coefs[:, 0, 1, None, :]
            for k in range(t.n_slots):
                on = active[:, k, :, None]
                target = torch.where(on, coefs[:, k + 1, 0, None, :] * target + coefs[:, k + 1, 1, None, :], target)
            change = (target - current) * valid[..., None]
            if self.capture:
                self.last_codes = codes.clone()
                self.last_codes[..., t.features] = current + change
        else:  # only unconditional nudges: a constant shift per row
            change = coefs[:, 0, 1, None, :].expand(rows, seq, -1) * valid[..., None]
        for state, n in zip(self.states, valid.sum(-1).tolist()):
            state.seen += int(n)
        if not t.n_features:
            return torch.zeros_like(hidden, dtype=self.sae.W_dec.dtype)
        return change @ t.w_dec

    def probe_scores(self, hidden: torch.Tensor, codes: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        """Per row, each of its classifiers' scores after each token, ``[P_r, T]`` (NaN at padding and
        before the first pooled token); advances the rows' running pools."""
        out = []
        for r, (plan, state) in enumerate(zip(self.plans, self.states)):
            scores = torch.full((len(plan.probes), valid.shape[1]), float("nan"), device=codes.device)
            keep = valid[r]
            for p, probe in enumerate(plan.probes):
                x = probe.inputs(hidden[r][keep], codes[r][keep])
                scores[p, keep] = state.pools[p].update(probe, x, state.span).to(codes.device)
            out.append(scores)
        return out

    def _scopes(self, codes: torch.Tensor, valid: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Which scope slots are on at each token, ``[R, S, T]``; updates states and events."""
        t = self.t
        rows, seq = valid.shape
        if not t.n_slots:
            return torch.zeros(rows, 0, seq, dtype=torch.bool, device=codes.device)
        leaf_scores = None
        if t.has_probes:
            per_row = self.probe_scores(hidden, codes, valid)
            leaf_scores = torch.stack([per_row[r][p] for r, p in t.probe_leaf_source]) if t.probe_leaf_source else None
        cond = t.conditions(codes, valid, leaf_scores)  # [R, S, T]
        prior = torch.tensor(
            [s.active + [False] * (t.n_slots - len(s.active)) for s in self.states], device=codes.device
        )
        slots: list[torch.Tensor] = []
        for k in range(t.n_slots):
            parent = t.parent[:, k]
            if k:
                stacked = torch.stack(slots, 1)  # [R, k, T]
                parent_on = stacked.gather(1, parent.clamp(min=0)[:, None, None].expand(-1, 1, seq))[:, 0]
                parent_on = parent_on | (parent < 0)[:, None]
            else:
                parent_on = torch.ones(rows, seq, dtype=torch.bool, device=codes.device)
            trigger = cond[:, k] & parent_on
            slots.append(prior[:, k, None] | (trigger.cumsum(-1) > 0))
            self._record_events(k, prior[:, k], trigger, valid)
        active = torch.stack(slots, 1)
        final = active[:, :, -1].tolist()
        for state, row in zip(self.states, final):
            state.active = row[: len(state.active)]
        return active

    def _record_events(self, slot: int, prior: torch.Tensor, trigger: torch.Tensor, valid: torch.Tensor) -> None:
        names = self.t.event_names
        fired = (~prior & trigger.any(-1)).tolist()
        if not any(fired):
            return
        first = trigger.int().argmax(-1).tolist()
        before = (valid.cumsum(-1) - 1).tolist()  # position among this row's real tokens
        for r, did in enumerate(fired):
            name = names[r][slot] if did else None
            if name is not None:
                self.states[r].events.append((name, self.states[r].seen + before[r][first[r]]))


class RowSteering:
    """One sequence's steering as a per-row editor for the engine: callable on ``[1, seq, d_model]``,
    with ``drain_events() -> list[str]`` and ``aborted`` (an event in ``abort_events``, or of a scope
    marked ``abort``, fired)."""

    def __init__(self, sae: SAE, plan: ControllerPlan, abort_events: frozenset[str] | set[str] = frozenset()) -> None:
        self.batch = SteeringBatch(sae, [plan])
        self.abort_events = frozenset(abort_events) | plan.abort_events
        self.aborted = False

    @classmethod
    def for_edits(cls, sae: SAE, edits: Sequence[FeatureEdit]) -> RowSteering:
        """Plain feature edits (error-preserving, at every position) as a per-row editor."""
        return cls(sae, compile_edits(edits, sae))

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.batch(hidden)

    def read_prompt(self, span: PromptSpan | None) -> None:
        """Where this sequence's classifier conditions read its prompt (before its first token)."""
        self.batch.states[0].span = span

    @property
    def span(self) -> PromptSpan | None:
        return self.batch.states[0].span

    def drain_events(self) -> list[str]:
        names = [name for name, _ in self.batch.drain_events()[0]]
        self.aborted = self.aborted or any(n in self.abort_events for n in names)
        return names

    def observe_logits(self, logits: torch.Tensor) -> None:
        self.batch.observe_logits(logits.reshape(1, -1))
