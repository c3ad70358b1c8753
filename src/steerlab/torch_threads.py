"""Per-thread control of torch's intra-op threads.

With OpenMP, ``torch.set_num_threads`` changes the calling thread's count (and the default that
threads created later start with), not threads already running. Two threads of one process that
both run parallel kernels on a 2-core machine oversubscribe it, and OpenMP's spin-waiting then makes
a 10 ms query embedding take 200 ms or more while the engine decodes. Small jobs beside the engine
(a search query) therefore run on one thread, and long-lived workers (the engine) pin their own
count when they start, so the order in which threads appear never changes their speed.

Each thread that runs a parallel kernel keeps its own team of OpenMP workers for as long as it lives.
Once a process holds more OpenMP threads than cores, libgomp stops spin-waiting between parallel
regions (100 spins instead of 300,000) and every region pays a wake-up: a decode step, ~300 regions,
took 40-41 ms instead of 33-35 ms on this 2-core machine when the main thread had run one 2-thread
kernel before the engine thread started. So one-off heavy work (loading a model, a baseline) runs in
a thread of its own (:func:`in_passing_thread`), whose workers end with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

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


T = TypeVar("T")


def in_passing_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread that ends when it returns (its OpenMP workers with it); the
    result or the exception comes back here."""
    with ThreadPoolExecutor(1, thread_name_prefix="steerlab-passing") as pool:
        return pool.submit(fn, *args, **kwargs).result()
