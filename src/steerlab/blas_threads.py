"""numpy's BLAS (the OpenBLAS inside the numpy wheel) on one thread in a process that serves.

Search multiplies a ~[1.3k, 384] matrix by a query vector: 0.08 ms p50 on one thread. With OpenBLAS's
default of a thread per core, the same product took 8 ms p50 while another job kept both cores busy
(in the server that job is the engine): its threads wait on each other. Every numpy product on a
request path is that small, so one thread is never slower there. torch's threads (OpenMP) are a
different pool and keep their own count (``torch_threads``).
"""

from __future__ import annotations


def single_threaded_blas():
    """Limit numpy's BLAS to one thread for the rest of the process (torch is unaffected); the returned
    limiter's ``restore_original_limits()`` undoes it."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
