"""From layer saliency to responsible regions (HINT, Sec. 3.1, Alg. 1 lines 6-8).

The layer saliency ``s`` (N x C x H x W) is aggregated over channels by ``zeta``
(the paper's default: the L2 norm), normalized per image to [0, 1], and split
by a threshold ``t``: positions with ``s_hat >= t`` are the concept's
*responsible region*, the rest *background*.

Normalization: per image, ``(s - min) / (q - min)`` clipped to [0, 1], where
``q`` is the ``percentile``-th percentile of that image's map (default 99,
linear interpolation between positions). A high percentile rather than the max
keeps a single extreme position from squashing the rest of the map towards 0;
``percentile=100`` gives plain min-max scaling. A constant map has no
responsible position (all zeros).
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr import LayerAttribution
from torch import Tensor

from ..core.checks import check_finite, check_fraction, check_number, check_positive_int, check_tensor

__all__ = [
    "AGGREGATIONS",
    "RegionBank",
    "Regions",
    "aggregate_saliency",
    "normalize_saliency",
    "responsible_regions",
    "training_targets",
]

Aggregation = Union[str, Callable[[Tensor], Tensor]]

#: Channel aggregations ``zeta``: N x C x H x W -> N x 1 x H x W.
AGGREGATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "l2": lambda s: torch.linalg.vector_norm(s, ord=2, dim=1, keepdim=True),
    "l1": lambda s: s.abs().sum(dim=1, keepdim=True),
    "sum": lambda s: s.sum(dim=1, keepdim=True),
    "max": lambda s: s.amax(dim=1, keepdim=True),
    "abs_max": lambda s: s.abs().amax(dim=1, keepdim=True),
}


class Regions(NamedTuple):
    """Responsible and background regions of a batch.

    Attributes:
        saliency: N x 1 x H x W normalized saliency in [0, 1].
        responsible: N x 1 x H x W bool, ``saliency >= threshold``.
        background: N x 1 x H x W bool, the complement.
    """

    saliency: Tensor
    responsible: Tensor
    background: Tensor


def _check_saliency(saliency: Tensor) -> None:
    if not isinstance(saliency, Tensor) or saliency.dim() != 4:
        shape = tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__
        raise ValueError(
            f"saliency: expected a layer saliency tensor shaped (N, C, H, W), got {shape}"
        )
    check_finite("saliency", saliency, "check the model's outputs and the target for those images")


def aggregate_saliency(saliency: Tensor, aggregation: Aggregation = "l2") -> Tensor:
    """Aggregate layer saliency over channels.

    Args:
        saliency: N x C x H x W.
        aggregation: a name in :data:`AGGREGATIONS` (``l2``, ``l1``, ``sum``,
            ``max``, ``abs_max``) or a callable mapping N x C x H x W to
            N x H x W or N x 1 x H x W.

    Returns:
        N x 1 x H x W.
    """
    _check_saliency(saliency)
    if callable(aggregation):
        zeta = aggregation
    elif aggregation in AGGREGATIONS:
        zeta = AGGREGATIONS[aggregation]
    else:
        raise ValueError(
            f"aggregation: unknown aggregation {aggregation!r}; expected one of "
            f"{', '.join(AGGREGATIONS)} or a callable"
        )
    out = zeta(saliency)
    n, _, h, w = saliency.shape
    if out.dim() == 3:
        out = out.unsqueeze(1)
    if tuple(out.shape) != (n, 1, h, w):
        raise ValueError(
            f"aggregation: expected the callable to return shape ({n}, 1, {h}, {w}) "
            f"or ({n}, {h}, {w}), got {tuple(out.shape)}"
        )
    return out


def normalize_saliency(aggregated: Tensor, percentile: float = 99.0) -> Tensor:
    """Scale each image's N x 1 x H x W map to [0, 1] (min to ``percentile``)."""
    _check_saliency(aggregated)
    check_number("percentile", percentile, 0.0, 100.0, low_open=True)
    flat = aggregated.flatten(1).float()
    low = flat.amin(dim=1, keepdim=True)
    high = torch.quantile(flat, percentile / 100.0, dim=1, keepdim=True)
    span = high - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), 0.0)
    return scaled.clamp_(0.0, 1.0).view_as(aggregated).to(aggregated.dtype)


