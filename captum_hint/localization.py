"""Weakly supervised localization: maps -> boxes and masks -> metrics, and the baselines.

All maps are N x 1 x H x W. Every metric first scales each map to [0, 1]
(min-max per image) so that HINT's probability maps and Grad-CAM are judged
alike; a mask is then ``map >= threshold`` (0.5 by default).

* box from a map: the largest 8-connected component of the mask, boxed
  (the whole image if the mask is empty);
* localization accuracy: box IoU >= 0.5 with a ground-truth box of the concept
  (GT-known); top-1 also requires the model's top-1 class under the concept;
* pointing game (Zhang et al.): the map's maximum lies in the ground-truth mask;
* mask coverage: |mask ∩ GT| / |GT| — what the HINT paper calls its pointing
  game (Fig. 4c);
* mask IoU: |mask ∩ GT| / |mask ∪ GT|;
* energy pointing game (SeVec paper): keep the highest pixels holding
  ``energy`` of the map's total; a hit if they all lie in the ground-truth boxes;
* mask area: the mask's share of the image.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerConductance, LayerGradCam
from scipy import ndimage
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attr._base import resolve_layer
from .boxes import box_iou
from .concepts import ConceptScore

__all__ = [
    "normalize_maps",
    "map_to_boxes",
    "localization_hits",
    "pointing_game",
    "mask_coverage",
    "mask_iou",
    "energy_pointing_game",
    "mask_area",
    "gradcam_maps",
    "conductance_ranking",
    "concept_ground_truth",
    "evaluate_localization",
]


def normalize_maps(maps: Tensor) -> Tensor:
    """Each N x 1 x H x W map scaled to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1).float()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = high - low
    return torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), 0.0).view_as(maps)


