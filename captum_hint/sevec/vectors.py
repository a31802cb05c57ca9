"""Semantic vectors (Gu & Tresp, Sec. 3, Eq. 3): one direction in feature space per concept.

For a concept c with images ``x_i`` (i = 1..M), the binarized representation
is ``a_i = 1[phi(x_i) > 0]`` and the semantic vector is ``v_c = A / |A|`` with
``A = sum_i a_i / |a_i|`` — the unit vector closest, in summed cosine, to every
``a_i``. Its diversity is ``D_c = 1 - mean_i cos(a_i, v_c)``, which equals
``1 - |A| / M`` (since ``a_i/|a_i| . v_c`` summed over i is ``A . v_c = |A|``),
so one streaming pass gives both.

``phi`` is a layer's output (or input):

* ``representation="spatial"``: flattened with its positions, D = C x H x W
  (the paper's choice at VGG16's ``pool5``, which keeps *where* a pattern is);
* ``representation="pooled"``: the spatial mean per channel, D = C (like the
  paper's ``fc1``: what is present, not where).

Binarization needs a rectified layer (``phi >= 0``): a signed layer (a
BatchNorm output, EfficientNet's block outputs) would binarize into signs,
not activity, and is refused; on EfficientNet-Lite use the input of
``_avg_pooling`` (``use_layer_input=True``), the ReLU6 output of its head.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..attr._base import LayerSpec, check_image_batch, resolve_layer
from ..attr.activation_propagation import layer_output
from ..concepts.hierarchy import ConceptHierarchy
from ..core.checks import check_binary, check_finite, check_fraction
from ..core.model_state import evaluation_mode, model_device
from ..datasets.samples import split_batch

__all__ = ["SemanticVectors", "layer_representation"]

_REPRESENTATIONS = ("spatial", "pooled")


def layer_representation(model: nn.Module, layer: nn.Module, images: Tensor, representation: str = "spatial",
                         use_layer_input: bool = False) -> Tensor:
    """``phi(x)``: N x D features of a layer's output (or input), flattened or pooled; no gradients."""
    phi = layer_output(model, layer, images, layer_input=use_layer_input)
    if not isinstance(phi, Tensor) or phi.dim() < 2:
        raise ValueError(f"layer: expected a tensor output with a batch dimension, got {type(phi).__name__}")
    if representation == "pooled" and phi.dim() > 2:
        phi = phi.flatten(2).mean(-1)
    return check_finite("layer output", phi.flatten(1))