def responsible_regions(
    saliency: Tensor,
    threshold: float = 0.5,
    aggregation: Aggregation = "l2",
    percentile: float = 99.0,
    size: Optional[Tuple[int, int]] = None,
    interpolate_mode: str = "bilinear",
) -> Regions:
    """Split every position of a layer saliency map into responsible / background.

    Args:
        saliency: N x C x H x W layer saliency (any method of :mod:`captum_hint.attr`).
        threshold: ``t`` in (0, 1); positions with normalized saliency ``>= t``
            are responsible. The paper uses 0.5.
        aggregation: channel aggregation ``zeta`` (see :func:`aggregate_saliency`).
        percentile: upper end of the per-image normalization.
        size: if given, ``(H', W')`` to upsample the normalized map to (with
            Captum's ``LayerAttribution.interpolate``) before thresholding, e.g.
            the input image size.
        interpolate_mode: mode for that upsampling.

    Returns:
        :class:`Regions` with N x 1 x H x W (or H' x W') tensors.
    """
    check_fraction("threshold", threshold, allow_one=False)
    normalized = normalize_saliency(aggregate_saliency(saliency, aggregation), percentile)
    if size is not None:
        normalized = LayerAttribution.interpolate(normalized, tuple(size), interpolate_mode)
    responsible = normalized >= threshold
    return Regions(normalized, responsible, ~responsible)


