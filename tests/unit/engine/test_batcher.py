import asyncio
import concurrent.futures
import threading
import time

import pytest
import torch

from steerlab.engine.batcher import Engine, EngineBusy, wait_idle
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import chat_input_ids, stop_token_ids
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.steering.batch import RowSteering
from steerlab.steering.edits import FeatureEdit

HOOK = "model.layers.1"
PROMPTS = [
    "the cat",
    "bonjour le monde, le chat est sur la table",
    "def add(a, b):",
    "pirates say arr",
    "What is the capital of France?",
    "the dog ran in the park and",
]


@pytest.fixture()
def setup(tiny_lm):
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint=HOOK)).requires_grad_(False)
    sae.feature_scale.fill_(3.0)
    engine = Engine(tiny_lm.model, tiny_lm.tokenizer, HOOK, stop_token_ids(tiny_lm.tokenizer), max_batch=8)
    yield tiny_lm, sae, engine
    engine.close()


def _prompt(lm, text):
    return chat_input_ids(lm.tokenizer, [{"role": "user", "content": text}])


def _editor(sae, i):
    return None if i == 0 else RowSteering.for_edits(sae, [FeatureEdit(i * 7 % 128, 2.0 * (-1) ** i)])


def test_concurrent_rows_with_different_steering_equal_each_run_alone(setup):
    lm, sae, engine = setup
    params = SamplingParams(max_new_tokens=12, temperature=0)
    alone = [engine.generate(_prompt(lm, p), params, _editor(sae, i)) for i, p in enumerate(PROMPTS)]
    streams = [engine.submit(_prompt(lm, p), params, _editor(sae, i)) for i, p in enumerate(PROMPTS)]
    together = [s.text() for s in streams]
    assert together == alone
    assert len({text for text, _, _ in alone}) > 1  # the steering really changes outputs
    wait_idle(engine)
    assert engine.active_count == 0 and engine.steps > 0


def test_waiting_prompts_are_prefilled_together_and_padding_never_reaches_an_editor(setup):
    """Six prompts of different lengths arrive while the engine is busy: one padded prefill forward,
    the same text as each alone, and a per-sequence editor that sees only its own real tokens."""
    lm, sae, engine = setup
    params = SamplingParams(max_new_tokens=8, temperature=0)
    prompts = [_prompt(lm, p) for p in PROMPTS]
    alone = [engine.generate(p, params, _editor(sae, i)) for i, p in enumerate(prompts)]
    seen: list[int] = []

    def counting(hidden):  # records how many positions the editor is shown on each call
        seen.append(hidden.shape[1])
        return hidden

    wait_idle(engine)
    before = engine.prefill_forwards
    with engine.lock:  # the engine thread waits here, so every request below is queued first
        streams = [engine.submit(p, params, _editor(sae, i)) for i, p in enumerate(prompts)]
        probe = engine.submit(prompts[0], params, counting)
    assert [s.text() for s in streams] == alone
    probe.text()
    assert engine.prefill_forwards - before == 1
    assert seen[0] == len(prompts[0]) < max(map(len, prompts))  # its prompt only, no left padding
    assert set(seen[1:]) == {1}


def _reference_decode(lm, ids, params, editor) -> str:
    """The plainest decode to check the engine against: the whole sequence re-read every step (no KV
    cache, no batching, no fast path), the same sampling primitives and seed."""
    from steerlab.generation.sampler import sample_next
    from steerlab.models.hooks import edit_residual

    generator = torch.Generator().manual_seed(params.seed)
    stops, generated = stop_token_ids(lm.tokenizer), []
    with edit_residual(lm.model, HOOK, editor), torch.no_grad():
        for _ in range(params.max_new_tokens):
            token = sample_next(lm.model(input_ids=torch.tensor([ids + generated])).logits[0, -1], params, generator)
            if token in stops:
                break
            generated.append(token)
    return lm.tokenizer.decode(generated, skip_special_tokens=True)


def test_engine_matches_the_single_sequence_sampler_with_seed(setup):
    lm, sae, engine = setup
    params = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=5)
    ids = _prompt(lm, "the cat")
    ref = _reference_decode(lm, ids, params, _editor(sae, 3))
    # a neighbour in the batch with other steering must not matter
    other = engine.submit(
        _prompt(lm, "pirates say arr"), SamplingParams(max_new_tokens=20, temperature=0), _editor(sae, 2)
    )
    assert engine.generate(ids, params, _editor(sae, 3))[0] == ref
    other.text()


