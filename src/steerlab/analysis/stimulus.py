"""Contrastive stimulus: a plain-language goal -> two datasets of conversations, with and without it.

How they are made (no outside model needed):

1. **Templated prompts.** Everyday user requests from ``STIMULUS_PROMPTS`` (or yours), neutral on
   purpose so the only systematic difference between the datasets is the goal.
2. **The model's own replies**, generated twice per prompt in one batched pass: under a system prompt
   that asks for the goal (``goal_system_prompt``) -> dataset_1, and under the same system prompt
   with a neutral instruction in its place -> dataset_2. Each conversation keeps the system prompt
   it was generated under, so the datasets differ both in the instruction and in the behaviour it
   caused; a small model that follows the instruction only loosely still yields a usable contrast
   (the instruction's features), and what it does follow shows up in the replies.
3. **Topic templates** (``topic_conversations``): user messages that merely mention a topic, against
   the same templates about neutral topics; AutoSteer and AutoConditional use them to find features
   that read the goal's (or trigger's) own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from steerlab.analysis.autosteer_generate import Reply, Row, generate_rows
from steerlab.errors import InvalidInputError

STIMULUS_PROMPTS = (
    "Tell me about your weekend plans.",
    "How do I make a good cup of tea?",
    "What should I know before adopting a dog?",
    "Describe a walk through a city park.",
    "Give me three tips for a job interview.",
    "Why do leaves change colour in autumn?",
    "What is a good way to start learning to cook?",
    "Write a short note thanking a friend for dinner.",
    "How does a bicycle work?",
    "What do you like about the sea?",
    "Explain how to plant tomatoes.",
    "Suggest a name for a new coffee shop.",
)
PROMPT_TOKENS = 64
"""Tokens a short generated conversation's prompt is counted at in token estimates (chat template, an
optional system prompt and a one-line question: ~30-60 on the default tokenizer)."""


def stimulus_token_estimate(n: int = 6, max_new_tokens: int = 32) -> int:
    """Tokens ``generate_contrastive_stimulus(n=n, max_new_tokens=max_new_tokens)`` runs through the model
    at most: two datasets of ``n`` replies, each a prompt and its new tokens (what a server charges)."""
    return 2 * n * (PROMPT_TOKENS + max_new_tokens)


NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."
PLAIN_INSTRUCTION = "answer as you normally would"
_IMPERATIVES = {
    "act",
    "add",
    "always",
    "answer",
    "avoid",
    "be",
    "behave",
    "describe",
    "discuss",
    "do",
    "don't",
    "end",
    "express",
    "focus",
    "include",
    "make",
    "mention",
    "never",
    "pretend",
    "reply",
    "respond",
    "say",
    "show",
    "sound",
    "speak",
    "start",
    "stop",
    "talk",
    "tell",
    "use",
    "write",
    "sing",
    "rhyme",
    "praise",
    "complain",
    "refuse",
    "shout",
    "whisper",
    "swear",
    "joke",
    "emphasize",
    "emphasise",
}


def goal_instruction(goal: str) -> str:
    """The goal as an imperative: kept if it already is one ("talk like a pirate"), else framed as a
    topic ("pirates" -> "talk about pirates")."""
    goal = goal.strip().rstrip(".!")
    if not goal:
        raise InvalidInputError("must be a non-empty goal, e.g. 'talk like a pirate'", field="specification")
    first = re.split(r"\W+", goal.lower(), maxsplit=1)[0]
    return goal if first in _IMPERATIVES else f"talk about {goal}"


def goal_system_prompt(goal: str | None) -> str:
    """The system prompt asking for the goal; ``None`` gives the matched neutral one (same words
    around it, so the two datasets differ only where the goal is)."""
    instruction = PLAIN_INSTRUCTION if goal is None else goal_instruction(goal)
    return f"{NEUTRAL_SYSTEM_PROMPT} In every reply, {instruction}."


TOPIC_TEMPLATES = (
    "Tell me about {}.",
    "What do you think of {}?",
    "I have a question about {}.",
    "Can you explain {} to me?",
    "Let's talk about {}.",
    "Why do people care about {}?",
)
NEUTRAL_TOPICS = ("the weather", "my weekend", "a good book", "the bus timetable", "my new chair", "lunch")
SPARE_NEUTRAL_TOPICS = ("the traffic", "my phone", "the garden", "a film I saw", "my neighbour", "the news")
"""With ``NEUTRAL_TOPICS``, the pool a topic's neutral side is drawn from when it must not talk about the topic
itself (``neutral_conversations(avoid=...)``): a trigger for "weather" contrasted with "Tell me about the weather"
learns nothing about weather."""


def topic_conversations(topic: str) -> list[list[dict]]:
    """User messages that mention ``topic`` in fixed templates: contrasted with the same templates
    about ``NEUTRAL_TOPICS`` (``neutral_conversations``), only the topic's words differ."""
    return [[{"role": "user", "content": t.format(topic)}] for t in TOPIC_TEMPLATES]


def neutral_conversations(avoid: str | None = None) -> list[list[dict]]:
    """The templates about everyday neutral topics; with ``avoid``, the ``len(TOPIC_TEMPLATES)`` topics of the
    pool least like it (sentence-embedding cosine), in pool order."""
    topics = NEUTRAL_TOPICS if avoid is None else least_like(avoid, NEUTRAL_TOPICS + SPARE_NEUTRAL_TOPICS)
    return [[{"role": "user", "content": t.format(n)}] for t, n in zip(TOPIC_TEMPLATES, topics)]


def least_like(topic: str, pool: tuple[str, ...], n: int = len(TOPIC_TEMPLATES)) -> tuple[str, ...]:
    """The ``n`` entries of ``pool`` whose sentence embeddings are least like ``topic``'s, in pool order."""
    from steerlab.features.embeddings import embed

    vectors = embed([topic, *pool])
    similarity = vectors[1:] @ vectors[0]
    keep = set(sorted(range(len(pool)), key=lambda i: float(similarity[i]))[:n])
    return tuple(p for i, p in enumerate(pool) if i in keep)


@dataclass
class ContrastiveStimulus:
    goal: str
    dataset_1: list[list[dict]]
    """Conversations where the assistant was asked to follow the goal (and its reply)."""
    dataset_2: list[list[dict]]
    """The same user prompts under the matched neutral system prompt."""
    replies_1: list[Reply]
    replies_2: list[Reply]
    prompts: list[str]


def generate_contrastive_stimulus(
    lm,
    goal: str,
    *,
    prompts: list[str] | None = None,
    n: int = 6,
    max_new_tokens: int = 32,
    temperature: float = 0.6,
    seed: int = 0,
    sae=None,
) -> ContrastiveStimulus:
    """Two datasets of ``n`` conversations each (see module doc); one batched generation pass."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"must be a positive integer, got {n!r}", field="n")
    chosen = list(prompts) if prompts is not None else list(STIMULUS_PROMPTS)
    chosen = [chosen[i % len(chosen)] for i in range(n)] if chosen else []
    if not chosen:
        raise InvalidInputError("must hold at least one user prompt", field="prompts")
    systems = (goal_system_prompt(goal), goal_system_prompt(None))
    conversations = [
        [{"role": "system", "content": s}, {"role": "user", "content": p}] for s in systems for p in chosen
    ]
    replies = generate_rows(
        lm, sae, [Row(c) for c in conversations], max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
    )
    full = [c + [{"role": "assistant", "content": r.text}] for c, r in zip(conversations, replies)]
    return ContrastiveStimulus(goal, full[:n], full[n:], replies[:n], replies[n:], chosen)
