"""HINT's data pass: images -> layer saliency -> responsible regions -> region banks.

One forward pass per batch serves every concept of every image and every
layer being fitted (:class:`~captum_hint.attr.shared_pass.SharedPassSaliency`),
and the regions of each layer go to that layer's bounded
:class:`~captum_hint.hint.regions.RegionBank`. Under ``torch.distributed``
each rank streams its own shard and the banks are merged afterwards
(:mod:`captum_hint.hint.distributed`).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..attr import SALIENCY_METHODS
from ..attr._base import check_image_batch, check_spatial
from ..attr.shared_pass import SharedPassSaliency
from ..concepts.scores import ConceptScore
from ..datasets.samples import concept_cells, object_classes, split_batch
from .distributed import merge_banks_across_ranks, rank_and_world, sum_across_ranks
from .regions import RegionBank, responsible_regions

__all__ = ["FROM_GRADIENT", "LABEL_SOURCES", "REGION_RULES", "check_label_source", "shared_pass_settings",
           "stream_regions"]

#: How :class:`HINT` finds a concept's responsible positions (see its ``regions`` argument).
REGION_RULES = ("saliency", "saliency_on_objects")

#: Where :meth:`HINT.fit` takes each image's leaf labels from (see its ``labels`` argument).
LABEL_SOURCES = ("given", "predicted", "objects")


def check_label_source(labels: str) -> None:
    """Raise a ValueError naming ``labels`` unless it is one of :data:`LABEL_SOURCES`."""
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels: expected one of {', '.join(map(repr, LABEL_SOURCES))}, got {labels!r}")


#: HINT ``saliency_kwargs`` each shared-pass method understands, and the name the pass gives them.
_SETTINGS = {
    "smoothgrad": {"n_samples": "n_samples", "noise_level": "noise_level", "seed": "seed", "generator": "generator",
                   "nt_samples_batch_size": None},
    "integrated_gradients": {"n_steps": "n_steps", "method": "integration", "baselines": "baselines",
                             "internal_batch_size": None},
}


def shared_pass_settings(method: str, saliency_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The :meth:`SharedPassSaliency.collect` keywords for HINT's ``saliency_kwargs``.

    Batch-size arguments (``nt_samples_batch_size``, ``internal_batch_size``)
    are accepted and superseded by HINT's ``batch_size`` (rows per pass).
    """
    known = _SETTINGS.get(method, {})
    unknown = sorted(set(saliency_kwargs) - set(known))
    if unknown:
        expected = ", ".join(known) if known else "none"
        raise ValueError(f"saliency_kwargs: {', '.join(map(repr, unknown))} not understood by {method!r} "
                         f"(expected: {expected})")
    return {known[k]: v for k, v in saliency_kwargs.items() if known[k] is not None}


