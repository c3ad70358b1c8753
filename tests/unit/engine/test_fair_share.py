"""Sharing the model between the engine's decode steps and analyses that hold it piece by piece."""

import threading
import time

import pytest

from steerlab.analysis.inspect import inspect
from steerlab.engine.batcher import Engine
from steerlab.engine.lab import Lab
from steerlab.generation.sampler import SamplingParams
from tests.unit.steering.conftest import make_tiny_sae

LONG = [{"role": "user", "content": "the cat sat on the mat and the dog ran in the park " * 12}]


def _slow(seconds: float):
    def editor(hidden):  # a step that takes as long as a real model's, lock held
        time.sleep(seconds)
        return hidden

    return editor


def _busy_engine(lm, share: float) -> Engine:
    engine = Engine(lm.model, lm.tokenizer, "model.layers.1", set(), max_batch=4, outsider_share=share)
    return engine


def _wait_for_steps(engine: Engine, n: int) -> None:
    deadline = time.monotonic() + 30
    while engine.steps < n and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.parametrize("share", [0.5, 0.25])
def test_after_an_outsider_held_the_model_the_engine_decodes_for_its_share(tiny_lm, share):
    """Holds of 50 ms in a row, the engine busy: between two holds the engine decodes for the time it is
    owed, 50 ms * (1 - share) / share (one decode step each, as before, would take far less)."""
    engine = _busy_engine(tiny_lm, share)
    try:
        stream = engine.submit([5, 6, 7], SamplingParams(max_new_tokens=500, temperature=0), _slow(0.004))
        _wait_for_steps(engine, 2)
        held, holds = 0.0, 6
        started = time.perf_counter()
        for _ in range(holds):
            with engine.outside():
                began = time.perf_counter()
                time.sleep(0.05)
                held += time.perf_counter() - began
        wall = time.perf_counter() - started
        owed = held * (1 - share) / share * (holds - 1) / holds  # the last hold's time is not yet spent
        assert engine.active_count == 1
        assert wall - held >= 0.9 * owed, (wall, held, owed)
        assert wall - held <= owed + 2.0  # and not much more (one step's overshoot per hold; a loaded machine)
        stream.cancel()
        stream.text()
    finally:
        engine.close()


def test_share_one_keeps_one_step_between_two_outsiders(tiny_lm):
    engine = _busy_engine(tiny_lm, 1.0)
    try:
        stream = engine.submit([5, 6, 7], SamplingParams(max_new_tokens=500, temperature=0), _slow(0.005))
        _wait_for_steps(engine, 2)
        for _ in range(5):
            asked = engine.steps
            with engine.outside():
                time.sleep(0.02)
                waited = engine.steps - asked
            assert waited <= 2
        stream.cancel()
        stream.text()
    finally:
        engine.close()


def test_an_idle_engine_owes_nothing(tiny_lm):
    engine = _busy_engine(tiny_lm, 0.5)
    try:
        started = time.perf_counter()
        for _ in range(20):
            with engine.outside():
                time.sleep(0.01)
        assert time.perf_counter() - started < 0.2 + 0.5  # no waits between the holds: nothing to decode
    finally:
        engine.close()


def test_a_chat_finishes_while_a_long_chunked_inspection_is_still_running(tiny_lm):
    sae = make_tiny_sae()
    lab = Lab(tiny_lm, sae, sae_id="x", max_batch=4, chunk_tokens=1, analysis_share=0.5)
    lab.engine.stop_token_ids = set()
    done: dict[str, float] = {}
    try:
        holds = []

        def analysis():
            def hold():  # the real engine.outside(), each chunk made as slow as a real model's
                holds.append(1)
                return _SlowHold(lab.exclusive(), 0.01)

            result = inspect(lab.lm, lab.sae, LONG, chunk_tokens=lab.chunk_tokens, hold=hold)
            done["inspect"] = time.perf_counter()
            return result

        worker = threading.Thread(target=lambda: lab.run_shared(lambda hold: analysis()))
        worker.start()
        while len(holds) < 3:
            time.sleep(0.001)
        stream = lab.engine.submit([5, 6, 7], SamplingParams(max_new_tokens=20, temperature=0), _slow(0.002))
        text, reason, _ = stream.text()
        done["chat"] = time.perf_counter()
        worker.join(timeout=120)
        assert reason == "length"
        assert "inspect" in done and len(holds) > 100
        assert done["chat"] < done["inspect"], "the chat waited for the whole inspection"
    finally:
        lab.close()


def test_the_chat_would_wait_for_an_inspection_that_holds_the_model_throughout(tiny_lm):
    """The check above can fail: the same inspection in one hold (run_exclusive) finishes first."""
    sae = make_tiny_sae()
    lab = Lab(tiny_lm, sae, sae_id="x", max_batch=4, chunk_tokens=1, analysis_share=0.5)
    lab.engine.stop_token_ids = set()
    done: dict[str, float] = {}
    started = threading.Event()
    try:

        def analysis():
            started.set()
            time.sleep(0.3)  # as long as the chunked inspection, but in one piece
            done["inspect"] = time.perf_counter()

        worker = threading.Thread(target=lambda: lab.run_exclusive(analysis))
        worker.start()
        started.wait(10)
        stream = lab.engine.submit([5, 6, 7], SamplingParams(max_new_tokens=20, temperature=0), _slow(0.002))
        stream.text()
        done["chat"] = time.perf_counter()
        worker.join(timeout=60)
        assert done["chat"] > done["inspect"]
    finally:
        lab.close()


class _SlowHold:
    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def __enter__(self):
        self.inner.__enter__()
        time.sleep(self.seconds)

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)
