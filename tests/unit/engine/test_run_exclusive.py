"""Lab.run_exclusive: the work runs with the model held, in a thread that ends with it."""

import threading

import pytest

from steerlab.engine.lab import Lab


@pytest.fixture()
def lab(tiny_lm):
    lab = Lab(tiny_lm, max_batch=2, max_queue=4)
    yield lab
    lab.close()


def test_runs_in_a_passing_thread_with_the_model_held(lab):
    caller = threading.current_thread()
    seen = {}

    def work(a, b=1):
        seen["thread"] = threading.current_thread()
        seen["held"] = lab.engine.lock.acquire(blocking=False) is False  # the caller holds it for us
        return a * b

    assert lab.run_exclusive(work, 6, b=7) == 42
    assert seen["thread"] is not caller and seen["held"] and not seen["thread"].is_alive()
    assert lab.engine.lock.acquire(blocking=False)  # released afterwards
    lab.engine.lock.release()


def test_errors_come_back_and_release_the_model(lab):
    with pytest.raises(ValueError, match="bad conversation"):
        lab.run_exclusive(lambda: (_ for _ in ()).throw(ValueError("bad conversation")))
    assert lab.engine.lock.acquire(blocking=False)
    lab.engine.lock.release()
