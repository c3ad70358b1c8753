import torch

from steerlab.generation.batch_generate import BatchSampling, generate_batch, sample_rows
from steerlab.models.chat_template import chat_input_ids, stop_token_ids


def _greedy_alone(lm, prompt: list[int], steps: int, stops: set[int]) -> list[int]:
    """Reference: plain full-sequence forwards, no cache, no padding."""
    ids = list(prompt)
    out = []
    for _ in range(steps):
        token = int(lm.model(torch.tensor([ids])).logits[0, -1].argmax())
        if token in stops:
            break
        out.append(token)
        ids.append(token)
    return out


def _prompts(lm):
    texts = ["the cat", "bonjour le monde, le chat est sur la table et", "def add(a, b):"]
    return [chat_input_ids(lm.tokenizer, [{"role": "user", "content": t}]) for t in texts]


def test_greedy_batch_with_padding_and_dropped_rows_equals_each_prompt_alone(tiny_lm):
    prompts = _prompts(tiny_lm)
    first = [int(tiny_lm.model(torch.tensor([p])).logits[0, -1].argmax()) for p in prompts]
    stops = {first[1]}  # the second row stops at once, so it leaves the batch on step 0
    got = generate_batch(
        tiny_lm.model,
        prompts,
        BatchSampling(max_new_tokens=12, temperature=0),
        stops,
        pad_token_id=tiny_lm.tokenizer.pad_token_id,
    )
    assert got[1].token_ids == [] and got[1].finish_reason == "stop"
    for prompt, result in zip(prompts, got):
        assert result.token_ids == _greedy_alone(tiny_lm, prompt, 12, stops)
        if result.finish_reason == "length":
            assert len(result.token_ids) == 12


def test_same_seed_same_batch_output(tiny_lm):
    prompts = _prompts(tiny_lm)
    cfg = BatchSampling(max_new_tokens=10, temperature=1.0, top_p=0.9, repetition_penalty=1.1)
    stops = stop_token_ids(tiny_lm.tokenizer)
    pad = tiny_lm.tokenizer.pad_token_id
    a = generate_batch(tiny_lm.model, prompts, cfg, stops, pad, seed=3)
    b = generate_batch(tiny_lm.model, prompts, cfg, stops, pad, seed=3)
    c = generate_batch(tiny_lm.model, prompts, cfg, stops, pad, seed=4)
    assert [g.token_ids for g in a] == [g.token_ids for g in b] != [g.token_ids for g in c]


def test_top_p_keeps_only_the_nucleus_and_penalty_demotes_seen_tokens():
    logits = torch.tensor([[5.0, 4.0, -10.0, -10.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    picked = sample_rows(logits, BatchSampling(temperature=1.0, top_p=0.5), g)
    assert set(picked.tolist()) == {0}
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen[:, 0] = True
    greedy = sample_rows(logits, BatchSampling(temperature=0, repetition_penalty=2.0), None, seen)
    assert set(greedy.tolist()) == {1}


def test_recorded_residuals_equal_a_full_forward_over_what_each_row_read(tiny_lm):
    """Padding, the KV cache and rows leaving the batch must not change what is recorded."""
    from steerlab.models.hooks import forward_to_hookpoint

    prompts = _prompts(tiny_lm)
    first = [int(tiny_lm.model(torch.tensor([p])).logits[0, -1].argmax()) for p in prompts]
    stops = {first[1]}
    got = generate_batch(
        tiny_lm.model,
        prompts,
        BatchSampling(max_new_tokens=6, temperature=0),
        stops,
        pad_token_id=tiny_lm.tokenizer.pad_token_id,
        record="model.layers.1",
    )
    assert got[1].finish_reason == "stop"
    for prompt, result in zip(prompts, got):
        read = result.read_ids(prompt)
        fed = len(result.token_ids) - (1 if result.finish_reason == "length" else 0)
        assert read == (prompt + result.token_ids)[: len(prompt) + fed]
        alone = forward_to_hookpoint(tiny_lm.model, torch.tensor([read]), "model.layers.1")[0]
        assert result.activations.shape == alone.shape
        torch.testing.assert_close(result.activations, alone, rtol=1e-4, atol=1e-4)
    assert all(
        g.activations is None
        for g in generate_batch(
            tiny_lm.model, prompts, BatchSampling(max_new_tokens=2, temperature=0), set(), pad_token_id=0
        )
    )


def test_top_p_with_a_nucleus_wider_than_the_candidate_window_falls_back_to_the_full_vocabulary():
    from steerlab.generation import batch_generate

    flat = torch.zeros((400, batch_generate.NUCLEUS_CANDIDATES * 4))  # uniform: the nucleus is ~90% of it
    picked = sample_rows(flat, BatchSampling(temperature=1.0, top_p=0.9), torch.Generator().manual_seed(0))
    assert int(picked.max()) >= batch_generate.NUCLEUS_CANDIDATES  # tokens beyond the window are reachable
    assert len(set(picked.tolist())) > 300
