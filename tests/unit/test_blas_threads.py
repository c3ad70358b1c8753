import torch
from threadpoolctl import threadpool_info

from steerlab.blas_threads import single_threaded_blas


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_numpy_blas_on_one_thread_torch_untouched():
    torch_before = torch.get_num_threads()
    limiter = single_threaded_blas()
    try:
        assert blas_threads() <= {1}
        assert torch.get_num_threads() == torch_before
    finally:
        limiter.restore_original_limits()
