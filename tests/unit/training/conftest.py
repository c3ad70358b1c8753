"""Tiny chat data, the tiny Llama and a tiny TopK SAE at block 1 for fine-tuning tests."""

import json

import pytest

from steerlab.models.loader import LoadedModel
from tests.conftest import TINY_TEXT, make_tiny_llama
from tests.unit.steering.conftest import make_tiny_sae

QUESTIONS = ["where is the cat", "what do pirates say", "say hello in french", "write python code", "capital of france"]


def conversations(n: int = 24) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]},
            {"role": "assistant", "content": TINY_TEXT[(i * 3) % len(TINY_TEXT)]},
        ]
        for i in range(n)
    ]


def write_jsonl(path, convs) -> None:
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))


@pytest.fixture()
def fresh_lm(tiny_tokenizer):
    """A factory: the same tiny model (same seed) each call, so two runs start from identical weights."""

    def make() -> LoadedModel:
        return LoadedModel(name="tiny-llama", model=make_tiny_llama(len(tiny_tokenizer)), tokenizer=tiny_tokenizer)

    return make


@pytest.fixture()
def sae():
    return make_tiny_sae()


@pytest.fixture()
def chat_file(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, conversations())
    return path
