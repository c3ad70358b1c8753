"""The SAE interface every variant shares: parameters, encode/decode, losses, save/load.

Shapes follow SAELens (``W_enc: [d_in, d_sae]``, ``W_dec: [d_sae, d_in]``) so weights move
between the two without transposes. The encoder reads ``x - b_dec`` (as in sparsify and
SAELens), decoder rows are kept at unit norm during training, and ``feature_scale`` records
each latent's typical strong activation so steering can speak in "1.0 = strong" units.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from steerlab.sae.config import SAEConfig
from steerlab.sae.kernels import SparseCodes
from steerlab.sae.quantiles import FeatureQuantiles
from steerlab.sae.storage import to_dtype


class SAEOutput(NamedTuple):
    """Everything one forward pass yields; the training loss is ``fvu + auxk_alpha *
    aux_loss + sparsity_loss``."""

    sae_out: Tensor  # [..., d_in] reconstruction
    latent_acts: Tensor | None  # [..., d_sae] dense codes (None if dense_latents=False)
    fvu: Tensor  # scalar: sum sq. error / total variance of x over the batch
    aux_loss: Tensor  # scalar: dead-latent auxiliary loss (TopK-style), unweighted; else 0
    l0: Tensor  # scalar: mean number of active latents per token
    sparsity_loss: Tensor  # scalar: weighted sparsity penalty (relu L1, jumprelu L0); else 0
    fired: Tensor  # [d_sae] bool: latents active on at least one token of this batch


class SAE(nn.Module):
    """Base sparse autoencoder; subclasses choose the activation (``encode``) and losses."""

    architecture: ClassVar[str] = ""
    W_enc: nn.Parameter
    b_enc: nn.Parameter
    W_dec: nn.Parameter
    b_dec: nn.Parameter
    feature_scale: Tensor

    def __init__(
        self,
        cfg: SAEConfig,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if cfg.architecture != self.architecture:
            raise ValueError(
                f"{type(self).__name__} is architecture {self.architecture!r}, cfg says {cfg.architecture!r}"
            )
        self.cfg = cfg
        kw = {"device": device, "dtype": to_dtype(cfg.dtype)}
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae, **kw))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in, **kw))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, **kw))
        self.register_buffer("feature_scale", torch.ones(cfg.d_sae, device=device))
        if torch.device(device or "cpu").type != "meta":
            self.reset_parameters(generator)

    # ----------------------------------------------------------------- init
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Unit-norm random decoder rows, encoder = decoder^T, zero biases (sparsify-style):
        every latent starts as a matched detector/writer of one random direction."""
        w = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=generator, dtype=torch.float32)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec.copy_(w)
        self.W_enc.copy_(w.t())
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.feature_scale.fill_(1.0)

    # ----------------------------------------------------------------- maps
    def pre_acts(self, x: Tensor, workspace: bool = False) -> Tensor:
        """[..., d_sae] encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``.

        ``workspace=True`` (training only; not thread-safe) writes into a buffer reused
        across calls: the matrix is [tokens, d_sae] and re-allocating it every step costs
        as much in page faults as the bias add itself.
        """
        x2 = x.reshape(-1, self.cfg.d_in).to(self.W_enc.dtype) - self.b_dec
        w_enc, b_enc = self.W_enc, self.b_enc
        if torch.is_autocast_enabled(x2.device.type):  # bf16 training: the one dense matmul in the autocast dtype
            low = torch.get_autocast_dtype(x2.device.type)  # (an out= buffer is never autocast by torch itself)
            x2, w_enc, b_enc = x2.to(low), w_enc.to(low), b_enc.to(low)
        out = None
        if workspace:
            n = x2.shape[0] * self.cfg.d_sae
            buf = self.__dict__.get("_workspace")
            if buf is None or buf.numel() < n or buf.device != x2.device or buf.dtype != x2.dtype:
                buf = torch.empty(n, device=x2.device, dtype=x2.dtype)
                self.__dict__["_workspace"] = buf
            out = buf[:n].view(x2.shape[0], self.cfg.d_sae)
        pre = torch.addmm(b_enc, x2, w_enc, out=out) if out is not None else torch.addmm(b_enc, x2, w_enc)
        return pre.reshape(*x.shape[:-1], self.cfg.d_sae)

    def train(self, mode: bool = True) -> SAE:
        if not mode:
            self.__dict__.pop("_workspace", None)  # give the training buffer back
        return super().train(mode)

    def encode(self, x: Tensor) -> Tensor:
        """[..., d_in] -> [..., d_sae] dense, non-negative codes (inference rule)."""
        raise NotImplementedError

    def decode(self, f: Tensor) -> Tensor:
        """[..., d_sae] -> [..., d_in]: ``f @ W_dec + b_dec``."""
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    @torch.no_grad()
    def sparse_encode(self, x: Tensor) -> SparseCodes:
        """Nonzero codes of ``x: [batch, d_in]`` (inference rule); variants override with a
        path that never builds the dense matrix."""
        f = self.encode(x.reshape(-1, self.cfg.d_in))
        rows, cols = f.nonzero(as_tuple=True)
        return SparseCodes.from_rows(f[rows, cols], rows, cols, f.shape[0], self.cfg.d_sae)

    def forward(self, x: Tensor, dead_mask: Tensor | None = None, *, dense_latents: bool = True) -> SAEOutput:
        """Encode, decode and compute the training losses for ``x: [..., d_in]``.

        ``dead_mask: [d_sae]`` marks latents considered dead (used by auxiliary losses).
        ``dense_latents=False`` lets sparse variants skip building [tokens, d_sae] codes.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- losses
    def _output(
        self,
        x: Tensor,
        recon: Tensor,
        *,
        codes: SparseCodes | None = None,
        dense: Tensor | None = None,
        aux_loss: Tensor | None = None,
        sparsity_loss: Tensor | None = None,
        dense_latents: bool = True,
        shape: torch.Size,
    ) -> SAEOutput:
        """Assemble an SAEOutput from a flat [tokens, d_in] batch and its codes."""
        fvu = self.fvu(x, recon)
        zero = recon.new_zeros((), dtype=torch.float32)
        if codes is not None:
            active = codes.values != 0
            fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
            fired[codes.cols[active]] = True
            l0 = active.sum().float() / max(codes.batch, 1)
            if dense is None and dense_latents:
                dense = codes.to_dense()
        else:
            assert dense is not None
            active = dense.detach() != 0
            fired = active.any(dim=0)
            l0 = active.sum(dim=-1).float().mean()
        latents = dense.reshape(*shape[:-1], self.cfg.d_sae) if dense is not None else None
        return SAEOutput(
            sae_out=recon.reshape(shape),
            latent_acts=latents,
            fvu=fvu,
            aux_loss=zero if aux_loss is None else aux_loss,
            l0=l0.detach(),
            sparsity_loss=zero if sparsity_loss is None else sparsity_loss,
            fired=fired,
        )

    @staticmethod
    def total_variance(x: Tensor) -> Tensor:
        """Sum of squared deviations of ``x: [tokens, d_in]`` from its batch mean."""
        x = x.float()
        return (x - x.mean(dim=0)).pow(2).sum().clamp_min(torch.finfo(torch.float32).tiny)

    @classmethod
    def fvu(cls, x: Tensor, recon: Tensor) -> Tensor:
        """Fraction of variance unexplained, scale-free so one loss fits every layer."""
        return (recon.float() - x.float()).pow(2).sum() / cls.total_variance(x)

    # ------------------------------------------------------ decoder constraint
    @torch.no_grad()
    def set_decoder_norm_to_unit(self) -> None:
        """Rescale decoder rows to unit norm: codes then measure how far along each direction
        a token goes, and the sparsity penalty cannot be dodged by shrinking codes."""
        norm = self.W_dec.norm(dim=1, keepdim=True)
        self.W_dec.div_(norm.clamp_min(torch.finfo(self.W_dec.dtype).eps))

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Project out the radial part of W_dec's gradient: it would only change norms that
        ``set_decoder_norm_to_unit`` undoes, and it distorts Adam's moment estimates."""
        if self.W_dec.grad is None:
            return
        grad, w = self.W_dec.grad, self.W_dec
        parallel = torch.linalg.vecdot(grad, w, dim=1).unsqueeze(1)
        grad.addcmul_(parallel, w, value=-1.0)

    @torch.no_grad()
    def constrain_parameters(self) -> None:
        """Called after every optimizer step: unit decoder rows (+ variant constraints)."""
        self.set_decoder_norm_to_unit()

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        """Make an SAE trained on ``x * scale`` read raw ``x`` with the same unit decoder.

        Codes scale by 1/scale and every variant's activation is positively homogeneous
        (thresholds scale too), so biases and thresholds divide by ``scale``; W_enc and
        W_dec are unchanged. Exact up to rounding.
        """
        self.b_enc.div_(scale)
        self.b_dec.div_(scale)

    @torch.no_grad()
    def calibrate(self, acts: Iterable[Tensor]) -> None:
        """Set inference-time statistics from held-out [batch, d_in] activations (after
        training). Most variants have none; BatchTopK estimates its threshold here."""

    # ---------------------------------------------------------- feature scale
    @torch.no_grad()
    def compute_feature_scale(
        self, acts: Iterable[Tensor], quantile: float = 0.99, max_tokens: int | None = None
    ) -> Tensor:
        """Set ``feature_scale`` to each latent's ``quantile`` of its nonzero activations
        over ``acts`` (an iterable of [batch, d_in] tensors), in bounded memory.
        Latents that never fire keep 1.0. Returns the new ``feature_scale``."""
        stats = FeatureQuantiles(self.cfg.d_sae, device=self.feature_scale.device)
        seen = 0
        for batch in acts:
            batch = batch.reshape(-1, self.cfg.d_in).to(self.W_enc.device)
            if max_tokens is not None:
                batch = batch[: max_tokens - seen]
            codes = self.sparse_encode(batch)
            stats.update(codes.values, codes.cols)
            seen += batch.shape[0]
            if max_tokens is not None and seen >= max_tokens:
                break
        self.feature_scale.copy_(stats.quantile(quantile, default=1.0))
        return self.feature_scale

    # -------------------------------------------------------------- save/load
    def save(self, path: str | Path, dtype: str | torch.dtype | None = None) -> Path:
        """Write ``cfg.json`` + ``sae.safetensors`` to folder ``path`` atomically.
        ``dtype="bfloat16"`` halves the file; ``load`` upcasts to the config's dtype."""
        from steerlab.sae.steerlab_format import save_steerlab

        return save_steerlab(self, path, dtype=dtype)

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> SAE:
        """Load an SAE folder in our format or SAELens's (detected from the file names), in
        eval mode."""
        from steerlab.sae.steerlab_format import load_any

        sae = load_any(path, device=device, dtype=dtype)
        if not isinstance(sae, cls):
            raise TypeError(f"{path} holds a {type(sae).__name__}, not a {cls.__name__}")
        return sae

    def extra_repr(self) -> str:
        c = self.cfg
        return f"architecture={c.architecture!r}, d_in={c.d_in}, d_sae={c.d_sae}, hookpoint={c.hookpoint!r}"
