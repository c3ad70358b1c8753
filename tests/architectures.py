"""Tiny randomly initialised models of the families users pick today, each with a tiny tokenizer that
carries the family's special tokens and turn format.

The chat templates are the families' turn formats, shortened to what a template renders for plain
user/assistant turns (the published templates add tool calls, system-prompt rules and date headers).
Sliding windows are set to 8 tokens so prompts and decodes cross them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ '<bos>' }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ '<s>' }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + '</s>' }}{% endif %}{% endfor %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
OLMO2_TEMPLATE = (
    "{{ '<|endoftext|>' }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '<|user|>\n' + m['content'] + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + m['content'] + '<|endoftext|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<bos>", "<eos>", "<start_of_turn>",
    "<end_of_turn>", "<s>", "</s>", "[INST]", "[/INST]", "<|begin_of_text|>", "<|end_of_text|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<|end|>",
]  # fmt: skip


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str
    template: str | None
    bos: str | None
    eos: str
    pad: str
    end_of_turn: str | None
    """The token that closes the assistant's turn, when it is not the tokenizer's EOS."""


FAMILIES = {
    "llama3": Family(
        "llama3", "llama", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|end_of_text|>", "<|end_of_text|>", "<|eot_id|>"
    ),
    "qwen2": Family("qwen2", "qwen2", CHATML_TEMPLATE, None, "<|endoftext|>", "<|endoftext|>", "<|im_end|>"),
    "qwen2.5": Family("qwen2.5", "qwen2", CHATML_TEMPLATE, None, "<|im_end|>", "<|endoftext|>", None),
    "qwen3": Family("qwen3", "qwen3", CHATML_TEMPLATE, None, "<|im_end|>", "<|endoftext|>", None),
    "gemma2": Family("gemma2", "gemma2", GEMMA_TEMPLATE, "<bos>", "<eos>", "<pad>", "<end_of_turn>"),
    "gemma3": Family("gemma3", "gemma3_text", GEMMA_TEMPLATE, "<bos>", "<eos>", "<pad>", "<end_of_turn>"),
    "mistral": Family("mistral", "mistral", MISTRAL_TEMPLATE, "<s>", "</s>", "</s>", None),
    "phi3": Family("phi3", "phi3", PHI3_TEMPLATE, "<s>", "<|endoftext|>", "<|endoftext|>", "<|end|>"),
    "olmo2": Family("olmo2", "olmo2", OLMO2_TEMPLATE, None, "<|endoftext|>", "<pad>", None),
    "gpt-neox": Family("gpt-neox", "gpt_neox", None, None, "<|endoftext|>", "<|endoftext|>", None),
}  # fmt: skip

TEXT = [
    "the cat sat on the mat and the dog ran in the park",
    "def add(a, b): return a + b  # python code with numbers 1 2 3 4 5",
    "bonjour le monde, le chat est sur la table",
    "pirates say arr matey and sail the seven seas for gold",
    "What is the capital of France? Paris is the capital.",
]


def make_tokenizer(family: Family):  # noqa: ANN201 (a PreTrainedTokenizerFast)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXT * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token=family.eos,
        pad_token=family.pad,
        bos_token=family.bos,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t != "<unk>"],
    )
    if family.template is not None:
        fast.chat_template = family.template
    return fast


def make_model(family: Family, vocab_size: int, seed: int = 0, num_layers: int = 3, d_model: int = 64):  # noqa: ANN201
    """A tiny ``*ForCausalLM`` of ``family``, random weights, eval mode, no grads."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    kv = dict(num_key_value_heads=2)
    t = family.model_type
    if t == "llama":  # Llama 3: llama3 rope scaling, GQA, untied head
        cfg = tf.LlamaConfig(
            **common,
            **kv,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            tie_word_embeddings=False,
        )
        model = tf.LlamaForCausalLM(cfg)
    elif t == "qwen2":  # q/k/v biases
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**common, **kv, tie_word_embeddings=True))
    elif t == "qwen3":  # q/k norms, explicit head_dim
        model = tf.Qwen3ForCausalLM(tf.Qwen3Config(**common, **kv, head_dim=32, tie_word_embeddings=True))
    elif t == "gemma2":  # sliding window every other layer, softcapping, pre/post norms, scaled embeddings
        cfg = tf.Gemma2Config(**common, **kv, head_dim=16, sliding_window=8, query_pre_attn_scalar=16)
        model = tf.Gemma2ForCausalLM(cfg)
    elif t == "gemma3_text":  # 5 local : 1 global layers, q/k norms, local and global rope
        cfg = tf.Gemma3TextConfig(
            **{**common, "num_hidden_layers": max(num_layers, 6)},
            **kv,
            head_dim=16,
            sliding_window=8,
            query_pre_attn_scalar=16,
        )
        model = tf.Gemma3ForCausalLM(cfg)
    elif t == "mistral":  # sliding window on every layer
        model = tf.MistralForCausalLM(tf.MistralConfig(**common, **kv, sliding_window=8))
    elif t == "phi3":  # fused qkv_proj and gate_up_proj, partial rotary
        model = tf.Phi3ForCausalLM(tf.Phi3Config(**common, **kv, pad_token_id=None))
    elif t == "olmo2":  # norms after attention and MLP, q/k norms
        model = tf.Olmo2ForCausalLM(tf.Olmo2Config(**common, **kv, pad_token_id=None))
    elif t == "gpt_neox":  # parallel residual, partial rotary, fused qkv, layer norms
        cfg = tf.GPTNeoXConfig(**common, rotary_pct=0.25, use_parallel_residual=True)
        model = tf.GPTNeoXForCausalLM(cfg)
    else:
        raise ValueError(t)
    model.eval().requires_grad_(False)
    return model
