"""seeded_globals: reproducible draws from the global generators, which are left as they were."""

import random

import numpy as np
import pytest
import torch

from captum_hint.core.seeding import seeded_globals


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_same_seed_same_draws_and_the_global_state_is_restored():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected_next = _draw()
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    with seeded_globals(7):
        first = _draw()
    with seeded_globals(7):
        assert _draw() == first
    with seeded_globals(8):
        assert _draw() != first
    assert _draw() == expected_next  # as if the blocks had never run


def test_restored_when_the_block_raises():
    torch.manual_seed(2)
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError):
        with seeded_globals(0):
            torch.rand(3)
            raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), state)
