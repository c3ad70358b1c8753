"""Server settings (``STEERLAB_*`` environment variables or ``steerlab serve`` options)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from steerlab.settings import get_settings


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEERLAB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    open_mode: bool = Field(False, description="No API keys needed (local use only; logged loudly at start).")
    db_path: Path | None = Field(
        None, description="Server database (keys, saved variants); default $STEERLAB_HOME/server.db."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty = same-origin only."
    )
    requests_per_minute: int = Field(600, ge=1, description="Per API key.")
    tokens_per_minute: int = Field(200_000, ge=1, description="Per API key: prompt + completion tokens.")
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_messages: int = Field(256, ge=1)
    max_prompt_tokens: int = Field(4096, ge=1)
    max_completion_tokens: int = Field(1024, ge=1)
    max_dataset_conversations: int = Field(512, ge=1)
    max_batch: int = Field(32, ge=1, description="Sequences decoded together by the engine.")
    max_queue: int = Field(512, ge=1, description="Waiting requests before 503 + Retry-After.")
    worker_threads: int = Field(
        256,
        ge=8,
        le=4096,
        description="Threads for synchronous routes. Requests that need the model "
        "(inspect, attribution) wait for it on these threads; with fewer "
        "threads than such waiters, a millisecond search waits behind them.",
    )
    autosteer_concurrency: int = Field(
        1, ge=1, description="AutoSteer/AutoConditional searches run at once; one more gets 503 + Retry-After."
    )
    autosteer_effort: Literal["quick", "thorough"] = Field(
        "quick", description="quick fits the goodfire SDK's 60 s timeout on a CPU; thorough tries twice the edits."
    )

    def resolved_db_path(self) -> Path:
        return self.db_path or get_settings().home / "server.db"
