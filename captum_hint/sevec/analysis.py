"""SeVec's quantitative tests (Gu & Tresp, Table 1 and Table 2).

* :func:`neuron_vs_vector_test`: does a *direction* or a single *unit* carry
  a concept? The representation at the layer is modified and the change of
  the concept's probability (the softmax mass on its leaves; for a class, its
  probability) is measured: multiplying by ``1[v_hat_c > 0.5]``, by a random
  permutation of that mask, raising the concept's most associated unit
  (``argmax v_c``) to 1.5 x the image's largest activation at the layer, or a
  random unit likewise. The paper (VGG16 fc1, ImageNet val): +0.19 for the
  vector, ~0 for the other three.
* :func:`accuracy_correlation`: Pearson correlation of the concepts'
  diversity ``D_c`` with the model's per-concept accuracy, and its p-value.
"""

from __future__ import annotations

from typing import Dict, Iterable, Sequence

import torch
from scipy import stats
from torch import Tensor

from ..concepts.scores import concept_scores
from ..core.checks import check_fraction
from ..core.model_state import evaluation_mode
from ..attr._base import check_image_batch
from ..datasets.samples import split_batch
from .vectors import SemanticVectors

__all__ = ["neuron_vs_vector_test", "accuracy_correlation", "concept_probabilities"]


def concept_probabilities(sevec: SemanticVectors, logits: Tensor) -> Tensor:
    """N x K probability of each fitted concept (softmax mass on its leaves; a class's own probability)."""
    if sevec.hierarchy is not None:
        return concept_scores(logits, sevec.hierarchy.membership(sevec.concepts_).to(logits.device)).exp()
    return logits.softmax(1)[:, torch.tensor(sevec.concepts_, device=logits.device)]


def _forward_modified(sevec: SemanticVectors, images: Tensor, modify) -> Tensor:
    """Logits with the layer's output (or input) replaced by ``modify(value)``."""
    layer = sevec.layer_module

    def on_output(module, args, output):
        return modify(output)

    def on_input(module, args):
        return (modify(args[0]),) + tuple(args[1:])

    handle = layer.register_forward_pre_hook(on_input) if sevec.use_layer_input else \
        layer.register_forward_hook(on_output)
    try:
        with torch.no_grad():
            return sevec.model(images)
    finally:
        handle.remove()


def _as_layer(values: Tensor, like: Tensor) -> Tensor:
    """N x D per-unit values shaped like the layer's N x C x H x W (pooled: per channel)."""
    if values.shape[1] == like[0].numel():
        return values.view(like.shape)
    return values.view(len(like), -1, *([1] * (like.dim() - 2))).expand_as(like)


def neuron_vs_vector_test(sevec: SemanticVectors, images: Tensor, concepts: Sequence, threshold: float = 0.5,
                          factor: float = 1.5, seed: int = 0) -> Dict[str, Tensor]:
    """Table 1: the change of each image's concept probability under four modifications.

    Args:
        sevec: fitted semantic vectors.
        images: N x C x H x W.
        concepts: N concepts of the fitted set (names or indices), one per image (its true concept).
        threshold: the mask keeps units with ``v_hat_c > threshold``.
        factor: a unit is raised to ``factor`` x the image's largest activation.
        seed: seeds the random permutation and the random unit (a private generator).

    Returns:
        ``{"semantic vector", "permuted vector", "associated unit", "random unit"}``: N changes each.
    """
    sevec._check_fitted()
    check_image_batch(images, "images")
    if len(concepts) != len(images):
        raise ValueError(f"concepts: expected {len(images)} (one per image), got {len(concepts)}")
    rows = torch.tensor([sevec.index(c) for c in concepts])
    check_fraction("threshold", threshold, allow_zero=True, allow_one=False)
    vectors = sevec.vectors_[rows]
    masks = (vectors / vectors.amax(1, keepdim=True).clamp_min(1e-12) > threshold).float()  # N x D, as unit_mask
    generator = torch.Generator().manual_seed(seed)
    permuted = masks.gather(1, torch.rand(masks.shape, generator=generator).argsort(1))
    associated = sevec.vectors_[rows].argmax(1)
    random_unit = torch.randint(masks.shape[1], (len(images),), generator=generator)

    def scaled(mask):
        return lambda value: value * _as_layer(mask.to(value.device, value.dtype), value)

    def raised(units):
        def modify(value):
            peak = value.flatten(1).amax(1)
            onehot = torch.nn.functional.one_hot(units.to(value.device), masks.shape[1]).to(value.dtype)
            onehot = _as_layer(onehot, value)
            target = (factor * peak).view(-1, *([1] * (value.dim() - 1)))
            return torch.where(onehot > 0, target.expand_as(value), value)
        return modify

    index = torch.arange(len(images))
    with evaluation_mode(sevec.model, "neuron_vs_vector_test", "images"):
        with torch.no_grad():
            before = concept_probabilities(sevec, sevec.model(images))[index, rows]
        results = {}
        for name, modify in (("semantic vector", scaled(masks)), ("permuted vector", scaled(permuted)),
                             ("associated unit", raised(associated)), ("random unit", raised(random_unit))):
            after = concept_probabilities(sevec, _forward_modified(sevec, images, modify))[index, rows]
            results[name] = (after - before).cpu()
    return results


def accuracy_correlation(sevec: SemanticVectors, dataloader: Iterable, min_images: int = 1) -> Dict[str, object]:
    """Table 2: Pearson correlation of ``D_c`` with the model's accuracy on each concept.

    An image under concept c is correct for c when the model's top-1 class is
    one of c's leaves (for class-index concepts: the class itself). Streams
    ``(images, labels)`` batches once.

    Returns:
        ``{"r", "p_value", "accuracy" (K, NaN without images), "n_concepts"}``.
    """
    sevec._check_fitted()
    correct = torch.zeros(len(sevec.concepts_))
    seen = torch.zeros(len(sevec.concepts_))
    for batch in dataloader:
        images, labels = split_batch(batch)
        check_image_batch(images, "images")
        with torch.no_grad(), evaluation_mode(sevec.model, "accuracy_correlation", "dataloader"):
            predicted = sevec.model(images).argmax(1).cpu()
        under = sevec._under(torch.as_tensor(labels).cpu()).float()  # N x K
        hit = sevec._under(predicted).float() if sevec.hierarchy is not None else \
            (predicted[:, None] == torch.tensor(sevec.concepts_)[None]).float()
        correct += (under * hit).sum(0)
        seen += under.sum(0)
    accuracy = torch.where(seen > 0, correct / seen.clamp_min(1), torch.nan)
    usable = seen >= min_images
    if usable.sum() < 3:
        raise ValueError(f"dataloader: only {int(usable.sum())} concepts have >= {min_images} images; need 3")
    for name, values in (("accuracy", accuracy[usable]), ("diversity_", sevec.diversity_[usable])):
        if bool((values == values[0]).all()):
            raise ValueError(f"dataloader: the {name} is {float(values[0]):.4g} for every one of the "
                             f"{int(usable.sum())} concepts, so its correlation is undefined")
    r, p = stats.pearsonr(sevec.diversity_[usable].numpy(), accuracy[usable].numpy())
    return {"r": float(r), "p_value": float(p), "accuracy": accuracy, "n_concepts": int(usable.sum())}

