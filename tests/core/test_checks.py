"""Argument checks: every error names the argument and what was expected."""

import math

import pytest
import torch

from captum_hint.core.checks import check_binary, check_finite, check_fraction, check_number, check_positive_int


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(ValueError, match=f"x: expected a finite number, got {value}"):
        check_number("x", value, low=0.0)


@pytest.mark.parametrize("value, kwargs, interval", [
    (0.0, {"low": 0.0, "high": 1.0, "low_open": True}, r"\(0.0, 1.0\]"),
    (1.0, {"low": 0.0, "high": 1.0, "high_open": True}, r"\[0.0, 1.0\)"),
    (-1, {"low": 0}, r"\[0, inf\)"),
    (5, {"high": 4}, r"\(-inf, 4\]"),
])
def test_bounds_and_their_message(value, kwargs, interval):
    with pytest.raises(ValueError, match=f"x: expected a value in {interval}, got {value}"):
        check_number("x", value, **kwargs)


def test_accepted_values_come_back_unchanged():
    assert check_number("x", 0.0, low=0.0) == 0.0
    assert check_fraction("f", 1.0) == 1.0 and check_fraction("f", 0.0, allow_zero=True) == 0.0
    assert check_positive_int("n", 3) == 3 and check_positive_int("seed", 0, minimum=0) == 0


@pytest.mark.parametrize("value", [True, "0.5", None, torch.tensor(0.5)])
def test_non_numbers_are_type_errors(value):
    with pytest.raises(TypeError, match="x: expected a real number"):
        check_number("x", value)


@pytest.mark.parametrize("value", [2.0, True, 0])
def test_positive_int(value):
    with pytest.raises((TypeError, ValueError), match="n: expected an integer >= 1"):
        check_positive_int("n", value)


def test_check_finite_names_rows_and_kind():
    x = torch.zeros(4, 3)
    x[1, 2] = math.nan
    x[3, 0] = math.inf
    with pytest.raises(ValueError, match=r"v: contains NaN and Inf \(rows \[1, 3\]\); look upstream"):
        check_finite("v", x, "look upstream")
    assert check_finite("v", torch.ones(2)) is not None
    assert check_finite("ids", torch.arange(3)) is not None  # integers are always finite


def test_check_finite_accepts_finite_values_whose_sum_overflows():
    big = torch.full((4,), 3e38)  # finite float32 values; their sum is Inf
    assert check_finite("x", big) is big
    with pytest.raises(ValueError, match=r"x: contains NaN \(rows \[2\]\)"):
        check_finite("x", torch.tensor([[1.0], [2.0], [float("nan")]]))


def test_check_binary():
    assert check_binary("m", torch.tensor([[0, 1], [1, 1]])).tolist() == [[False, True], [True, True]]
    assert check_binary("m", torch.tensor([True, False])).dtype == torch.bool
    with pytest.raises(ValueError, match="m: an indicator matrix must hold only 0 and 1"):
        check_binary("m", torch.tensor([0.5, 1.0]))
