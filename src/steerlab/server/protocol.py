"""Request bodies shared by the Ember and OpenAI chat routes (pydantic: validation names the field)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from steerlab.generation.sampler import SamplingParams


def check_text(value: str) -> str:
    """Refuse text no tokenizer or database can take: NUL characters and unpaired UTF-16 surrogates
    (JSON's ``"\\ud800"`` decodes to a lone surrogate, which UTF-8 cannot encode). Refused, not repaired:
    a silently changed prompt would give a reply to something the client never sent."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"holds an unpaired UTF-16 surrogate at character {err.start} ({value[err.start]!a}); "
            "send text as valid Unicode"
        ) from None
    return value


Text = Annotated[str, AfterValidator(check_text)]
"""A request string that is valid Unicode without NULs (the 400 names the field)."""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatRequest(BaseModel):
    """OpenAI's chat body plus Ember's ``controller``; ``variant_id`` picks a saved variant instead."""

    model_config = ConfigDict(extra="ignore")
    messages: list[Message] = Field(min_length=1)
    model: Text | None = None
    stream: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="OpenAI's older name for max_completion_tokens.")
    temperature: float = Field(0.6, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    controller: dict | None = None
    variant_id: Text | None = Field(None, max_length=64)

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