def test_cancel_frees_the_row_and_queue_bound_applies(setup):
    lm, _, engine = setup
    long = engine.submit(_prompt(lm, "the cat"), SamplingParams(max_new_tokens=400, temperature=1.0, seed=1))
    first = next(iter(long))
    assert first.finish_reason is None
    long.cancel()
    reasons = [e.finish_reason for e in long]
    assert reasons[-1] in ("cancelled", "stop", "length")
    small = Engine(lm.model, lm.tokenizer, None, stop_token_ids(lm.tokenizer), max_queue=0)
    with pytest.raises(EngineBusy):
        small.submit(_prompt(lm, "x"), SamplingParams(max_new_tokens=2))
    with pytest.raises(ValueError, match="context"):
        engine.submit(_prompt(lm, "x"), SamplingParams(max_new_tokens=10_000))
    small.close()


def test_async_streams_from_an_event_loop(setup):
    lm, _, engine = setup

    async def run():
        loop = asyncio.get_running_loop()
        streams = [
            engine.submit(_prompt(lm, p), SamplingParams(max_new_tokens=6, temperature=0), loop=loop)
            for p in PROMPTS[:3]
        ]

        async def collect(s):
            return "".join([e.text async for e in s])

        return await asyncio.gather(*(collect(s) for s in streams))

    # In a thread of its own: another suite's fixture (Playwright's sync API) may hold a running loop here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        texts = pool.submit(asyncio.run, run()).result()
    params = SamplingParams(max_new_tokens=6, temperature=0)
    assert texts == [engine.generate(_prompt(lm, p), params)[0] for p in PROMPTS[:3]]
    assert threading.active_count() >= 1


def test_work_outside_the_engine_gets_the_model_between_two_steps_of_a_long_generation(setup):
    """The engine yields to a waiting inspection after its current step, not when the batch drains."""
    lm, _, engine = setup
    engine.stop_token_ids = set()

    def slow(hidden):  # a step that takes as long as a real model's, lock held
        time.sleep(0.01)
        return hidden

    stream = engine.submit(_prompt(lm, "the cat"), SamplingParams(max_new_tokens=400, temperature=0), slow)
    deadline = time.monotonic() + 30
    while engine.steps < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    for _ in range(5):  # several outsiders in a row, each served within a couple of steps
        asked = engine.steps
        with engine.outside():
            waited = engine.steps - asked
            assert engine.active_count == 1  # the generation is still running: it did not have to finish
        assert waited <= 2
    stream.cancel()
    stream.text()


def test_decoding_warns_about_nothing(setup):
    """A clean 'steerlab chat' printed a FutureWarning from transformers (a renamed forward argument):
    the engine's prefill, its decode steps and the bulk generate path call the model as the pinned
    transformers release expects."""
    import warnings

    from steerlab.generation.batch_generate import BatchSampling, generate_batch

    lm, sae, engine = setup
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.generate(_prompt(lm, PROMPTS[0]), SamplingParams(max_new_tokens=4, temperature=0), _editor(sae, 1))
        prompts = [_prompt(lm, p) for p in PROMPTS[:2]]
        generate_batch(lm.model, prompts, BatchSampling(max_new_tokens=4), stop_token_ids(lm.tokenizer), 0, seed=0)


def test_a_prompt_whose_prefill_fails_gets_an_error_not_a_hang(setup):
    """A prefill that raises (here a token id beyond the vocabulary) used to leave its sequences off
    both the queue and the batch: their callers waited forever. They get an error event; requests
    queued behind them and the running batch are served as usual."""
    lm, sae, engine = setup
    params = SamplingParams(max_new_tokens=4, temperature=0)
    running = engine.submit(_prompt(lm, PROMPTS[1]), SamplingParams(max_new_tokens=24, temperature=0))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        failed = pool.submit(engine.generate, [10**6], params)
        queued_behind = pool.submit(engine.generate, _prompt(lm, PROMPTS[0]), params)
        with pytest.raises(RuntimeError, match="generation failed"):
            failed.result(timeout=60)
        assert queued_behind.result(timeout=60)[1] in ("stop", "length")
    assert running.text()[1] in ("stop", "length")
