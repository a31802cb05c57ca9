"""Rows of work split over torch's thread count, in one thread pool kept for the process.

The compiled kernels (the MaxBoxAcc sweep, the pixel pass, the Shapley walk)
and numpy's sort release the GIL, so threads share the rows of a batch.
Starting a pool per call cost about as much as a small call's work; the
pool here is started once (again after a fork, whose child has no threads)
and grows when more threads are asked for.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple, TypeVar

import numpy as np
import torch

__all__ = ["row_ranges", "map_row_ranges"]

Result = TypeVar("Result")

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_pool_pid = -1
_worker = threading.local()


def row_ranges(n_rows: int, workers: Optional[int] = None) -> List[Tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges covering ``range(n_rows)``, one per worker (at most one per row).

    ``workers``: default torch's intra-op thread count.
    """
    count = max(1, min(workers or torch.get_num_threads(), n_rows))
    bounds = np.linspace(0, n_rows, count + 1).astype(int).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


def _mark_worker() -> None:
    _worker.active = True


def _shared_pool(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_size < size:
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)  # its queued work still runs
            _pool = ThreadPoolExecutor(size, thread_name_prefix="captum_hint", initializer=_mark_worker)
            _pool_size, _pool_pid = size, os.getpid()
        return _pool


def map_row_ranges(work: Callable[[int, int], Result], n_rows: int, workers: Optional[int] = None) -> List[Result]:
    """``[work(start, stop) for each of row_ranges(n_rows, workers)]``, the ranges run in threads.

    Results come in row order. A call from inside one of the pool's threads
    runs its ranges in that thread (a nested call must not wait for the
    threads it occupies).
    """
    ranges = row_ranges(n_rows, workers)
    if len(ranges) == 1 or getattr(_worker, "active", False):
        return [work(start, stop) for start, stop in ranges]
    return list(_shared_pool(len(ranges)).map(lambda bounds: work(*bounds), ranges))