class RegionBank:
    """Bounded store of region feature vectors: one reservoir per concept plus background.

    Each reservoir keeps a uniform random sample of at most its capacity of
    the vectors offered to it (reservoir sampling, Algorithm R, applied a batch
    at a time), so memory stays bounded however long the stream. Every stored
    row remembers which of the K concepts its image is under (an image with
    objects of several classes can be under several) and the image it came
    from.

    Args:
        n_concepts: K concept reservoirs (bucket ``k``); background is bucket -1.
        max_per_concept: capacity of each concept reservoir.
        max_background: capacity of the background reservoir.
        dtype: storage dtype of the vectors (float16 halves the memory). When
            a vector exceeds float16's range (65504) the bank switches to
            float32, with a warning naming the largest activation, instead of
            storing Inf.
        seed: seeds the sampling.
    """

    def __init__(self, n_concepts: int, max_per_concept: int = 4000, max_background: int = 16000,
                 dtype: torch.dtype = torch.float16, seed: int = 0):
        check_positive_int("n_concepts", n_concepts)
        check_positive_int("max_per_concept", max_per_concept)
        check_positive_int("max_background", max_background)
        self.n_concepts = n_concepts
        self.capacity = [max_per_concept] * n_concepts + [max_background]
        self.dtype = dtype
        self.generator = torch.Generator().manual_seed(seed)
        self.seen = [0] * (n_concepts + 1)
        self._vectors: List[Optional[Tensor]] = [None] * (n_concepts + 1)
        self._under: List[Tensor] = [torch.empty(0, n_concepts, dtype=torch.bool)] * (n_concepts + 1)
        self._images: List[Tensor] = [torch.empty(0, dtype=torch.long)] * (n_concepts + 1)

    def add(self, vectors: Tensor, buckets: Tensor, under: Tensor, images: Tensor) -> None:
        """Offer M vectors (M x D) with their bucket (concept index or -1), image's concepts (M x K bool), image id."""
        vectors = check_finite("vectors", vectors.detach(), "check the layer's activations")
        if len(vectors) and self.dtype.is_floating_point and self.dtype.itemsize < 4:
            largest = vectors.abs().max().item()
            if largest > torch.finfo(self.dtype).max:
                self._widen(largest)
        vectors = vectors.to("cpu", self.dtype)
        if under.shape != (len(vectors), self.n_concepts):
            raise ValueError(f"under: expected {len(vectors)} x {self.n_concepts} booleans (the concepts each row's "
                             f"image is under), got shape {tuple(under.shape)}")
        buckets, under, images = buckets.cpu(), under.cpu().bool(), images.cpu()
        for bucket in buckets.unique().tolist():
            if not -1 <= bucket < self.n_concepts:
                raise ValueError(f"buckets: {bucket} is not a concept index (0..{self.n_concepts - 1}) or -1")
            chosen = buckets == bucket
            self._offer(bucket % (self.n_concepts + 1), vectors[chosen], under[chosen], images[chosen])

    def _widen(self, largest: float) -> None:
        """Switch storage to float32: ``largest`` would be Inf in the current dtype."""
        warnings.warn(
            f"RegionBank: an activation of {largest:.4g} exceeds {self.dtype}'s range "
            f"({torch.finfo(self.dtype).max:.4g}); storing the regions as float32 instead",
            stacklevel=3,
        )
        self.dtype = torch.float32
        self._vectors = [None if v is None else v.float() for v in self._vectors]

    def _offer(self, b: int, vectors: Tensor, under: Tensor, images: Tensor) -> None:
        capacity, seen, m = self.capacity[b], self.seen[b], len(vectors)
        position = seen + torch.arange(m)
        # Item i (0-based position in the stream) lands in slot i while there is
        # room, else in a uniform slot of [0, i] if that slot is < capacity.
        draw = (torch.rand(m, generator=self.generator, dtype=torch.float64) * (position + 1)).long()
        slots = torch.where(position < capacity, position, draw)
        keep = slots < capacity
        # Within one batch a later item overwrites an earlier one, as in the sequential algorithm.
        winner = torch.full((capacity,), -1, dtype=torch.long).scatter_reduce_(
            0, slots[keep], torch.arange(m)[keep], reduce="amax"
        )
        filled = min(capacity, seen + m)
        if self._vectors[b] is None or len(self._vectors[b]) < filled:
            grown = torch.zeros(filled, vectors.shape[1], dtype=self.dtype)
            grown_under = torch.zeros(filled, self.n_concepts, dtype=torch.bool)
            grown_images = torch.zeros(filled, dtype=torch.long)
            if self._vectors[b] is not None:
                old = len(self._vectors[b])
                grown[:old], grown_under[:old], grown_images[:old] = self._vectors[b], self._under[b], self._images[b]
            self._vectors[b], self._under[b], self._images[b] = grown, grown_under, grown_images
        slot_index = (winner >= 0).nonzero().flatten()
        source = winner[slot_index]
        self._vectors[b][slot_index] = vectors[source]
        self._under[b][slot_index] = under[source]
        self._images[b][slot_index] = images[source]
        self.seen[b] = seen + m

    def counts(self) -> Tensor:
        """Stored rows per bucket: K concept counts, then background."""
        return torch.tensor([0 if v is None else len(v) for v in self._vectors])

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored region vectors, their concept flags and image ids."""
        return sum(v.numel() * v.element_size() + (8 + self.n_concepts) * len(v) for v in self._vectors if v is not None)

    def rows(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """All stored rows: (vectors N x D, bucket N, concepts the image is under N x K, image id N)."""
        present = [b for b, v in enumerate(self._vectors) if v is not None]
        if not present:
            raise ValueError("regions: the bank is empty; no region was collected")
        vectors = torch.cat([self._vectors[b] for b in present])
        buckets = torch.cat([torch.full((len(self._vectors[b]),), b if b < self.n_concepts else -1) for b in present])
        under = torch.cat([self._under[b] for b in present])
        images = torch.cat([self._images[b] for b in present])
        return vectors, buckets, under, images

    def state_dict(self) -> Dict[str, Tensor]:
        """The bank as tensors only (reloads with ``torch.load(weights_only=True)``)."""
        vectors, buckets, under, images = self.rows()
        return {"vectors": vectors, "buckets": buckets, "under": under, "images": images,
                "seen": torch.tensor(self.seen), "capacity": torch.tensor(self.capacity)}

    @classmethod
    def merge(cls, banks: Sequence["RegionBank"], seed: int = 0) -> "RegionBank":
        """One bank holding, per bucket, a uniform sample of the union of the banks' streams.

        How many rows of the merged reservoir come from each bank is drawn
        from the multivariate hypergeometric distribution over the numbers of
        vectors each bank was *offered* (``seen``), then that many of its
        stored rows are drawn at random: the result is distributed exactly as
        one reservoir fed every stream. When no bank dropped a row and the
        union fits, every row is kept. Rows are ordered by image id (stable),
        so banks of disjoint image shards merge into the order one pass over
        all images gives.
        """
        if not banks:
            raise ValueError("banks: expected at least one RegionBank")
        first = banks[0]
        if any(bank.capacity != first.capacity for bank in banks):
            raise ValueError("banks: every bank must have the same concepts and capacities")
        dtype = torch.float32 if any(bank.dtype == torch.float32 for bank in banks) else first.dtype
        merged = cls(first.n_concepts, first.capacity[0] if first.n_concepts else 1, first.capacity[-1], dtype, seed)
        merged.capacity = list(first.capacity)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        for b, capacity in enumerate(first.capacity):
            seen = [bank.seen[b] for bank in banks]
            if sum(seen) == 0:
                continue
            parts = [(bank._vectors[b], bank._under[b], bank._images[b]) for bank, n in zip(banks, seen) if n]
            dropped = any(n and len(bank._vectors[b]) < n for bank, n in zip(banks, seen))
            if sum(seen) > capacity or dropped:
                counts = rng.multivariate_hypergeometric(seen, min(capacity, sum(seen)), method="marginals")
                parts = [tuple(t[torch.randperm(len(p[0]), generator=generator)[:c].sort().values] for t in p)
                         for p, c in zip(parts, [int(c) for c, n in zip(counts, seen) if n])]
            vectors, under, images = (torch.cat(column) for column in zip(*parts))
            order = torch.sort(images, stable=True).indices
            merged._vectors[b] = vectors[order].to(dtype)
            merged._under[b], merged._images[b] = under[order], images[order]
        merged.seen = [sum(bank.seen[b] for bank in banks) for b in range(len(first.capacity))]
        return merged

    @classmethod
    def from_state_dict(cls, state: Dict[str, Tensor], seed: int = 0) -> "RegionBank":
        """A bank from :meth:`state_dict`; ``seed`` seeds its further reservoir draws.

        Raises:
            ValueError: a missing entry, or one of the wrong type or shape.
        """
        if not isinstance(state, dict) or {"vectors", "buckets", "under", "images", "seen", "capacity"} - set(state):
            raise ValueError("state: expected the entries vectors, buckets, under, images, seen and capacity")
        capacity = check_tensor("state['capacity']", state["capacity"], "int", (None,)).tolist()
        if len(capacity) < 2 or min(capacity) < 1:
            raise ValueError(f"state['capacity']: expected at least 2 capacities >= 1, got {capacity}")
        n = len(check_tensor("state['vectors']", state["vectors"], "float", (None, None)))
        check_tensor("state['buckets']", state["buckets"], "int", (n,))
        check_tensor("state['under']", state["under"], "bool", (n, len(capacity) - 1))
        check_tensor("state['images']", state["images"], "int", (n,))
        check_tensor("state['seen']", state["seen"], "int", (len(capacity),))
        if n and not bool(((state["buckets"] >= -1) & (state["buckets"] < len(capacity) - 1)).all()):
            raise ValueError(f"state['buckets']: expected values in -1..{len(capacity) - 2}")
        bank = cls(len(capacity) - 1, capacity[0] if len(capacity) > 1 else 1, capacity[-1], state["vectors"].dtype, seed)
        bank.capacity = capacity
        for b in range(len(capacity)):
            chosen = state["buckets"] == (b if b < bank.n_concepts else -1)
            if chosen.any():
                bank._vectors[b] = state["vectors"][chosen].clone()
                bank._under[b] = state["under"][chosen].clone()
                bank._images[b] = state["images"][chosen].clone()
        bank.seen = state["seen"].tolist()
        return bank


def training_targets(buckets: Tensor, under: Tensor) -> Tensor:
    """N x K concept-classifier targets for bank rows (Alg. 1 line 10).

    Args:
        buckets: N row buckets (concept index, or -1 for background).
        under: N x K, True where the row's image is under concept k.

    Returns:
        int8 N x K: 1 for concept k's responsible regions; 0 for background
        and for regions of images not under k; ``-1`` (ignored) for other
        concepts' regions of images under k, which are not negatives for k.
    """
    k = torch.arange(under.shape[1])
    positive = buckets[:, None] == k[None]
    negative = (buckets[:, None] == -1) | ~under
    return torch.where(positive, 1, torch.where(negative, 0, -1)).to(torch.int8)
