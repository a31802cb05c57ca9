"""Seed code that draws from the global generators, and leave those generators as they were.

Some library code (Captum's TCAV classifier, scikit-learn estimators without a
``random_state``) draws from Python's, NumPy's and torch's global generators.
Results must be reproducible from a ``seed`` argument without touching the
user's global random state, so such calls run inside :func:`seeded_globals`.
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ["seeded_globals"]


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's (CPU) global generators inside the block; restore all three after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
