"""The evidence tree of a decision: one node per supporting channel, layer by layer.

Trees are plain data: they export to JSON (:meth:`EvidenceNode.to_dict`,
:func:`save_tree`) and load back exactly (:func:`load_tree`), never through
pickle. A node still attached to its :class:`~captum_hint.gap.HierarchicalDecomposition`
can be expanded lazily with :meth:`EvidenceNode.expand`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = ["EvidenceNode", "save_tree", "load_tree"]

_FORMAT = "captum_hint.gap.EvidenceTree/1"


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
    def from_dict(cls, data: Dict[str, Any]) -> "EvidenceNode":
        """A tree from :meth:`to_dict` (maps included when they were saved)."""
        return cls(
            layer=data["layer"], channel=data["channel"], contribution=data["contribution"], share=data["share"],
            peak=None if data["peak"] is None else tuple(data["peak"]),
            peak_pixel=None if data["peak_pixel"] is None else tuple(data["peak_pixel"]),
            activation_map=None if data["activation_map"] is None else torch.tensor(data["activation_map"]),
            merged=list(data["merged"]), concepts=[(c, s) for c, s in data["concepts"]],
            children=[cls.from_dict(child) for child in data["children"]],
        )

    def describe(self, depth: int = 0) -> str:
        """An indented text rendering of the tree."""
        names = f" ({', '.join(c for c, _ in self.concepts)})" if self.concepts else ""
        where = f" peak {self.peak}" if self.peak is not None else ""
        line = (f"{'  ' * depth}{self.layer} #{self.channel}{names}: alpha {self.contribution:.4g}, "
                f"share {self.share:.2f}{where}")
        return "\n".join([line] + [child.describe(depth + 1) for child in self.children])


def save_tree(tree: EvidenceNode, path: Union[str, Path], include_maps: bool = True) -> None:
    """Write a tree as JSON."""
    Path(path).write_text(json.dumps({"format": _FORMAT, "tree": tree.to_dict(include_maps)}) + "\n",
                          encoding="utf-8")


def load_tree(path: Union[str, Path]) -> EvidenceNode:
    """A tree written by :func:`save_tree`.

    Raises:
        ValueError: the file is not a readable evidence tree.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            raise ValueError(f"format is {data.get('format')!r}")
        return EvidenceNode.from_dict(data["tree"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"path: {path} is not a readable evidence tree ({error})") from None
