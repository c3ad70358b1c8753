"""The agent tools (``agents.tools``) as an MCP server (the official ``mcp`` SDK's ``MCPServer``).

Argument schemas come from the type hints below; a ``SteerlabError`` (bad input, naming the argument)
becomes a tool error the agent reads (``is_error`` with ``"field: message"``), anything else is the SDK's
generic tool failure. The tools are synchronous: the SDK runs each in a worker thread, and the lab
serialises model access itself (engine queue, ``Lab.run_exclusive``).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from steerlab.agents.tools import MAX_TOP_K, LabTools
from steerlab.errors import SteerlabError

T = TypeVar("T")

INSTRUCTIONS = (
    "Interpretability tools over one language model and its sparse autoencoder (SAE). Features are SAE "
    "latents named by index. Find candidates with search_features (by label) or inspect (what fires on a "
    "conversation), read one with get_feature, test a hypothesis causally with generate (steer features and "
    "compare with the unsteered reply), and keep findings with research_log_append."
)


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Edit(BaseModel):
    index: int = Field(description="Feature index in the SAE.")
    value: float = Field(description="Strength: nudge adds it (try 0.3-1.0), pin sets it, mul multiplies.")
    mode: Literal["nudge", "pin", "mul"] = "nudge"


Messages = Annotated[list[Message] | None, Field(description="A conversation; give this or text, not both.")]
Text = Annotated[str | None, Field(description="One user message; give this or messages, not both.")]
TopK = Annotated[int, Field(description=f"How many features to return (1..{MAX_TOP_K}).")]


@contextmanager
def tool_errors() -> Iterator[None]:
    """A steerlab error (bad input the agent can fix) as an MCP tool error with the same text."""
    try:
        yield
    except SteerlabError as err:
        raise ToolError(str(err)) from err


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with tool_errors():
        return fn(*args, **kwargs)


def build_server(tools: LabTools, name: str = "steerlab") -> MCPServer:
    """An MCP server exposing ``tools``."""
    server = MCPServer(name, instructions=INSTRUCTIONS)

    @server.tool()
    def search_features(
        query: Annotated[str, Field(description="What the feature should be about, in words.")],
        top_k: TopK = 10,
    ) -> dict[str, Any]:
        """Search features by their labels (meaning and words), best match first. Needs a feature database."""
        return call(tools.search_features, query, top_k)

    @server.tool()
    def get_feature(
        index: Annotated[int, Field(description="Feature index in the SAE.")],
        examples: Annotated[int, Field(description="Top activating examples to show (0..20).")] = 3,
        neighbours: Annotated[int, Field(description="Nearest features by decoder cosine (0..100).")] = 5,
        tokens: Annotated[int, Field(description="Tokens per logit-effect list (0..50).")] = 8,
    ) -> dict[str, Any]:
        """One feature: label, activation statistics, top examples (strongest token in [[...]]), the tokens
        its decoder direction promotes and suppresses, and its nearest neighbours."""
        return call(tools.get_feature, index, examples, neighbours, tokens)

    @server.tool()
    def inspect(messages: Messages = None, text: Text = None, top_k: TopK = 10) -> dict[str, Any]:
        """The features most active over a conversation: tokens each fired on and its peak activation."""
        return call(tools.inspect, dump(messages), text, top_k)

    @server.tool()
    def generate(
        messages: Messages = None,
        text: Text = None,
        edits: Annotated[list[Edit] | None, Field(description="Feature edits to steer with.")] = None,
        variant: Annotated[
            dict[str, Any] | None, Field(description="An Ember controller (variant.controller.json()) to steer with.")
        ] = None,
        max_tokens: Annotated[int, Field(description="Tokens per reply (1..512).")] = 48,
        compare: Annotated[bool, Field(description="Also generate the unsteered reply.")] = True,
    ) -> dict[str, Any]:
        """Greedy replies to the conversation: steered by edits/variant and, with compare, unsteered beside it."""
        return call(tools.generate, dump(messages), text, dump(edits), variant, max_tokens, compare)

    @server.tool()
    def research_log_append(
        note: Annotated[str, Field(description="A finding, hypothesis or plan, with the evidence behind it.")],
    ) -> dict[str, Any]:
        """Add a note to this session's research log (kept on disk across restarts)."""
        return call(tools.research_log_append, note)

    @server.tool()
    def research_log_read() -> dict[str, Any]:
        """This session's research log, oldest note first."""
        return call(tools.research_log_read)

    return server


def dump(models: list[BaseModel] | None) -> list[dict] | None:
    return None if models is None else [m.model_dump() for m in models]