def map_to_boxes(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N x 4 boxes around the largest connected component of ``map >= threshold``."""
    masks = (normalize_maps(maps) >= threshold)[:, 0].cpu().numpy()
    boxes = []
    for mask in masks:  # connected components are per image (scipy)
        components, count = ndimage.label(mask, structure=np.ones((3, 3)))
        if count == 0:
            boxes.append([0, 0, mask.shape[1] - 1, mask.shape[0] - 1])
            continue
        largest = np.bincount(components.ravel())[1:].argmax() + 1
        ys, xs = np.nonzero(components == largest)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return torch.tensor(boxes, dtype=torch.float32)


def localization_hits(pred_boxes: Tensor, gt_boxes: Sequence[Tensor], iou: float = 0.5) -> Tensor:
    """N booleans: the predicted box overlaps some ground-truth box with IoU >= ``iou``."""
    return torch.tensor([
        bool(len(gt)) and bool((box_iou(pred[None], gt.float()) >= iou).any()) for pred, gt in zip(pred_boxes, gt_boxes)
    ])


def pointing_game(maps: Tensor, gt_masks: Tensor) -> Tensor:
    """N booleans: the map's maximum lies inside the N x H x W ground-truth mask."""
    flat = maps.flatten(1)
    return gt_masks.flatten(1).gather(1, flat.argmax(1, keepdim=True))[:, 0]


def _masks(maps: Tensor, threshold: float) -> Tensor:
    return (normalize_maps(maps) >= threshold)[:, 0]


def mask_coverage(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values |mask ∩ GT| / |GT| (the HINT paper's pointing game)."""
    predicted = _masks(maps, threshold)
    return (predicted & gt_masks).flatten(1).sum(1) / gt_masks.flatten(1).sum(1).clamp_min(1)


def mask_iou(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values |mask ∩ GT| / |mask ∪ GT|."""
    predicted = _masks(maps, threshold)
    union = (predicted | gt_masks).flatten(1).sum(1)
    return (predicted & gt_masks).flatten(1).sum(1) / union.clamp_min(1)


def mask_area(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N values: the share of the image in ``map >= threshold``."""
    return _masks(maps, threshold).flatten(1).float().mean(1)


def energy_pointing_game(maps: Tensor, gt_boxes: Sequence[Tensor], energy: float = 0.3) -> Tensor:
    """N booleans: the top pixels holding ``energy`` of the map's mass all lie in the GT boxes."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy: expected a fraction in (0, 1], got {energy}")
    weights = normalize_maps(maps).flatten(1)
    order = weights.sort(1, descending=True)
    cumulative = order.values.cumsum(1)
    # keep pixels until the kept mass reaches `energy` of the total (at least one)
    n_keep = (cumulative < energy * cumulative[:, -1:]).sum(1) + 1
    width = maps.shape[-1]
    hits = []
    for n, index, boxes in zip(n_keep.tolist(), order.indices, gt_boxes):
        ys, xs = index[:n] // width, index[:n] % width
        inside = torch.zeros(n, dtype=torch.bool)
        for x1, y1, x2, y2 in boxes.tolist():
            inside |= (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        hits.append(bool(len(boxes)) and bool(inside.all()))
    return torch.tensor(hits)


def gradcam_maps(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], size=None) -> Tensor:
    """Grad-CAM (Captum ``LayerGradCam``) for a concept's score, upsampled: N x 1 x H x W.

    The target is the concept's score (log of the summed softmax over its
    leaves), so Grad-CAM and HINT localize the same concept.
    """
    method = LayerGradCam(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    maps = method.attribute(images, target=0, relu_attributions=True)
    return LayerAttribution.interpolate(maps.detach(), tuple(size or images.shape[-2:]), "bilinear")


def conductance_ranking(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], n_steps: int = 8,
                        batch_size: int = 8) -> Tensor:
    """A neuron ranking from Captum's ``LayerConductance`` for a concept: D scores.

    Conductance of each channel, summed over positions and averaged over the images.
    """
    method = LayerConductance(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    total = None
    for start in range(0, len(images), batch_size):
        conductance = method.attribute(images[start : start + batch_size], target=0, n_steps=n_steps)
        summed = conductance.detach().sum(dim=(2, 3)).sum(0)
        total = summed if total is None else total + summed
    return (total / len(images)).cpu()


def concept_ground_truth(samples: Sequence[Dict], leaves: Sequence[int]):
    """Per sample: (indices of samples with an object under the concept, their masks, their boxes)."""
    leaves = torch.tensor(sorted(leaves))
    keep, masks, boxes = [], [], []
    for i, sample in enumerate(samples):
        under = torch.isin(sample["labels"], leaves)
        if under.any():
            keep.append(i)
            masks.append(sample["masks"][under].any(0))
            boxes.append(sample["boxes"][under])
    return keep, masks, boxes


def _metrics(maps: Tensor, masks: Tensor, boxes: Sequence[Tensor], correct: Tensor, threshold: float,
             energy: float) -> Dict[str, float]:
    hits = localization_hits(map_to_boxes(maps, threshold), boxes)
    has_mask = masks.flatten(1).any(1)
    values = {
        "loc_acc_gt_known": hits.float().mean().item(),
        "loc_acc_top1": (hits & correct).float().mean().item(),
        "energy_pointing": energy_pointing_game(maps, boxes, energy).float().mean().item(),
        "mask_area": mask_area(maps, threshold).mean().item(),
    }
    if has_mask.any():
        m, g = maps[has_mask], masks[has_mask]
        values.update({
            "pointing_game": pointing_game(m, g).float().mean().item(),
            "mask_coverage": mask_coverage(m, g, threshold).mean().item(),
            "mask_iou": mask_iou(m, g, threshold).mean().item(),
        })
    return values


def evaluate_localization(hint, samples: Sequence[Dict], concepts: Sequence[str],
                          fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
                          rankings: Optional[Dict[str, object]] = None, gradcam_layer: Optional[str] = None,
                          threshold: float = 0.5, energy: float = 0.3, batch_size: int = 16,
                          progress: bool = False) -> List[Dict]:
    """The WSOL table: HINT with each neuron ranking at each fraction, and Grad-CAM.

    Args:
        hint: a fitted :class:`~captum_hint.HINT`.
        samples: data set samples (dicts with image, boxes, masks, labels).
        concepts: concepts to localize; each is scored on the samples that
            hold an object under it.
        fractions: shares of neurons kept (the paper's 10/20/40/80 %).
        rankings: name -> ``"shapley"``, ``"coef"``, ``"random"`` or a dict
            concept -> D tensor (e.g. from :func:`conductance_ranking`).
            Default: shapley, coef, random.
        gradcam_layer: layer for the Grad-CAM baseline (None: no baseline).

    Returns:
        Rows ``{"method", "fraction", "concept", "images", metric: value, ...}``.
    """
    rankings = rankings or {"shapley": "shapley", "coef": "coef", "random": "random"}
    rows = []
    for concept in tqdm(concepts, desc="localization", disable=not progress):
        leaves = hint.hierarchy.leaves_under(concept)
        keep, masks, boxes = concept_ground_truth(samples, leaves)
        if not keep:
            continue
        images = torch.stack([samples[i]["image"] for i in keep])
        masks = torch.stack(masks)
        with torch.no_grad():
            top1 = torch.cat([hint.model(images[s : s + batch_size].to(hint.device)).argmax(1).cpu()
                              for s in range(0, len(images), batch_size)])
        correct = torch.isin(top1, torch.tensor(leaves))
        features = [hint.layer_features(images[s : s + batch_size]) for s in range(0, len(images), batch_size)]
        base = {"concept": concept, "images": len(keep)}
        for name, ranking in rankings.items():
            ranking = ranking[concept] if isinstance(ranking, dict) else ranking
            for fraction in fractions:
                maps = torch.cat([hint.localize(images[s : s + batch_size], concept, fraction, ranking,
                                                features=features[b]).cpu()
                                  for b, s in enumerate(range(0, len(images), batch_size))])
                rows.append({"method": f"HINT ({name})", "fraction": fraction, **base,
                             **_metrics(maps, masks, boxes, correct, threshold, energy)})
        if gradcam_layer is not None:
            maps = torch.cat([gradcam_maps(hint.model, gradcam_layer, images[s : s + batch_size].to(hint.device), leaves).cpu()
                              for s in range(0, len(images), batch_size)])
            rows.append({"method": "Grad-CAM", "fraction": math.nan, **base,
                         **_metrics(maps, masks, boxes, correct, threshold, energy)})
    return rows
