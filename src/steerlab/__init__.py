"""steerlab: a self-hosted interpretability lab for language models."""

__version__ = "0.1.0"
