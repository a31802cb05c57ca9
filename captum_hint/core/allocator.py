"""Keeping freed CPU memory for reuse: what makes a CPU forward pass memory-bound here.

PyTorch's CPU tensors come from ``malloc``. glibc serves large blocks (an
activation tensor of a batch is tens of MB) with fresh ``mmap`` pages and
unmaps them when they are freed, so every new activation pays a page fault per
4 KiB page: on the project's 2-core machine an out-of-place ReLU6 of a
77 MB tensor took 38 ms against 5 ms in place, and EfficientNet-Lite0's
forward pass of 16 images 0.5 s against 0.32 s once freed memory is kept
(``benchmarks/allocator.py``). :func:`reuse_freed_memory` makes glibc keep it.
The cost: the process's resident memory no longer shrinks after a peak.

It is process-wide, so the library never calls it by itself: the
``captum-hint`` command does, and so may a user's script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["reuse_freed_memory", "REUSE_FREED_MEMORY_ENV"]

# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int

#: The same settings as environment variables, read by glibc when a process starts (for child
#: processes such as notebook kernels).
REUSE_FREED_MEMORY_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(_NEVER_TRIM)}


def reuse_freed_memory() -> bool:
    """Make this process's ``malloc`` keep freed memory for reuse (glibc only).

    Large blocks then come from the heap instead of fresh ``mmap`` pages, and
    the heap is not trimmed: a tensor freed after one batch serves the next
    without page faults.

    Returns:
        True where applied (Linux with glibc); False elsewhere, where nothing
        is changed.
    """
    if not sys.platform.startswith("linux") or os.environ.get("CAPTUM_HINT_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
