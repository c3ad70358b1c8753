import threading

import pytest
import torch

from steerlab.torch_threads import torch_threads


def test_block_runs_on_n_threads_and_restores_this_threads_count():
    seen = {}

    def worker():
        before = torch.get_num_threads()
        with torch_threads(1):
            seen["inside"] = torch.get_num_threads()
        seen["after"] = torch.get_num_threads() == before

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"inside": 1, "after": True}


def test_in_passing_thread_returns_the_result_and_raises_the_error():
    from steerlab.torch_threads import in_passing_thread

    caller = threading.current_thread()
    assert in_passing_thread(lambda a, b=0: (threading.current_thread() is not caller, a + b), 2, b=3) == (True, 5)
    with pytest.raises(KeyError, match="missing"):
        in_passing_thread(lambda: {}["missing"])
    names = []
    in_passing_thread(lambda: names.append(threading.current_thread().name))
    assert names[0].startswith("steerlab-passing") and not any(t.name == names[0] for t in threading.enumerate())
