"""Process-wide settings, read from the environment (``STEERLAB_*``) so CLI, server and tests agree."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEERLAB_", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".cache" / "steerlab",
        description="Where converted models, corpora, activation shards and checkpoints live.",
    )
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1, ...")
    dtype: str = Field(default="float32", description="Model dtype: float32 or bfloat16.")

    # Feature labeling through any OpenAI-compatible chat endpoint (steerlab features label --backend openai).
    explainer_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint root incl. version, e.g. https://api.openai.com/v1."
    )
    explainer_model: str = Field(default="gpt-4o-mini", description="Chat model that writes and scores labels.")
    explainer_api_key: SecretStr | None = Field(default=None, description="Bearer key for the endpoint, if any.")
    explainer_timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    explainer_max_retries: int = Field(default=3, ge=0, description="Retries per request (exponential backoff).")
    explainer_concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


def get_settings() -> Settings:
    return Settings()