def _layer_rows(hint, activations: Tensor, saliency: Tensor, pair_image: Tensor, pair_concept: Tensor,
                under: Tensor, image_ids: Tensor, raw: Any, membership: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bank rows (vectors, buckets, concepts of the row's image, image ids) of one layer for one batch.

    ``raw`` (the batch as the data loader gave it) supplies the object masks,
    ``membership`` (K x C, the concepts' leaves) their concepts, when
    ``hint.regions`` is ``"saliency_on_objects"``.
    """
    check_spatial(hint.layer, activations, "HINT")
    regions = responsible_regions(saliency, hint.threshold, hint.aggregation, hint.percentile)
    responsible = regions.responsible[:, 0].cpu()  # P x h x w
    if hint.regions == "saliency_on_objects":
        cells = concept_cells(raw, membership, tuple(responsible.shape[1:]))
        responsible &= cells[pair_image, pair_concept]
        # Background: positions on no object of the image's concepts (other objects included).
        background = ~cells.any(1) & under.any(1)[:, None, None]
    else:
        # Background: positions responsible for none of the image's concepts.
        any_responsible = torch.zeros(activations.shape[0], *responsible.shape[1:], dtype=torch.bool)
        any_responsible.index_put_((pair_image,), responsible, accumulate=True)
        background = ~any_responsible & under.any(1)[:, None, None]
    positions = activations.permute(0, 2, 3, 1).cpu()  # N x h x w x D
    p, i, j = responsible.nonzero(as_tuple=True)
    n, bi, bj = background.nonzero(as_tuple=True)
    rows_image = torch.cat([pair_image[p], n])
    return (torch.cat([positions[pair_image[p], i, j], positions[n, bi, bj]]),
            torch.cat([pair_concept[p], torch.full((len(n),), -1)]), under[rows_image], image_ids[rows_image])


class _Batch:
    """Labels of one batch, decided from the given labels or from the logits of its first pass.

    Given labels are N leaf indices, or an N x C 0/1 matrix when images hold
    objects of several classes: an image is then under every concept one of
    its leaves is under, and gets one (image, concept) pair for each.
    """

    def __init__(self, lead, membership: Tensor, given, labels: str):
        self.lead, self.membership, self.given, self.labels = lead, membership, given, labels
        self.under_parts: List[Tensor] = []

    def select(self, logits: Tensor, first: int) -> Tuple[Tensor, Tensor]:
        hierarchy = self.lead.hierarchy
        if logits.shape[1] != hierarchy.num_classes:
            raise ValueError(f"hierarchy: has {hierarchy.num_classes} leaves but the model gives "
                             f"{logits.shape[1]} classes")
        if self.labels == "predicted" or self.given is None:
            leaves = hierarchy.leaf_indicator(logits.argmax(1).cpu())
        else:
            leaves = hierarchy.leaf_indicator(torch.as_tensor(self.given)[first : first + len(logits)].cpu())
        under = hierarchy.under_concepts(leaves, self.membership)  # N x K
        self.under_parts.append(under)
        if self.lead.saliency_target == "leaf":
            if not (leaves.sum(1) == 1).all():
                raise ValueError("labels: saliency_target='leaf' explains the one class of each image; with "
                                 "several (or no) leaf labels per image use saliency_target='concept'")
            return torch.arange(len(leaves)), leaves.int().argmax(1)
        return under.nonzero(as_tuple=True)

    @property
    def under(self) -> Tensor:
        """N x K: the concepts each image of the batch is under."""
        return torch.cat(self.under_parts)


#: Saliency methods read from one gradient pass: gradient x input is the gradient times the activation.
FROM_GRADIENT = ("gradient", "gradient_x_input")


class _SaliencyPass:
    """Saliency of one batch for every HINT being fitted; the shared-pass method is built once per stream.

    The HINTs share the saliency method and differ in layer, except that
    gradient and gradient x input HINTs (on any layers) share one pass.
    """

    def __init__(self, hints, generator):
        self.hints = hints
        lead = self.lead = hints[0]
        self.concept_target = lead.saliency_target == "concept"
        self.leaf_sets = [lead.hierarchy.leaves_under(c) for c in lead.concepts] if self.concept_target else None
        self.method = None
        if lead.saliency in SALIENCY_METHODS:
            from_gradient = all(hint.saliency in FROM_GRADIENT for hint in hints)
            layers = list(dict.fromkeys(hint.layer_module for hint in hints))
            self.layer_of = [layers.index(hint.layer_module) for hint in hints]
            self.times_activation = [from_gradient and hint.saliency == "gradient_x_input" for hint in hints]
            self.method = SharedPassSaliency(lead.model, layers, "gradient" if from_gradient else lead.saliency,
                                             concepts=self.leaf_sets, concept_score=lead.concept_score)
            self.settings = shared_pass_settings(lead.saliency, lead.saliency_kwargs)
            if lead.saliency == "smoothgrad" and "seed" not in self.settings and "generator" not in self.settings:
                self.settings["generator"] = generator
        else:  # a user's saliency class explains column k of the concept scores (or a class logit)
            self.forward_func = (ConceptScore(lead.model, self.leaf_sets, lead.concept_score) if self.concept_target
                                 else lead.model)

    def __call__(self, images: Tensor, batch: _Batch):
        """(activations per layer, saliency per layer, pair images, pair concepts, N x K image concepts)."""
        if self.method is not None:
            result = self.method.collect(images, batch.select, max_rows=self.lead.batch_size, **self.settings)
            pair_image, pair_column = result.pair_image, result.pair_column
            activations = [result.activations[i] for i in self.layer_of]
            saliency = [result.saliency[i] * activations[h][pair_image.to(activations[h].device)] if times else
                        result.saliency[i] for h, (i, times) in enumerate(zip(self.layer_of, self.times_activation))]
        else:  # a user's saliency class: one call per pair batch, after a forward for the labels
            activations, logits = [], None
            for hint in self.hints:
                logits, features = hint._forward_with_features(images)
                activations.append(features)
            pair_image, pair_column = batch.select(logits, 0)
            saliency = [hint._saliency(images[pair_image.to(images.device)], pair_column.tolist(), self.forward_func)
                        for hint in self.hints]
        under = batch.under
        if not self.concept_target:  # one map per image, shared by the concepts it falls under
            pair_image, pair_column = under.nonzero(as_tuple=True)
            saliency = [s[pair_image.to(s.device)] for s in saliency]
        return activations, saliency, pair_image, pair_column, under


def _check_not_flat(hint, saliency: Tensor) -> None:
    """Raise on the first batch if the layer's saliency is the same at every position of every map."""
    if saliency.shape[-2] * saliency.shape[-1] == 1:
        return
    spread = (saliency - saliency[..., :1, :1]).abs().amax()
    if float(spread) <= 1e-6 * float(saliency.abs().amax()):
        instead = "an earlier layer" if hint.saliency == "gradient_x_input" else \
            "saliency='gradient_x_input' (or another method) or an earlier layer"
        raise ValueError(f"saliency: the {hint.saliency} saliency at layer {hint.layer!r} is the same at every "
                         "position in every map of the first batch, so no region stands out (a layer that feeds "
                         "global average pooling and a linear head gets the same gradient everywhere, as in a "
                         f"ResNet's last block); choose {instead}")


def stream_regions(hints: Sequence, dataloader: Iterable, labels: str) -> Tuple[List[RegionBank], int]:
    """Stream ``dataloader`` once and fill one region bank per HINT.

    The HINTs share model and concepts, and their saliency method, except
    that gradient and gradient x input HINTs share their pass.

    Returns:
        (banks, number of images), merged over ranks when ``torch.distributed``
        is initialized with more than one process.
    """
    lead = hints[0]
    rank, world = rank_and_world()
    membership = lead.hierarchy.membership(lead.concepts)  # K x C
    banks = [RegionBank(len(h.concepts), h.max_regions_per_concept, h.max_background, h.store_dtype, h.seed)
             for h in hints]
    # Each rank draws its own noise; rank 0 alone draws what a single process draws.
    generator = torch.Generator(device=lead.device).manual_seed(lead.seed + rank)
    saliency_pass = _SaliencyPass(hints, generator)
    n_local = 0
    images_under = torch.zeros(len(lead.concepts), dtype=torch.long)
    checked = False  # whether a batch's saliency was checked for flatness
    for raw in tqdm(dataloader, desc="HINT regions", disable=not lead.progress):
        images, given = split_batch(raw)
        if labels == "objects":
            given = object_classes(raw, lead.hierarchy.num_classes)
        check_image_batch(images, "dataloader")
        images = images.to(lead.device)
        for hint in hints:
            hint.input_shape_ = tuple(images.shape[1:])
        batch = _Batch(lead, membership, given, labels)
        activations, saliency, pair_image, pair_concept, under = saliency_pass(images, batch)
        images_under += under.sum(0)
        # With DistributedSampler(shuffle=False) this is the dataset index of the image.
        image_ids = (n_local + torch.arange(len(images))) * world + rank
        for hint, bank, layer_activations, layer_saliency in zip(hints, banks, activations, saliency):
            if len(pair_image) == 0:  # no image of the batch is under a concept of the set
                break
            if not checked:
                _check_not_flat(hint, layer_saliency)
            bank.add(*_layer_rows(hint, layer_activations, layer_saliency, pair_image, pair_concept, under, image_ids,
                                   raw, membership))
        checked = checked or len(pair_image) > 0
        n_local += len(images)
    n_images = n_local
    if world > 1:
        banks = [merge_banks_across_ranks(bank, lead.seed) for bank in banks]
        n_images = int(sum_across_ranks(torch.tensor([n_local]))[0])
        images_under = sum_across_ranks(images_under)
    for hint, bank in zip(hints, banks):
        empty = [k for k, count in enumerate(bank.counts()[:-1].tolist()) if count == 0]
        if empty:
            detail = ", ".join(f"{lead.concepts[k]} ({int(images_under[k])} images under it)" for k in empty)
            instead = "an earlier layer" if hint.saliency == "gradient_x_input" else \
                "saliency='gradient_x_input' or an earlier layer"
            raise ValueError(f"concepts: no responsible regions were collected for {detail} (layer {hint.layer!r}); "
                             "add images of these concepts or drop them from the concept set. If the layer's "
                             "saliency is flat over positions (a layer that feeds global average pooling gets the "
                             f"same gradient everywhere), no region stands out: choose {instead}")
    return banks, n_images
