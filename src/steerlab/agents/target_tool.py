"""Black-box access for the investigator: the tool ``sample_target`` asks the model under investigation (any
OpenAI-compatible endpoint, e.g. a ``steerlab serve --organism`` server) for greedy replies, so an agent can
compare them with the base model's (``generate``) and look for the features that explain the difference, as
the offline auditor does without an LLM (``auditor.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from steerlab.agents.auditor import Target
from steerlab.agents.mcp_server import call
from steerlab.agents.tools import MAX_PROMPTS, MAX_REPLY_TOKENS, MAX_TEXT_CHARS, check_int
from steerlab.errors import InvalidInputError


def sample_target(target: Target, prompts: list[str], max_tokens: int = 48) -> dict[str, Any]:
    """Greedy replies of ``target`` to each prompt (one user message each), bounded like the other tools."""
    if not isinstance(prompts, list) or not prompts:
        raise InvalidInputError("give at least one prompt", field="prompts", allowed=f"1..{MAX_PROMPTS} prompts")
    if len(prompts) > MAX_PROMPTS:
        raise InvalidInputError(f"{len(prompts)} prompts", field="prompts", allowed=f"1..{MAX_PROMPTS} prompts")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError("must be a non-empty text", field=f"prompts[{i}]")
    if sum(len(p) for p in prompts) > MAX_TEXT_CHARS:
        raise InvalidInputError("too long together", field="prompts", allowed=f"at most {MAX_TEXT_CHARS} characters")
    max_tokens = check_int(max_tokens, "max_tokens", 1, MAX_REPLY_TOKENS)
    replies = [{"prompt": p, "reply": target.reply(p, max_tokens)} for p in prompts]
    return {"model": target.model, "replies": replies}


def add_target_tool(server: MCPServer, target: Target) -> None:
    """Register ``sample_target`` on ``server`` (the investigator's tool set) for ``target``."""

    @server.tool(name="sample_target")
    def sample_target_tool(
        prompts: Annotated[list[str], Field(description=f"User messages to send, one reply each (1..{MAX_PROMPTS}).")],
        max_tokens: Annotated[int, Field(description=f"Tokens per reply (1..{MAX_REPLY_TOKENS}).")] = 48,
    ) -> dict[str, Any]:
        """Greedy replies of the model under investigation (the target endpoint, a black box) to each prompt.
        Compare them with `generate` (the base model) to find what was changed."""
        return call(sample_target, target, prompts, max_tokens)
