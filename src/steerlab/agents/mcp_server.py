"""The agent tools (``agents.tools``) as an MCP server (the official ``mcp`` SDK's ``MCPServer``).

Argument schemas come from the type hints below; a ``SteerlabError`` (bad input, naming the argument)
becomes a tool error the agent reads (``is_error`` with ``"field: message"``), anything else is the SDK's
generic tool failure. The tools are synchronous: the SDK runs each in a worker thread, and the lab
serialises model access itself (engine queue, ``Lab.run_exclusive``).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from steerlab.agents.tools import MAX_PROMPTS, MAX_TOP_K, LabTools
from steerlab.errors import SteerlabError

T = TypeVar("T")

INSTRUCTIONS = (
    "Interpretability tools over one language model and its sparse autoencoder (SAE). Features are SAE "
    "latents named by index. Find candidates with search_features (by label) or inspect (what fires on a "
    "conversation) or contrast (what separates two datasets), read one with get_feature, look for it in the "
    "build corpus with search_corpus, test a hypothesis causally with generate (steer and compare with the "
    "unsteered reply) or ablate (pin a feature to 0 or amplify it and measure the change on prompts), find what "
    "drives a token with attribute, let autosteer find nudges for a goal, save a variant with steer, score "
    "texts with classify, and keep findings with research_log_append."
)


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Edit(BaseModel):
    index: int = Field(description="Feature index in the SAE.")
    value: float = Field(
        description="Strength in steering units, Ember's range: nudge adds it (0.5-1.0 visibly steers, about 1.0 the "
        "concept takes over), pin sets the activation to that many units, mul multiplies."
    )
    mode: Literal["nudge", "pin", "mul"] = "nudge"


Messages = Annotated[list[Message] | None, Field(description="A conversation; give this or text, not both.")]
Text = Annotated[str | None, Field(description="One user message; give this or messages, not both.")]
TopK = Annotated[int, Field(description=f"How many features to return (1..{MAX_TOP_K}).")]
Edits = Annotated[list[Edit] | None, Field(description="Feature edits to steer with.")]
Variant = Annotated[
    dict[str, Any] | None, Field(description="An Ember controller (variant.controller.json()) to steer with.")
]
Dataset = Annotated[
    list[str | list[Message]],
    Field(description="Conversations: each a text (one user message) or a list of messages."),
]
RankBy = Annotated[
    Literal["relevance", "specificity", "frequency"] | None,
    Field(
        description="Ranking: relevance (the default with a feature database: separates the sides and is about what "
        "the favoured side says), specificity (separates them, however topical) or frequency (mean activations, "
        "the old ranking and the only one without a database). Omit for the default."
    ),
]
ToolsFor = Callable[[Context], LabTools]


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


def build_server(tools: LabTools | ToolsFor, name: str = "steerlab") -> MCPServer:
    """An MCP server exposing ``tools``, or the tools ``tools(ctx)`` picks for each call (the server's mount:
    the calling key's own research log, saved variants and quotas)."""
    server = MCPServer(name, instructions=INSTRUCTIONS)
    pick: ToolsFor = tools if callable(tools) and not isinstance(tools, LabTools) else (lambda _ctx: tools)

    @server.tool()
    def search_features(
        ctx: Context,
        query: Annotated[str, Field(description="What the feature should be about, in words.")],
        top_k: TopK = 10,
    ) -> dict[str, Any]:
        """Search features by their labels (meaning and words), the candidates re-scored by what their strongest
        contexts are about when the database has context vectors; best match first. Needs a feature database."""
        return call(lambda: pick(ctx).search_features(query, top_k))

    @server.tool()
    def get_feature(
        ctx: Context,
        index: Annotated[int, Field(description="Feature index in the SAE.")],
        examples: Annotated[int, Field(description="Top activating examples to show (0..20).")] = 3,
        neighbours: Annotated[int, Field(description="Nearest features by decoder cosine (0..100).")] = 5,
        tokens: Annotated[int, Field(description="Tokens per logit-effect list (0..50).")] = 8,
    ) -> dict[str, Any]:
        """One feature: label, activation statistics, top examples (strongest token in [[...]]), the tokens
        its decoder direction promotes and suppresses, and its nearest neighbours."""
        return call(lambda: pick(ctx).get_feature(index, examples, neighbours, tokens))

    @server.tool()
    def inspect(ctx: Context, messages: Messages = None, text: Text = None, top_k: TopK = 10) -> dict[str, Any]:
        """The features most specific to what a conversation is about, ranked as inspect ranks by default
        (relevance with a feature database, named in ranked_by; the chat template left out): tokens each fired
        on notably and its peak activation."""
        return call(lambda: pick(ctx).inspect(dump(messages), text, top_k))

    @server.tool()
    def contrast(
        ctx: Context, dataset_1: Dataset, dataset_2: Dataset, top_k: TopK = 10, rank_by: RankBy = None
    ) -> dict[str, Any]:
        """Features that separate dataset_1 from dataset_2, most distinguishing first on each side, ranked as the
        native contrast ranks (ranked_by names it; note says when the data is thin). Under relevance or specificity
        effect is the difference of the sides' mean pooled specificity with its 90% interval (effect_low,
        effect_high) and support the favoured side's share of conversations it fires in; under frequency, the
        rank-biserial correlation. Positive effect: more active in dataset_1; mean activations and firing rates
        per side."""
        return call(lambda: pick(ctx).contrast(dump_dataset(dataset_1), dump_dataset(dataset_2), top_k, rank_by))

    @server.tool()
    def generate(
        ctx: Context,
        messages: Messages = None,
        text: Text = None,
        edits: Edits = None,
        variant: Variant = None,
        max_tokens: Annotated[int, Field(description="Tokens per reply (1..512).")] = 48,
        compare: Annotated[bool, Field(description="Also generate the unsteered reply.")] = True,
    ) -> dict[str, Any]:
        """Greedy replies to the conversation: steered by edits/variant and, with compare, unsteered beside it."""
        return call(lambda: pick(ctx).generate(dump(messages), text, dump(edits), variant, max_tokens, compare))

    @server.tool()
    def steer(
        ctx: Context,
        name: Annotated[str, Field(description="Name to save the variant under (1-100 characters).")],
        edits: Edits = None,
        variant: Variant = None,
        save: Annotated[bool, Field(description="Store it (else only build and check it).")] = True,
    ) -> dict[str, Any]:
        """Build a variant (Ember controller JSON) from feature edits and/or a controller, checked against this
        SAE, and save it; pass the returned controller to generate as variant."""
        return call(lambda: pick(ctx).steer(name, dump(edits), variant, save))

    @server.tool()
    def ablate(
        ctx: Context,
        index: Annotated[int, Field(description="Feature index in the SAE.")],
        prompts: Annotated[
            list[str], Field(description=f"User prompts to measure on (1..{MAX_PROMPTS}).", max_length=MAX_PROMPTS)
        ],
        mode: Annotated[
            Literal["ablate", "amplify", "nudge"],
            Field(description="ablate: pin to 0; amplify: multiply by value; nudge: add value."),
        ] = "ablate",
        value: Annotated[float | None, Field(description="amplify factor (default 4) or nudge (default 0.5).")] = None,
        max_tokens: Annotated[int, Field(description="Tokens per reply (1..256).")] = 24,
    ) -> dict[str, Any]:
        """Edit one feature and measure the effect on each prompt: unsteered and steered greedy replies, the
        unsteered reply's log-probability change under the edit, and the mean KL divergence (nats) of the
        next-token distributions along it, plus the first-token probabilities that moved most."""
        return call(lambda: pick(ctx).ablate(index, prompts, mode, value, max_tokens))

    @server.tool()
    def attribute(
        ctx: Context,
        messages: Messages = None,
        text: Text = None,
        position: Annotated[
            int, Field(description="Token position to explain (negative counts from the end; -1: last token).")
        ] = -1,
        top_k: TopK = 10,
    ) -> dict[str, Any]:
        """Which features (at which earlier tokens) drive the logit of one token of the conversation
        (gradient x activation, in logit units): per feature summed over positions, and the top pairs."""
        return call(lambda: pick(ctx).attribute(dump(messages), text, position, top_k))

    @server.tool()
    def autosteer(
        ctx: Context,
        goal: Annotated[str, Field(description="What the model should do, e.g. 'talk like a pirate'.")],
        effort: Annotated[
            Literal["quick", "thorough"], Field(description="quick: about half the generation work.")
        ] = "quick",
    ) -> dict[str, Any]:
        """AutoSteer: search feature nudges that make the model pursue the goal while staying fluent (tens of
        seconds); returns the edits with labels, scores, example replies and the controller."""
        return call(lambda: pick(ctx).autosteer(goal, effort))

    @server.tool()
    def search_corpus(
        ctx: Context,
        query: Annotated[str, Field(description="Words or a topic to look for.")],
        by: Annotated[
            Literal["words", "meaning"],
            Field(description="words: bm25 over the text; meaning: where the features about the query fire."),
        ] = "words",
        top_k: Annotated[int, Field(description="Passages to return (1..50).")] = 5,
    ) -> dict[str, Any]:
        """Passages of the corpus the feature database was built from (the text features were read on)."""
        return call(lambda: pick(ctx).search_corpus(query, by, top_k))

    @server.tool()
    def classify(
        ctx: Context,
        name: Annotated[str, Field(description="Classifier name (steerlab classify list).")],
        texts: Annotated[list[str], Field(description="Texts to score (1..64).", max_length=64)],
        top: Annotated[int, Field(description="Features reported per text (0..20).")] = 3,
    ) -> dict[str, Any]:
        """Score texts with a trained SAE-feature classifier: probability, flagged, and the features behind it."""
        return call(lambda: pick(ctx).classify(name, texts, top))

    @server.tool()
    def research_log_append(
        ctx: Context,
        note: Annotated[str, Field(description="A finding, hypothesis or plan, with the evidence behind it.")],
    ) -> dict[str, Any]:
        """Add a note to this session's research log (kept on disk across restarts)."""
        return call(lambda: pick(ctx).research_log_append(note))

    @server.tool()
    def research_log_read(ctx: Context) -> dict[str, Any]:
        """This session's research log, oldest note first."""
        return call(lambda: pick(ctx).research_log_read())

    return server


def dump(models: list[BaseModel] | None) -> list[dict] | None:
    return None if models is None else [m.model_dump() for m in models]


def dump_dataset(items: list) -> list:
    return [item if isinstance(item, str) else dump(item) for item in items]
