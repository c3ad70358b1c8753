"""Stack per-row controller plans into padded tensors, and evaluate every row's conditions at once.

Rows may have different numbers of scopes, conditions and edited features: features are the union
over rows (a row that does not edit a column has the identity map ``a = 1, b = 0`` there), scope
slots are padded with scopes that never turn on, and all rows' condition leaves and AND/OR groups
are numbered into one node list evaluated level by level (leaves, then groups by height), so the
cost per forward is a few tensor ops regardless of how many rows or scopes there are. A classifier
condition (``ProbeLeaf``) is a leaf like the others whose value comes from the row's probe scores,
which ``SteeringBatch`` computes from its running pools.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from steerlab.steering.plan import ControllerPlan, Leaf, ProbeLeaf, Side

if TYPE_CHECKING:
    from steerlab.sae.base import SAE


class BatchTensors:
    def __init__(self, sae: SAE, plans: list[ControllerPlan]) -> None:
        self.device = sae.W_dec.device
        rows = len(plans)
        feats = sorted({f for p in plans for f in p.features})
        column = {f: c for c, f in enumerate(feats)}
        self.n_features = len(feats)
        self.features = torch.tensor(feats, dtype=torch.long, device=self.device)
        self.w_dec = sae.W_dec.detach()[self.features]  # [E, d_model]
        self.n_slots = max((len(p.scopes) for p in plans), default=0)
        self.needs_codes = any(p.needs_codes for p in plans)

        coefs = torch.zeros(rows, 1 + self.n_slots, 2, 2, len(feats))
        coefs[:, :, :, 0] = 1.0
        self.parent = torch.full((rows, self.n_slots), -1, dtype=torch.long)
        self.event_names: list[list[str | None]] = []
        for r, plan in enumerate(plans):
            cols = torch.tensor([column[f] for f in plan.features], dtype=torch.long)
            for layer, per_gate in enumerate(plan.coefs):
                for gate, (a, b) in enumerate(per_gate):
                    coefs[r, layer, gate, 0, cols] = torch.tensor(a)
                    coefs[r, layer, gate, 1, cols] = torch.tensor(b)
            for k, scope in enumerate(plan.scopes):
                self.parent[r, k] = scope.parent
            self.event_names.append([s.event_name for s in plan.scopes] + [None] * (self.n_slots - len(plan.scopes)))
        self.coefs = coefs.to(self.device, sae.W_dec.dtype)
        self.parent = self.parent.to(self.device)

        nan = float("nan")
        self.min_entropy = torch.tensor([nan if p.min_entropy is None else p.min_entropy for p in plans])
        self.max_entropy = torch.tensor([nan if p.max_entropy is None else p.max_entropy for p in plans])
        self.has_entropy_bounds = any(p.min_entropy is not None or p.max_entropy is not None for p in plans)
        self.has_probes = any(p.probes for p in plans)
        if self.n_slots:
            self._build_conditions(plans)

    # ------------------------------------------------------------------ conditions
    def _build_conditions(self, plans: list[ControllerPlan]) -> None:
        leaves = [(r, leaf) for r, p in enumerate(plans) for leaf in p.leaves]
        n_leaves = len(leaves)
        n_groups = sum(len(p.groups) for p in plans)
        false_node, true_node = n_leaves + n_groups, n_leaves + n_groups + 1
        self.n_nodes = n_leaves + n_groups + 2
        dev = self.device

        self.leaf_row = torch.tensor([r for r, _ in leaves], dtype=torch.long, device=dev)
        self.left = _pad_sides([leaf.left if isinstance(leaf, Leaf) else None for _, leaf in leaves], dev)
        right_sides = [
            leaf.right if isinstance(leaf, Leaf) and isinstance(leaf.right, Side) else None for _, leaf in leaves
        ]
        self.right = _pad_sides(right_sides, dev)
        self.right_is_feature = torch.tensor([s is not None for s in right_sides], dtype=torch.bool, device=dev)
        self.right_const = torch.tensor([_constant(leaf) for _, leaf in leaves], device=dev)
        self.op = torch.tensor([leaf.op for _, leaf in leaves], dtype=torch.long, device=dev)
        self.threshold = torch.tensor(
            [leaf.threshold if isinstance(leaf, Leaf) else 0.0 for _, leaf in leaves], device=dev
        )
        probe_leaves = [(i, r, leaf) for i, (r, leaf) in enumerate(leaves) if isinstance(leaf, ProbeLeaf)]
        self.probe_leaf_ids = torch.tensor([i for i, _, _ in probe_leaves], dtype=torch.long, device=dev)
        self.probe_leaf_source: list[tuple[int, int]] = [(r, leaf.probe) for _, r, leaf in probe_leaves]
        """Per probe leaf, in order: ``(row, index into that row's plan.probes)``."""

        by_height: dict[int, list[tuple[int, bool, list[int]]]] = defaultdict(list)
        root = torch.full((len(plans), self.n_slots), false_node, dtype=torch.long)
        leaf_off = group_off = 0
        for r, plan in enumerate(plans):

            def node(child: int, leaf_off: int = leaf_off, group_off: int = group_off) -> int:
                return leaf_off + child if child >= 0 else n_leaves + group_off + (-1 - child)

            for j, group in enumerate(plan.groups):
                by_height[group.height].append(
                    (n_leaves + group_off + j, group.join_and, [node(c) for c in group.children])
                )
            for k, scope in enumerate(plan.scopes):
                root[r, k] = n_leaves + group_off + scope.root
            leaf_off += len(plan.leaves)
            group_off += len(plan.groups)
        self.scope_root = root.to(dev)
        self.levels = []
        for height in sorted(by_height):
            groups = by_height[height]
            width = max(len(children) for _, _, children in groups)
            child = [c + [true_node if is_and else false_node] * (width - len(c)) for _, is_and, c in groups]
            self.levels.append(
                (
                    torch.tensor([g for g, _, _ in groups], dtype=torch.long, device=dev),
                    torch.tensor([a for _, a, _ in groups], dtype=torch.bool, device=dev),
                    torch.tensor(child, dtype=torch.long, device=dev),
                )
            )

    def _side_values(self, codes: torch.Tensor, side: dict) -> torch.Tensor:
        """[L, T]: each leaf's side read as its strongest member, in the sender's units."""
        raw = codes[self.leaf_row[:, None], :, side["index"]].float()  # [L, G, T]
        units = raw * side["inv_scale"][..., None]
        units = torch.where(units > self.threshold[:, None, None], units, torch.zeros_like(units))
        values = (units * side["strength"][..., None]).masked_fill(~side["mask"][..., None], -math.inf)
        return values.max(1).values

    def conditions(
        self, codes: torch.Tensor, valid: torch.Tensor, probe_scores: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Whether each row's scope slot's condition holds at each token, ``[R, S, T]``.
        ``probe_scores [n probe leaves, T]``: each classifier leaf's score per token (NaN: none yet)."""
        left = self._side_values(codes, self.left)
        right = self._side_values(codes, self.right)
        right = torch.where(self.right_is_feature[:, None], right, self.right_const[:, None])
        if len(self.probe_leaf_ids):
            if probe_scores is None:
                raise ValueError("these conditions read classifiers: pass their scores")
            left = left.index_copy(0, self.probe_leaf_ids, probe_scores.to(left.device, left.dtype))
        compared = torch.stack(
            [left > right, left < right, left >= right, left <= right, left == right, left != right]
        )  # [6, L, T]
        leaf_values = compared.gather(0, self.op[None, :, None].expand(1, *left.shape))[0]
        leaf_values = leaf_values & valid[self.leaf_row]
        if len(self.probe_leaf_ids):  # no score yet (skipped tokens): no classifier condition holds, != included
            assert probe_scores is not None
            scored = ~torch.isnan(probe_scores.to(leaf_values.device))
            leaf_values = leaf_values.index_copy(0, self.probe_leaf_ids, leaf_values[self.probe_leaf_ids] & scored)
        seq = valid.shape[1]
        nodes = torch.cat(
            [
                leaf_values,
                torch.zeros(self.n_nodes - len(leaf_values) - 1, seq, dtype=torch.bool, device=valid.device),
                torch.ones(1, seq, dtype=torch.bool, device=valid.device),
            ]
        )
        for group_ids, is_and, children in self.levels:
            values = nodes[children]  # [n, C, T]
            result = torch.where(is_and[:, None], values.all(1), values.any(1))
            nodes = nodes.index_copy(0, group_ids, result)
        return nodes[self.scope_root]


def _constant(leaf: Leaf | ProbeLeaf) -> float:
    """The number a leaf compares with (0 where it compares two feature groups)."""
    if isinstance(leaf, ProbeLeaf):
        return leaf.value
    return 0.0 if isinstance(leaf.right, Side) else leaf.right


def _pad_sides(sides: list[Side | None], device: torch.device) -> dict[str, Any]:
    """Pad sides to the widest; missing sides (a constant right-hand) are all padding."""
    width = max((len(s.indices) for s in sides if s is not None), default=1)
    index = torch.zeros(len(sides), width, dtype=torch.long)
    inv_scale = torch.zeros(len(sides), width)
    strength = torch.zeros(len(sides), width)
    mask = torch.zeros(len(sides), width, dtype=torch.bool)
    for i, s in enumerate(sides):
        if s is None:
            continue
        n = len(s.indices)
        index[i, :n] = torch.tensor(s.indices)
        inv_scale[i, :n] = torch.tensor(s.inv_scales)
        strength[i, :n] = torch.tensor(s.strengths)
        mask[i, :n] = True
    return {
        "index": index.to(device),
        "inv_scale": inv_scale.to(device),
        "strength": strength.to(device),
        "mask": mask.to(device),
    }
