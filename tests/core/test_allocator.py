"""reuse_freed_memory and its environment twin: large blocks come from the heap, not fresh mmap pages."""

import ctypes
import ctypes.util
import os
import subprocess
import sys

import pytest

from captum_hint.core import allocator
from captum_hint.core.allocator import REUSE_FREED_MEMORY_ENV

# A child process: how many more mmapped blocks glibc holds while a 64 MB block is alive (mallinfo2's hblks).
# It loads the module from its file: importing the package would import torch, seconds a child.
CHILD = r"""
import ctypes, ctypes.util, importlib.util, sys
spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = Info
applied = allocator.reuse_freed_memory() if sys.argv[1] == "call" else None
before = libc.mallinfo2().hblks
block = bytearray(64 << 20)
print(applied, libc.mallinfo2().hblks - before)
"""


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")
    except OSError:
        return False


def _child(mode, env=None):
    # without the settings this suite's tutorials/conftest.py puts in the environment for notebook kernels
    plain = {key: value for key, value in os.environ.items() if key not in REUSE_FREED_MEMORY_ENV}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, allocator.__file__], capture_output=True, text=True,
                          check=True, env={**plain, **(env or {})})
    return done.stdout.split()


@pytest.mark.skipif(not _glibc(), reason="glibc's mallopt and mallinfo2 only")
def test_large_blocks_leave_mmap():
    assert _child("plain") == ["None", "1"]  # glibc's default: one mmapped block
    assert _child("call") == ["True", "0"]
    assert _child("call", {"CAPTUM_HINT_KEEP_MALLOC": "1"}) == ["False", "1"]  # the user's opt-out
    assert _child("plain", REUSE_FREED_MEMORY_ENV) == ["None", "0"]  # read by glibc at start (notebook kernels)
