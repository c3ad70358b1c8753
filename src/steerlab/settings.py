"""Process-wide settings, read from the environment (``STEERLAB_*``) so CLI, server and tests agree."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEERLAB_", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".cache" / "steerlab",
        description="Where converted models, corpora, activation shards and checkpoints live.",
    )
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1, ...")
    dtype: str = Field(default="float32", description="Model dtype: float32 or bfloat16.")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


def get_settings() -> Settings:
    return Settings()
