"""Request bodies shared by the Ember and OpenAI chat routes (pydantic: validation names the field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from steerlab.generation.sampler import SamplingParams


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """OpenAI's chat body plus Ember's ``controller``; ``variant_id`` picks a saved variant instead."""

    model_config = ConfigDict(extra="ignore")
    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="OpenAI's older name for max_completion_tokens.")
    temperature: float = Field(0.6, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    controller: dict | None = None
    variant_id: str | None = Field(None, max_length=64)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 8 or any(len(s) > 64 for s in stops):
            raise ValueError("at most 8 stop strings of at most 64 characters")
        return stops

    def sampling(self, default_max: int) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_completion_tokens or self.max_tokens or default_max,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=[s for s in (self.stop or []) if s],
        )
