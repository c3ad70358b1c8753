import threading

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
