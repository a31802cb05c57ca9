"""Argument checks shared by every layer: each error names the argument and what was expected.

Numbers are checked for type, finiteness (NaN and Inf are caught here, where
they enter) and range; tensors for finiteness.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ["check_number", "check_positive_int", "check_index", "check_fraction", "check_finite", "check_binary",
           "check_tensor", "check_output_folder"]


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


def check_positive_int(name: str, value, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """Return ``value`` if it is an integer ``>= minimum`` (and ``<= maximum`` if given; bools rejected)."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {expected}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return int(value)


def check_index(name: str, value, size: int, what: str = "index") -> int:
    """Return ``value`` if it is an integer in ``0..size - 1``.

    Negative values are refused rather than read as Python's from-the-end
    indices: ``-1`` as a class means a mistake more often than class 999,
    and several results use -1 as a marker.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a {what} (an integer in 0..{size - 1}), got {value!r} "
                        f"({type(value).__name__})")
    if not 0 <= value < size:
        raise ValueError(f"{name}: {what} {value} is out of range (expected 0..{size - 1})")
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


def check_output_folder(name: str, path: Union[str, Path]) -> Path:
    """``path`` as a Path if it is a folder or could be made one and written in.

    Raises:
        ValueError: naming ``name``: it is an existing file, lies under a
            file, or its nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}: {path} is a file; expected a folder to write in")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{name}: {path} lies under the file {existing}; expected a folder to write in")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write in {existing} (permission denied)")
    return path


_KINDS = {"float": lambda t: t.is_floating_point(), "int": lambda t: not t.is_floating_point() and not t.is_complex()
          and t.dtype != torch.bool, "bool": lambda t: t.dtype == torch.bool}


def check_tensor(name: str, value, kind: str, shape: tuple, allow_nan: bool = False) -> Tensor:
    """Return ``value`` if it is a tensor of ``kind`` (``"float"``, ``"int"`` or ``"bool"``) and ``shape``.

    For loaded payloads: ``shape`` holds sizes, or ``None`` for any size
    (its length is the number of dimensions); a float tensor must be finite
    (NaN allowed with ``allow_nan``, Inf never).

    Raises:
        ValueError: naming ``name``, the expected and the found type or shape.
    """
    if not isinstance(value, Tensor) or not _KINDS[kind](value):
        found = value.dtype if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{name}: expected a {kind} tensor, got {found}")
    if value.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, value.shape)):
        wanted = " x ".join("*" if s is None else str(s) for s in shape) or "a scalar"
        raise ValueError(f"{name}: expected shape {wanted}, got {tuple(value.shape)}")
    if kind == "float":
        check_finite(name, torch.nan_to_num(value, nan=0.0) if allow_nan else value)
    return value
