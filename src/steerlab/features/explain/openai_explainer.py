"""Labels from any OpenAI-compatible chat model: highlighted top examples in, a short noun phrase out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from steerlab.features.explain.base import Explainer, activating_examples, clean_label, highlighted_text
from steerlab.features.explain.llm import ChatClient, LLMConfig, Messages
from steerlab.features.schema import Feature, Label

SYSTEM_PROMPT = """You name the features of a neural network. You see text excerpts on which one feature \
of a language model fires; the tokens where it fires most are marked <<like this>>. You may also see the tokens \
the feature makes the model more likely to write next.

Answer with ONE short noun phrase (1 to 6 words) naming what the feature responds to, phrased the way a person \
would search for it, for example: French text / Python function definitions / refusals to harmful requests / \
the word "because" / dates in numeric form / apologies. Answer with the phrase only: no quotes, no explanation."""


def build_prompt(feature: Feature, max_examples: int = 12, max_promoted: int = 10) -> Messages:
    """The chat messages for one feature: numbered highlighted excerpts plus its promoted tokens."""
    lines = [f"{i + 1}. {highlighted_text(ex)}" for i, ex in enumerate(activating_examples(feature)[:max_examples])]
    promoted = [t.token.strip() for t in feature.promoted[:max_promoted] if t.token.strip()]
    user = "Excerpts where the feature fires:\n" + "\n".join(lines)
    if promoted:
        user += "\n\nTokens it makes more likely next: " + ", ".join(repr(t) for t in promoted)
    user += "\n\nFeature name:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


class OpenAIExplainer(Explainer):
    """One request per feature, ``concurrency`` in flight, retried; garbage answers leave the feature unlabeled."""

    def __init__(self, config: LLMConfig, max_examples: int = 12):
        self.config = config
        self.client = ChatClient(config)
        self.max_examples = max_examples
        self.name = f"openai:{config.model}"

    def explain(self, features: Sequence[Feature], on_done: Callable[[], None] | None = None) -> list[Label | None]:
        todo = [i for i, f in enumerate(features) if activating_examples(f)]
        answers = self.client.complete_all([build_prompt(features[i], self.max_examples) for i in todo], on_done)
        labels: list[Label | None] = [None] * len(features)
        for i, answer in zip(todo, answers):
            text = clean_label(answer)
            labels[i] = Label(text=text, explainer=self.name) if text else None
        return labels
