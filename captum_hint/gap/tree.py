"""The evidence tree of a decision: one node per supporting channel, layer by layer.

Trees are plain data: they export to JSON (:meth:`EvidenceNode.to_dict`,
:func:`save_tree`) and load back exactly (:func:`load_tree`), never through
pickle. A node still attached to its :class:`~captum_hint.gap.HierarchicalDecomposition`
can be expanded lazily with :meth:`EvidenceNode.expand`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = ["EvidenceNode", "save_tree", "load_tree"]

_FORMAT = "captum_hint.gap.EvidenceTree/1"
_FIELDS = ("layer", "channel", "contribution", "share", "peak", "peak_pixel", "activation_map", "merged", "concepts",
           "children")


@dataclass
class EvidenceNode:
    """One piece of evidence for its parent's decision.

    Attributes:
        layer: the layer's dotted name; ``"output"`` for the root (the decision itself).
        channel: the channel at ``layer`` (the root: the class index, or -1 for a concept).
        contribution: ``alpha_k`` to the parent's decision (Eq. 4); the root: the decision's value.
        share: ``alpha_k / sum_j max(alpha_j, 0)`` over the parent's channels: its share
            of the parent's positive evidence (the root: 1).
        peak: (row, col) of the channel's peak at ``layer`` (Eq. 5), the feature decomposed next.
        peak_pixel: the peak's centre in input pixels (row, col): ``(i + 0.5) * H_in / H - 0.5``.
        activation_map: H x W activation map ``A_k`` at ``layer``, or None.
        merged: channels whose thresholded maps overlapped this one's with IoU > the
            NMS threshold, merged into it (Sec. 4.1).
        concepts: (concept, score) pairs naming the channel, from a fitted HINT at ``layer``.
        children: the evidence for this node, most contributing first.
    """

    layer: str
    channel: int
    contribution: float
    share: float = 1.0
    peak: Optional[Tuple[int, int]] = None
    peak_pixel: Optional[Tuple[float, float]] = None
    activation_map: Optional[Tensor] = None
    merged: List[int] = field(default_factory=list)
    concepts: List[Tuple[str, float]] = field(default_factory=list)
    children: List["EvidenceNode"] = field(default_factory=list)
    _expand: Optional[Callable[["EvidenceNode", int], List["EvidenceNode"]]] = field(
        default=None, repr=False, compare=False)

    def expand(self, top_k: int = 3) -> List["EvidenceNode"]:
        """Decompose this node into the next lower layer (replacing its children); returns them.

        Raises:
            RuntimeError: the node is not attached to a decomposition (e.g. loaded from JSON),
                or it is at the lowest layer.
        """
        if self._expand is None:
            raise RuntimeError("expand: this node is not attached to a HierarchicalDecomposition "
                               "(trees loaded from JSON cannot be expanded)")
        self.children = self._expand(self, top_k)
        return self.children

    def walk(self) -> Iterator["EvidenceNode"]:
        """This node and all its descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self, include_maps: bool = True) -> Dict[str, Any]:
        """JSON-ready nested dicts (maps as nested lists of floats)."""
        return {
            "layer": self.layer, "channel": self.channel, "contribution": self.contribution, "share": self.share,
            "peak": None if self.peak is None else list(self.peak),
            "peak_pixel": None if self.peak_pixel is None else list(self.peak_pixel),
            "activation_map": (self.activation_map.tolist() if include_maps and self.activation_map is not None
                               else None),
            "merged": list(self.merged), "concepts": [[c, s] for c, s in self.concepts],
            "children": [child.to_dict(include_maps) for child in self.children],
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], where: str = "tree") -> "EvidenceNode":
        """A tree from :meth:`to_dict` (maps included when they were saved).

        Raises:
            ValueError: naming the node (``where``: ``tree.children[0]...``)
                and the field that is missing or of the wrong type or range.
        """
        _check_node(data, where)
        return cls(
            layer=data["layer"], channel=data["channel"], contribution=data["contribution"], share=data["share"],
            peak=None if data["peak"] is None else tuple(data["peak"]),
            peak_pixel=None if data["peak_pixel"] is None else tuple(data["peak_pixel"]),
            activation_map=None if data["activation_map"] is None else torch.tensor(data["activation_map"]),
            merged=list(data["merged"]), concepts=[(c, s) for c, s in data["concepts"]],
            children=[cls.from_dict(child, f"{where}.children[{i}]") for i, child in enumerate(data["children"])],
        )

    def describe(self, depth: int = 0) -> str:
        """An indented text rendering of the tree."""
        names = f" ({', '.join(c for c, _ in self.concepts)})" if self.concepts else ""
        where = f" peak {self.peak}" if self.peak is not None else ""
        line = (f"{'  ' * depth}{self.layer} #{self.channel}{names}: alpha {self.contribution:.4g}, "
                f"share {self.share:.2f}{where}")
        return "\n".join([line] + [child.describe(depth + 1) for child in self.children])


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value, check) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2 and all(check(v) for v in value))


