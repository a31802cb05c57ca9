"""The suite's share of the CPU: pytest-xdist workers, and the threads each one and its notebook kernels run.

``make test`` runs ``pytest -n auto``: one worker per core (at most :data:`MAX_WORKERS`),
each with ``cores // workers`` torch threads. On 2 cores, two one-thread workers keep
both cores busy through the single-threaded stretches (kernel start-up, imports,
Python loops) that leave one two-thread process half idle; more threads than cores
make OpenMP's waiting threads spin against each other (benchmarks/README.md).
"""

import os

import torch
from threadpoolctl import threadpool_limits  # scikit-learn's dependency

#: Workers of ``-n auto``: each loads its own models and notebook kernels, so memory bounds them, not cores alone.
MAX_WORKERS = 4


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config):
    return max(1, min(MAX_WORKERS, _cores()))


_threads = max(1, min(4, _cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(_threads)  # read by the notebook kernels and other child processes as they start
torch.set_num_threads(_threads)
threadpool_limits(_threads)  # numpy's BLAS, loaded before this file with its own count
