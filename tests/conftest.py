"""Shared fixtures: a tiny random Llama with a real (tiny) tokenizer, so unit tests run in seconds."""

from __future__ import annotations

import pytest
import torch

from steerlab.models.loader import LoadedModel

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_TEXT = [
    "the cat sat on the mat and the dog ran in the park",
    "def add(a, b): return a + b  # python code with numbers 1 2 3 4 5",
    "bonjour le monde, le chat est sur la table",
    "pirates say arr matey and sail the seven seas for gold",
    "What is the capital of France? Paris is the capital.",
]


def make_tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TINY_TEXT * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHATML
    return fast


def make_tiny_llama(vocab_size: int, seed: int = 0, num_layers: int = 4, d_model: int = 64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=1,
        eos_token_id=3,
        bos_token_id=2,
    )
    model = LlamaForCausalLM(cfg).eval()
    model.requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture()
def tiny_lm(tiny_tokenizer) -> LoadedModel:
    model = make_tiny_llama(len(tiny_tokenizer))
    return LoadedModel(name="tiny-llama", model=model, tokenizer=tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """The tiny model saved as an ordinary HF folder, for loader tests."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_llama(len(tiny_tokenizer)).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def steerlab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
