"""The notebooks here run as tests (nbmake): each is marked ``tutorials`` and gets its own time limit."""

import os

import pytest

from captum_hint.core.allocator import REUSE_FREED_MEMORY_ENV

# The notebook kernels are child processes: glibc reads these when each starts (see captum_hint.core.allocator).
os.environ.update(REUSE_FREED_MEMORY_ENV)

#: Seconds one notebook may take on 2 CPU cores (each takes under a minute there).
NOTEBOOK_TIME_LIMIT = 300


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.tutorials)
            item.add_marker(pytest.mark.timeout(NOTEBOOK_TIME_LIMIT))
