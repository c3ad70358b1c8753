"""Explainers (feature -> short noun-phrase label): an LLM backend and an offline one, same interface."""

from steerlab.features.explain.base import Explainer, clean_label
from steerlab.features.explain.llm import ChatClient, LLMConfig
from steerlab.features.explain.offline import OfflineConfig, OfflineExplainer
from steerlab.features.explain.openai_explainer import OpenAIExplainer

__all__ = [
    "ChatClient",
    "Explainer",
    "LLMConfig",
    "OfflineConfig",
    "OfflineExplainer",
    "OpenAIExplainer",
    "clean_label",
]
