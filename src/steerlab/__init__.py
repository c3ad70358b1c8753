"""steerlab: a self-hosted interpretability lab for language models.

``steerlab.Client``, ``steerlab.Variant`` and friends are imported on first use, so ``import
steerlab`` stays cheap (no torch) for the CLI and for tools that only need the version.
"""

__version__ = "0.1.0"

_LAZY = {
    "Client": "steerlab.client",
    "FeatureEdits": "steerlab.client",
    "Feature": "steerlab.client_types",
    "Variant": "steerlab.steering.variant",
    "FeatureGroup": "steerlab.steering.refs",
    "InferenceAborted": "steerlab.steering.errors",
    "SteerlabError": "steerlab.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steerlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
