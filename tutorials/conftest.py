"""The notebooks here run as tests (nbmake): each is marked ``tutorials`` and gets its own time limit."""

import pytest

#: Seconds one notebook may take on 2 CPU cores (each takes under a minute there).
NOTEBOOK_TIME_LIMIT = 300


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.tutorials)
            item.add_marker(pytest.mark.timeout(NOTEBOOK_TIME_LIMIT))