def _check_node(data, where: str) -> None:
    """Raise ValueError unless ``data`` is a node as :meth:`EvidenceNode.to_dict` writes it."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a node (a JSON object), got {type(data).__name__}")
    missing = [key for key in _FIELDS if key not in data]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    rules = {
        "layer": (isinstance(data["layer"], str) and data["layer"], "a layer name"),
        "channel": (_is_int(data["channel"]) and data["channel"] >= -1, "an integer >= -1"),
        "contribution": (_is_finite(data["contribution"]), "a finite number"),
        "share": (_is_finite(data["share"]) and 0 <= data["share"] <= 1 + 1e-6, "a number in [0, 1]"),
        "peak": (_pair(data["peak"], lambda v: _is_int(v) and v >= 0), "null or two integers >= 0"),
        "peak_pixel": (_pair(data["peak_pixel"], _is_finite), "null or two finite numbers"),
        "activation_map": (data["activation_map"] is None or (
            isinstance(data["activation_map"], list) and data["activation_map"]
            and all(isinstance(row, list) and len(row) == len(data["activation_map"][0]) and row
                    and all(_is_finite(v) for v in row) for row in data["activation_map"])),
            "null or rows of finite numbers of equal length"),
        "merged": (isinstance(data["merged"], list) and all(_is_int(c) and c >= 0 for c in data["merged"]),
                   "a list of channels (integers >= 0)"),
        "concepts": (isinstance(data["concepts"], list) and all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and _is_finite(pair[1])
            for pair in data["concepts"]), "a list of [concept, score] pairs"),
        "children": (isinstance(data["children"], list), "a list of nodes"),
    }
    for key, (holds, expected) in rules.items():
        if not holds:
            raise ValueError(f"{where}.{key}: expected {expected}, got {data[key]!r:.80}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def save_tree(tree: EvidenceNode, path: Union[str, Path], include_maps: bool = True) -> None:
    """Write a tree as JSON (strict: a NaN or Inf anywhere is refused, JSON has no literal for it)."""
    try:
        text = json.dumps({"format": _FORMAT, "tree": tree.to_dict(include_maps)}, allow_nan=False)
    except ValueError:
        bad = next(node for node in tree.walk() if not all(math.isfinite(v) for v in (
            node.contribution, node.share, *(node.activation_map.flatten().tolist() if include_maps and
                                             node.activation_map is not None else []))))
        raise ValueError(f"tree: node {bad.layer} #{bad.channel} holds NaN or Inf (contribution "
                         f"{bad.contribution}, share {bad.share}); not written") from None
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_tree(path: Union[str, Path]) -> EvidenceNode:
    """A tree written by :func:`save_tree`.

    Raises:
        ValueError: the file is not a readable evidence tree.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"format is {data.get('format') if isinstance(data, dict) else None!r}")
        return EvidenceNode.from_dict(data.get("tree"))
    except RecursionError:
        raise ValueError(f"path: {path} is not a readable evidence tree (nested deeper than Python can read)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"path: {path} is not a readable evidence tree ({error})") from None
