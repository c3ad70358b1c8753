"""Per-thread control of torch's intra-op threads.

With OpenMP, ``torch.set_num_threads`` changes the calling thread's count (and the default that
threads created later start with), not threads already running. Two threads of one process that
both run parallel kernels on a 2-core machine oversubscribe it, and OpenMP's spin-waiting then makes
a 10 ms query embedding take 200 ms or more while the engine decodes. Small jobs beside the engine
(a search query) therefore run on one thread, and long-lived workers (the engine) pin their own
count when they start, so the order in which threads appear never changes their speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads on this thread, then restore the previous count."""
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
