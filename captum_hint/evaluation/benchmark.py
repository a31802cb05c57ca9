"""The weakly supervised localization benchmark of a fitted HINT on annotated samples.

Samples are the dicts of :mod:`captum_hint.datasets` (image, boxes, masks,
labels). Each concept is scored on the samples holding an object under it,
with every neuron ranking at every fraction, and against Grad-CAM.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_fraction, check_positive_int
from ..core.model_state import evaluation_mode
from .baselines import gradcam_maps
from .metrics import (energy_pointing_game, localization_hits, map_to_boxes, mask_area, mask_coverage, mask_iou,
                      pointing_game)

__all__ = ["concept_ground_truth", "evaluate_localization"]


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
    check_fraction("threshold", threshold, allow_one=False)
    check_fraction("energy", energy)
    check_positive_int("batch_size", batch_size)
    for fraction in fractions:
        check_fraction("fractions", fraction)
    rankings = rankings or {"shapley": "shapley", "coef": "coef", "random": "random"}
    rows = []
    for concept in tqdm(concepts, desc="localization", disable=not progress):
        leaves = hint.hierarchy.leaves_under(concept)
        keep, masks, boxes = concept_ground_truth(samples, leaves)
        if not keep:
            continue
        images = torch.stack([samples[i]["image"] for i in keep])
        masks = torch.stack(masks)
        with torch.no_grad(), evaluation_mode(hint.model, "evaluate_localization"):
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