class SemanticVectors:
    """Semantic vectors of concepts at one layer, fitted from labelled images in one streaming pass.

    Args:
        model: the classifier.
        layer: module or dotted name; its output (or input) must be >= 0.
        concepts: concept names of ``hierarchy`` (an image counts for every
            concept of the set above its leaf label), or, without a
            hierarchy, class indices (an image counts for its own label).
        hierarchy: a :class:`~captum_hint.ConceptHierarchy` over the model's classes.
        representation: ``"spatial"`` or ``"pooled"`` (see the module docstring).
        use_layer_input: take the layer's input instead of its output.
        progress: show a tqdm bar.
        device: where the model runs (default: its parameters' device); batches are moved there.

    Fitted attributes: ``vectors_`` (K x D unit vectors), ``counts_`` (K images),
    ``diversity_`` (K values ``D_c`` in [0, 1]), ``concepts_`` (K names or indices),
    ``n_unused_`` (images under none of the concepts; without a hierarchy,
    :meth:`fit` warns about them: their label is another class).
    """

    def __init__(self, model: nn.Module, layer: LayerSpec, concepts: Sequence[Union[str, int]],
                 hierarchy: Optional[ConceptHierarchy] = None, representation: str = "spatial",
                 use_layer_input: bool = False, progress: bool = True, device=None):
        if representation not in _REPRESENTATIONS:
            raise ValueError(f"representation: expected 'spatial' or 'pooled', got {representation!r}")
        if len(concepts) == 0:
            raise ValueError("concepts: expected at least one concept")
        self.model, self.layer = model, layer
        self.layer_module = resolve_layer(model, layer)
        self.hierarchy, self.representation = hierarchy, representation
        self.use_layer_input, self.progress = use_layer_input, progress
        self.device = model_device(model, device)
        if hierarchy is not None:
            self.concepts_ = [hierarchy.lookup(c) for c in concepts]
            self._membership = hierarchy.membership(self.concepts_)  # K x C
        else:
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in concepts):
                raise TypeError("concepts: without a hierarchy, concepts are class indices (ints >= 0)")
            self.concepts_ = list(concepts)
            self._membership = None

    def _under(self, labels: Tensor) -> Tensor:
        """N x K: image n counts for concept k (for every concept above any of its leaves)."""
        if self._membership is not None:
            return self.hierarchy.under_concepts(self.hierarchy.leaf_indicator(labels), self._membership)
        if labels.dim() == 2:  # N x C leaf indicators
            if max(self.concepts_) >= labels.shape[1]:
                raise ValueError(f"labels: expected a column for class {max(self.concepts_)}, got shape "
                                 f"{tuple(labels.shape)}")
            return check_binary("labels", labels)[:, self.concepts_]
        return labels[:, None] == torch.tensor(self.concepts_)[None]

    def features(self, images: Tensor) -> Tensor:
        """``phi(x)`` for a batch (N x D), the model run in eval mode."""
        check_image_batch(images, "images")
        with evaluation_mode(self.model, "SemanticVectors", "images"):
            return layer_representation(self.model, self.layer_module, images.to(self.device), self.representation,
                                        self.use_layer_input)

    def fit(self, dataloader: Iterable) -> "SemanticVectors":
        """Stream ``(images, labels)`` batches once; returns self.

        ``labels`` are N leaf class indices, or an N x C 0/1 matrix when an
        image holds objects of several classes: it then counts for every
        concept above any of them.

        Memory: a K x D running sum, whatever the number of images.

        Raises:
            ValueError: the layer's output is negative somewhere (binarization
                would be meaningless), a concept has no images, or widths differ
                between batches.
        """
        total: Optional[Tensor] = None
        counts = torch.zeros(len(self.concepts_), dtype=torch.long)
        unused, unknown = 0, set()
        for batch in tqdm(dataloader, desc="semantic vectors", disable=not self.progress):
            images, labels = split_batch(batch)
            if labels is None:
                raise ValueError("dataloader: SemanticVectors needs labels (the images' leaf classes)")
            phi = self.features(images)
            if bool((phi < 0).any()):
                raise ValueError(
                    f"layer: {self.layer!r} gives negative values (min {float(phi.min()):.3g}); the binarization "
                    "1[phi > 0] is meant for rectified layers, where it marks active units. Choose a layer "
                    "after a ReLU (or its input, use_layer_input=True)")
            active = (phi > 0).float()
            unit = active / active.norm(dim=1, keepdim=True).clamp_min(1e-12)  # a_i / |a_i|
            labels = torch.as_tensor(labels).cpu()
            if labels.dim() == 1 and bool((labels < 0).any()):
                raise ValueError(f"labels: expected class indices >= 0, got {int(labels.min())}")
            under = self._under(labels).float()  # N x K
            none = under.sum(1) == 0
            unused += int(none.sum())
            if self.hierarchy is None and labels.dim() == 1:
                unknown.update(labels[none].tolist())
            if total is None:
                total = torch.zeros(len(self.concepts_), phi.shape[1])
            elif phi.shape[1] != total.shape[1]:
                raise ValueError(f"layer: width {phi.shape[1]} differs from earlier batches' {total.shape[1]}")
            total += under.T @ unit.cpu()
            counts += under.sum(0).long()
        if total is None:
            raise ValueError("dataloader: it yielded no batch")
        empty = [str(c) for c, n in zip(self.concepts_, counts.tolist()) if n == 0]
        if empty:
            raise ValueError(f"concepts: no image for {', '.join(empty)}; add images of them or drop them")
        if unknown:  # without a hierarchy the concepts are the classes: another class is likely a mistake
            warnings.warn(f"SemanticVectors.fit: {unused} image(s) have labels that are none of the concepts "
                          f"(e.g. {sorted(unknown)[:5]}); they count for no concept", stacklevel=2)
        norms = total.norm(dim=1)
        self.vectors_ = total / norms[:, None].clamp_min(1e-12)
        self.counts_, self.n_unused_ = counts, unused
        self.diversity_ = (1 - norms / counts).clamp(0, 1)
        return self

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "vectors_"):
            raise RuntimeError("SemanticVectors: call fit() first")

    def index(self, concept: Union[str, int]) -> int:
        """Row of ``concept`` in ``vectors_``."""
        key = self.hierarchy.lookup(concept) if self.hierarchy is not None and isinstance(concept, str) else concept
        if key not in self.concepts_:
            raise ValueError(f"concept: {concept!r} is not among the fitted concepts")
        return self.concepts_.index(key)

    def vector(self, concept: Union[str, int]) -> Tensor:
        """The semantic vector ``v_c`` (D)."""
        self._check_fitted()
        return self.vectors_[self.index(concept)]

    def unit_mask(self, concept: Union[str, int], threshold: float = 0.5) -> Tensor:
        """``1[v_hat_c > threshold]`` with ``v_hat_c = v_c / max(v_c)`` (D booleans).

        Scaling to a maximum of 1 makes the threshold a fraction of the most
        consistently active unit's rate: with ``v_c`` proportional to the
        units' activation rates, 0.5 keeps the units active in at least half
        as many images as the most active one.
        """
        check_fraction("threshold", threshold, allow_zero=True, allow_one=False)
        v = self.vector(concept)
        return v / v.max().clamp_min(1e-12) > threshold

    def relevance(self) -> Tensor:
        """K x K cosine between semantic vectors, ``cos(v_a, v_b)`` (Fig. 5)."""
        self._check_fitted()
        return self.vectors_ @ self.vectors_.T

    def similarity(self, images: Tensor) -> Tensor:
        """N x K cosine between each image's ``phi(x)`` and every ``v_c`` (Eq. 2's f)."""
        self._check_fitted()
        phi = self.features(images)
        if phi.shape[1] != self.vectors_.shape[1]:
            raise ValueError(f"images: give {phi.shape[1]}-dim features at this layer; the vectors have "
                             f"{self.vectors_.shape[1]}")
        return (phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ self.vectors_.T

    def retrieve(self, dataloader: Iterable, n: int = 8) -> Tensor:
        """K x n indices (into the stream's images) nearest to each ``v_c`` by cosine (Eq. 2).

        Streams ``dataloader`` once, keeping only the running top-n per concept.
        """
        self._check_fitted()
        best_scores = torch.full((len(self.concepts_), 0), float("-inf"))
        best_index = torch.zeros(len(self.concepts_), 0, dtype=torch.long)
        seen = 0
        for batch in dataloader:
            images = split_batch(batch)[0]
            scores = self.similarity(images).T  # K x N
            index = torch.arange(seen, seen + images.shape[0]).expand_as(scores)
            merged_scores = torch.cat([best_scores, scores], 1)
            merged_index = torch.cat([best_index, index], 1)
            top = merged_scores.topk(min(n, merged_scores.shape[1]), dim=1)
            best_scores, best_index = top.values, merged_index.gather(1, top.indices)
            seen += images.shape[0]
        return best_index

    def sibling_cosines(self) -> dict:
        """Mean cosine between siblings vs between unrelated concepts of the fitted set.

        Siblings share a parent in the hierarchy. Unrelated pairs meet only at
        the top of the set: they share no ancestor (nor are one another's
        ancestor) below the lowest common ancestor of all fitted concepts
        (e.g. a mammal and a wheeled vehicle, meeting at *whole*). Does the
        network's geometry follow the hierarchy?
        """
        self._check_fitted()
        if self.hierarchy is None:
            raise ValueError("hierarchy: sibling cosines need the concept hierarchy")
        relevance = self.relevance()
        top = self.hierarchy.lowest_common_ancestor(*self.concepts_)
        shared_top = set(self.hierarchy.ancestors(top)) | {top}
        lineage = [(set(self.hierarchy.ancestors(c)) | {c}) - shared_top for c in self.concepts_]
        below = sorted(set().union(*lineage))
        parents = sorted({p for c in self.concepts_ for p in self.hierarchy.parents(c)})
        parent_of = torch.tensor([[p in self.hierarchy.parents(c) for p in parents] for c in self.concepts_]).float()
        within = torch.tensor([[a in line for a in below] for line in lineage]).float()
        pairs = torch.triu(torch.ones_like(relevance, dtype=torch.bool), diagonal=1)
        sibling = (parent_of @ parent_of.T > 0) & pairs
        unrelated = (within @ within.T == 0) & pairs
        siblings, unrelated = relevance[sibling].tolist(), relevance[unrelated].tolist()
        mean = lambda values: sum(values) / len(values) if values else float("nan")  # noqa: E731
        return {"siblings": mean(siblings), "unrelated": mean(unrelated), "top": top,
                "n_sibling_pairs": len(siblings), "n_unrelated_pairs": len(unrelated)}

