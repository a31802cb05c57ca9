"""Argument checks shared by every layer: each error names the argument and what was expected.

Numbers are checked for type, finiteness (NaN and Inf are caught here, where
they enter) and range; tensors for finiteness.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from torch import Tensor

__all__ = ["check_number", "check_positive_int", "check_fraction", "check_finite", "check_binary"]


def check_number(
    name: str,
    value,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
):
    """Return ``value`` if it is a finite real number within the given bounds.

    Args:
        name: the argument's name, used in the error.
        low, high: bounds (``None``: unbounded on that side).
        low_open, high_open: exclude the bound itself.

    Raises:
        TypeError: not a real number (bools are rejected too).
        ValueError: NaN, infinite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "-inf" if low is None else f"{low}"
        right = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open or low is None else '['}{left}, {right}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name}: expected a value in {interval}, got {value!r}")
    return value


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_fraction(name: str, value, allow_zero: bool = False, allow_one: bool = True) -> float:
    """Return ``value`` if it is a finite fraction in (0, 1] (or [0, 1], (0, 1) as asked)."""
    return check_number(name, value, 0.0, 1.0, low_open=not allow_zero, high_open=not allow_one)


def check_finite(name: str, tensor: Tensor, context: str = "") -> Tensor:
    """Return ``tensor`` if it holds no NaN or Inf; else name the first bad rows.

    Args:
        name: the tensor's name in the error.
        context: appended to the error, e.g. what to check upstream.
    """
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    # A finite sum means every element is finite, without an elementwise mask as large as the tensor.
    if tensor.numel() == 0 or bool(torch.isfinite(tensor.sum())):
        return tensor
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return tensor
    rows = (~finite).reshape(len(tensor), -1).any(1).nonzero().flatten().tolist() if tensor.dim() else []
    kinds = []
    if bool(torch.isnan(tensor).any()):
        kinds.append("NaN")
    if bool(torch.isinf(tensor).any()):
        kinds.append("Inf")
    where = f" (rows {rows[:10]}{' ...' if len(rows) > 10 else ''})" if rows else ""
    raise ValueError(f"{name}: contains {' and '.join(kinds)}{where}{'; ' + context if context else ''}")


def check_binary(name: str, tensor: Tensor) -> Tensor:
    """``tensor`` as booleans; raises ValueError naming ``name`` unless it is boolean or holds only 0 and 1."""
    if tensor.dtype != torch.bool and not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ValueError(f"{name}: an indicator matrix must hold only 0 and 1 (or booleans)")
    return tensor.bool()
