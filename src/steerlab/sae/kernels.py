"""Sparse encode/decode ops for training SAEs whose codes have few nonzeros per token.

A TopK SAE with k=64 of 16k latents touches <0.5% of the code matrix, yet the obvious
implementation (dense topk mask, ``codes @ W_dec``, autograd through both matmuls) pays for
the full [batch, d_sae] matrix four more times after the encoder: decode, its two gradients
and the encoder-weight gradient. Here only the encoder's forward matmul is dense; everything
after it costs O(nnz * d_in):

* ``select_preacts`` reads the chosen pre-activations and, in backward, scatters their
  gradients straight into W_enc / b_enc / b_dec through a sparse (CSR) product;
* ``sparse_decode`` is ``embedding_bag`` with per-sample weights, whose fused CPU/GPU kernels
  compute the decoder and code gradients without materializing [nnz, d_in].

Both take codes as flat COO triples sorted by row (``SparseCodes``), which covers TopK
(k per row) and BatchTopK (a variable number per row) alike.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

# CSR tensors are "beta" in PyTorch and warn once per process; the ops used here are stable.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


class SparseCodes(NamedTuple):
    """Nonzero codes of a batch as COO triples, sorted by row (token)."""

    values: Tensor  # [nnz]
    rows: Tensor  # [nnz] int64, token index within the batch, non-decreasing
    cols: Tensor  # [nnz] int64, latent index
    offsets: Tensor  # [batch] start of each token's run (embedding_bag's ``offsets``)
    batch: int

    @classmethod
    def from_rows(cls, values: Tensor, rows: Tensor, cols: Tensor, batch: int) -> SparseCodes:
        counts = torch.bincount(rows, minlength=batch)
        return cls(values, rows, cols, torch.cumsum(counts, 0) - counts, batch)

    @classmethod
    def from_topk(cls, values: Tensor, idx: Tensor) -> SparseCodes:
        """From [batch, k] values and latent indices (k codes per token)."""
        batch, k = idx.shape
        device = idx.device
        rows = torch.arange(batch, device=device).repeat_interleave(k)
        offsets = torch.arange(0, batch * k, k, device=device)
        return cls(values.reshape(-1), rows, idx.reshape(-1), offsets, batch)

    def to_dense(self, d_sae: int) -> Tensor:
        """[batch, d_sae] dense codes."""
        dense = self.values.new_zeros(self.batch, d_sae)
        dense[self.rows, self.cols] = self.values
        return dense


def _csr(rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """CSR matrix from COO triples whose ``rows`` are already sorted."""
    counts = torch.bincount(rows, minlength=shape[0])
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return torch.sparse_csr_tensor(crow, cols, values, shape)


def _csr_transposed(rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """CSR of the transpose ([shape[1], shape[0]]) of the COO matrix (rows, cols, values)."""
    order = torch.argsort(cols)
    return _csr(cols[order], rows[order], values[order], (shape[1], shape[0]))


class _SelectPreacts(torch.autograd.Function):
    """values = ((x - b_dec) @ W_enc + b_enc)[rows, cols], read from precomputed pre-acts.

    The pre-activation matrix is computed outside autograd; backward never builds the dense
    [batch, d_sae] gradient. With G the sparse gradient of the pre-activations:
    dW_enc = x_c^T G, db_enc = colsum(G), db_dec = -W_enc colsum(G), dx = G W_enc^T.
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, pre, rows, cols):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x, W_enc, b_dec, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, W_enc, b_dec, rows, cols = ctx.saved_tensors
        need_x, need_W, need_benc, need_bdec = ctx.needs_input_grad[:4]
        grad = grad.to(W_enc.dtype).contiguous()
        batch, d_sae = x.shape[0], W_enc.shape[1]
        grad_x = grad_W = grad_benc = grad_bdec = None
        if need_W:
            x_c = (x - b_dec).to(W_enc.dtype)
            grad_W = (_csr_transposed(rows, cols, grad, (batch, d_sae)) @ x_c).t()
        if need_benc or need_bdec:
            col_sum = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device)
            col_sum.index_add_(0, cols, grad)
            grad_benc = col_sum if need_benc else None
            grad_bdec = -(W_enc @ col_sum) if need_bdec else None
        if need_x:
            grad_x = (_csr(rows, cols, grad, (batch, d_sae)) @ W_enc.t().contiguous()).to(x.dtype)
        return grad_x, grad_W, grad_benc, grad_bdec, None, None, None


def select_preacts(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, pre: Tensor, rows: Tensor, cols: Tensor
) -> Tensor:
    """[nnz] pre-activations at (rows, cols), differentiable w.r.t. x and the encoder.

    ``pre`` must equal ``(x - b_dec) @ W_enc + b_enc`` (computed without grad by the caller,
    who also needs it to choose the indices).
    """
    return _SelectPreacts.apply(x, W_enc, b_enc, b_dec, pre.detach(), rows, cols)


def sparse_decode(codes: SparseCodes, W_dec: Tensor) -> Tensor:
    """[batch, d_in] = dense(codes) @ W_dec, without the dense matrix (no bias added)."""
    return torch.nn.functional.embedding_bag(
        codes.cols,
        W_dec,
        codes.offsets,
        mode="sum",
        per_sample_weights=codes.values.to(W_dec.dtype),
    )
