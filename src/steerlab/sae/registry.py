"""Architecture name -> SAE class, so configs and files can name the variant they need.

Variants register themselves with ``@register("name")`` when ``steerlab.sae.variants`` is
imported; lookups import it first, so callers never depend on import order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from steerlab.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from steerlab.sae.base import SAE
    from steerlab.sae.config import SAEConfig

_REGISTRY: dict[str, type[SAE]] = {}
T = TypeVar("T", bound="type[SAE]")


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` the SAE class for architecture ``name``."""

    def decorator(cls: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"architecture {name!r} is already registered to {existing.__name__}")
        cls.architecture = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _ensure_loaded() -> None:
    import steerlab.sae.variants  # noqa: F401  (registers the built-in variants)


def list_architectures() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_sae_class(name: str) -> type[SAE]:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(f"unknown SAE architecture {name!r}", allowed=", ".join(sorted(_REGISTRY))) from None


def create_sae(
    cfg: SAEConfig, *, device: str | torch.device | None = None, generator: torch.Generator | None = None
) -> SAE:
    """A freshly initialized SAE of ``cfg.architecture``."""
    return get_sae_class(cfg.architecture)(cfg, device=device, generator=generator)
