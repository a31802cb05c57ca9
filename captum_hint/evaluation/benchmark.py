"""The weakly supervised localization benchmark of a fitted HINT on annotated samples.

Samples are the dicts of :mod:`captum_hint.datasets` (image, boxes, masks,
labels). Each concept is scored on the samples holding an object under it,
with every neuron ranking at every fraction, against Grad-CAM and two
trivial maps (a centre Gaussian and the full image).

Every method yields a *record*: per-image values of every metric (see
:func:`localization_record`), so that each figure comes with a bootstrap
interval over images (:func:`summarize_record`) and two methods on the same
images are compared with a paired bootstrap (:func:`compare_records`).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_fraction, check_positive_int
from ..core.model_state import evaluation_mode
from .baselines import center_gaussian_maps, full_image_maps, gradcam_maps
from .metrics import (MAXBOXACC_V2_IOUS, WSOL_THRESHOLDS, box_hits_over_thresholds, boxes_to_masks,
                      energy_pointing_game, localization_hits, map_to_boxes, mask_area, mask_coverage, mask_iou,
                      mass_share, max_box_accuracy, pixel_average_precision, pixel_histograms, pointing_game)
from .statistics import bootstrap_statistic, bootstrap_weights

__all__ = ["concept_ground_truth", "other_objects", "localization_record", "merge_records", "summarize_record",
           "compare_records", "evaluate_localization", "localization_table", "METRIC_NAMES"]

Record = Dict[str, Tensor]

#: Metric keys of a summary, with the name a table shows.
METRIC_NAMES = {
    "maxboxacc": "MaxBoxAcc (IoU 0.5)",
    "maxboxacc_v2": "MaxBoxAccV2",
    "pxap": "PxAP",
    "pointing_15px": "pointing game (15 px)",
    "pointing_strict": "pointing game (strict)",
    "energy_pointing": "energy pointing (30 %)",
    "hint_pointing": "HINT 'pointing' (mask coverage)",
    "hint_iou": "HINT mask IoU",
    "loc_acc": "GT-known loc. acc. (t = 0.5)",
    "loc_acc_top1": "top-1 loc. acc. (t = 0.5)",
    "off_target_mass": "mass on other objects",
    "mask_area": "mask area",
}
_MEANS = ("pointing_15px", "pointing_strict", "energy_pointing", "hint_pointing", "hint_iou", "loc_acc", "loc_acc_top1",
          "off_target_mass", "mask_area")


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


def other_objects(samples: Sequence[Dict], indices: Sequence[int], leaves: Sequence[int]) -> Tensor:
    """N x H x W: the union of the masks of objects *not* under the concept in ``samples[indices]``."""
    leaves = torch.tensor(sorted(leaves))
    return torch.stack([samples[i]["masks"][~torch.isin(samples[i]["labels"], leaves)].any(0) for i in indices])


def localization_record(maps: Tensor, gt_masks: Tensor, gt_boxes: Sequence[Tensor], other_masks: Optional[Tensor] = None,
                        correct: Optional[Tensor] = None, thresholds: Sequence[float] = WSOL_THRESHOLDS,
                        threshold: float = 0.5, energy: float = 0.3, tolerance: float = 15.0, bins: int = 100) -> Record:
    """Per-image values of every metric for N maps.

    Args:
        maps: N x 1 x H x W.
        gt_masks: N x H x W object masks (all False where the data set has
            boxes only: pixel metrics are then NaN and the pointing game
            uses the boxes as masks, as TorchRay does for VOC).
        gt_boxes: N tensors K_i x 4.
        other_masks: N x H x W objects of other concepts (selectivity; NaN
            where an image has none).
        correct: N booleans, the model's top-1 class is under the concept.
        thresholds: the MaxBoxAcc sweep (``wsolevaluation``: 0, 0.01, ..., 0.99).
        threshold: the fixed threshold of the one-threshold metrics.

    Returns:
        ``{"box_hits": N x T x 3, "pixels": N x 2 x B, metric: N values}``.
    """
    has_mask = gt_masks.flatten(1).any(1)
    point_masks = torch.where(has_mask[:, None, None], gt_masks, boxes_to_masks(gt_boxes, *gt_masks.shape[1:]))
    nan = torch.full((len(maps),), math.nan)
    hits = localization_hits(map_to_boxes(maps, threshold), gt_boxes)
    record = {
        "box_hits": box_hits_over_thresholds(maps, gt_boxes, thresholds, MAXBOXACC_V2_IOUS),
        "pixels": pixel_histograms(maps, gt_masks, bins) * has_mask[:, None, None],
        "pointing_15px": pointing_game(maps, point_masks, tolerance).float(),
        "pointing_strict": pointing_game(maps, point_masks, 0.0).float(),
        "energy_pointing": energy_pointing_game(maps, gt_boxes, energy).float(),
        "hint_pointing": torch.where(has_mask, mask_coverage(maps, gt_masks, threshold).float(), nan),
        "hint_iou": torch.where(has_mask, mask_iou(maps, gt_masks, threshold).float(), nan),
        "loc_acc": hits.float(),
        "loc_acc_top1": (hits & correct).float() if correct is not None else nan.clone(),
        "mask_area": mask_area(maps, threshold),
        "off_target_mass": nan.clone(),
    }
    if other_masks is not None:
        scored = other_masks.flatten(1).any(1)
        record["off_target_mass"] = torch.where(scored, mass_share(maps, other_masks), nan)
    return record


def merge_records(records: Sequence[Record]) -> Record:
    """One record of all their images (e.g. all concepts pooled)."""
    return {key: torch.cat([r[key] for r in records]) for key in records[0]}


def _statistics(record: Record) -> Dict[str, Callable[[Tensor], Tensor]]:
    """Each metric as a function of R x N image weights."""

    def mean_of(key: str):
        values = record[key].double()
        valid = ~values.isnan()
        filled = torch.where(valid, values, 0.0)
        return lambda w: (w.double() @ filled) / (w.double() @ valid.double()).clamp_min(1e-12)

    box = lambda w, level: max_box_accuracy(record["box_hits"], w)[:, level]  # noqa: E731
    return {
        "maxboxacc": lambda w: box(w, MAXBOXACC_V2_IOUS.index(0.5)),
        "maxboxacc_v2": lambda w: max_box_accuracy(record["box_hits"], w).mean(1),
        "pxap": lambda w: pixel_average_precision(record["pixels"], w),
        **{key: mean_of(key) for key in _MEANS},
    }


def _available(record: Record, key: str) -> bool:
    if key == "pxap":
        return bool(record["pixels"][:, 0].sum() > 0)
    if key in _MEANS:
        return bool((~record[key].isnan()).any())
    return True


def summarize_record(record: Record, seed: int = 0, rounds: int = 2000) -> Dict[str, Tuple[float, float, float]]:
    """Every metric with its 95 % bootstrap interval over the record's images: ``{metric: (value, low, high)}``."""
    n = len(record["box_hits"])
    weights = bootstrap_weights(n, seed, rounds)
    return {key: bootstrap_statistic(statistic, n, weights=weights)
            for key, statistic in _statistics(record).items() if _available(record, key)}


def compare_records(first: Record, second: Record, seed: int = 0, rounds: int = 2000) -> Dict[str, Tuple[float, float, float]]:
    """Paired bootstrap of ``first − second`` on the same images: ``{metric: (difference, low, high)}``.

    Both records must come from the same images in the same order; each
    resample feeds both, so the interval reflects the methods' difference,
    not the spread of the images.
    """
    if len(first["box_hits"]) != len(second["box_hits"]):
        raise ValueError(f"second: expected a record of the same {len(first['box_hits'])} images as first, "
                         f"got {len(second['box_hits'])}")
    a, b = _statistics(first), _statistics(second)
    weights = bootstrap_weights(len(first["box_hits"]), seed, rounds)
    return {key: bootstrap_statistic(lambda w, key=key: a[key](w) - b[key](w), len(first["box_hits"]), weights=weights)
            for key in a if _available(first, key) and _available(second, key)}


def _batched(function, images: Tensor, batch_size: int) -> Tensor:
    return torch.cat([function(images[s : s + batch_size]).detach().cpu() for s in range(0, len(images), batch_size)])


def evaluate_localization(hint, samples: Sequence[Dict], concepts: Sequence[str],
                          fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
                          rankings: Optional[Dict[str, object]] = None, gradcam_layer: Optional[str] = None,
                          baselines: bool = True, thresholds: Sequence[float] = WSOL_THRESHOLDS,
                          threshold: float = 0.5, energy: float = 0.3, batch_size: int = 16,
                          progress: bool = False) -> List[Dict]:
    """The WSOL study: HINT with each neuron ranking at each fraction, Grad-CAM and trivial maps.

    Args:
        hint: a fitted :class:`~captum_hint.HINT`.
        samples: data set samples (dicts with image, boxes, masks, labels).
        concepts: concepts to localize; each is scored on the samples that
            hold an object under it.
        fractions: shares of neurons kept (the paper's 10/20/40/80 %).
        rankings: name -> ``"shapley"``, ``"coef"``, ``"random"`` or a dict
            concept -> D tensor (e.g. from :func:`conductance_ranking`).
            Default: shapley, coef, random. All localizers are trained in
            one joint pass (:meth:`HINT.fit_localizers`).
        gradcam_layer: layer for the Grad-CAM baseline (None: no Grad-CAM).
        baselines: add the centre-Gaussian and full-image maps.
        thresholds: the MaxBoxAcc sweep.

    Returns:
        Rows ``{"method", "fraction", "concept", "images", "record"}`` (see
        :func:`localization_record`); :func:`localization_table` summarizes them.
    """
    check_fraction("threshold", threshold, allow_one=False)
    check_fraction("energy", energy)
    check_positive_int("batch_size", batch_size)
    for fraction in fractions:
        check_fraction("fractions", fraction)
    rankings = rankings or {"shapley": "shapley", "coef": "coef", "random": "random"}

    def ranking_of(ranking, concept):
        return ranking[concept] if isinstance(ranking, dict) else ranking

    hint.fit_localizers([(c, f, ranking_of(r, c)) for c in concepts for r in rankings.values() for f in fractions])
    rows = []
    for concept in tqdm(concepts, desc="localization", disable=not progress):
        leaves = hint.hierarchy.leaves_under(concept)
        keep, masks, boxes = concept_ground_truth(samples, leaves)
        if not keep:
            continue
        images = torch.stack([samples[i]["image"] for i in keep])
        masks, others = torch.stack(masks), other_objects(samples, keep, leaves)
        with torch.no_grad(), evaluation_mode(hint.model, "evaluate_localization"):
            top1 = _batched(lambda x: hint.model(x.to(hint.device)).argmax(1), images, batch_size)
        correct = torch.isin(top1, torch.tensor(leaves))
        features = torch.cat([hint.layer_features(images[s : s + batch_size]) for s in range(0, len(images), batch_size)])

        def add(method: str, fraction: float, maps: Tensor) -> None:
            record = localization_record(maps, masks, boxes, others, correct, thresholds, threshold, energy)
            rows.append({"method": method, "fraction": fraction, "concept": concept, "images": len(keep),
                         "record": record})

        for name, ranking in rankings.items():
            for fraction in fractions:
                add(f"HINT ({name})", fraction, hint.localize(images, concept, fraction, ranking_of(ranking, concept),
                                                              features=features).cpu())
        if gradcam_layer is not None:
            add("Grad-CAM", math.nan, _batched(lambda x: gradcam_maps(hint.model, gradcam_layer, x.to(hint.device), leaves),
                                               images, batch_size))
        if baselines:
            add("centre Gaussian", math.nan, center_gaussian_maps(len(images), images.shape[-2:]))
            add("full image", math.nan, full_image_maps(len(images), images.shape[-2:]))
    return rows


def localization_table(rows: Sequence[Dict], seed: int = 0, rounds: int = 2000) -> List[Dict]:
    """One row per (method, fraction), concepts pooled: ``metric``, ``metric_low``, ``metric_high``.

    The images of all concepts are pooled (an image counts once per concept
    it holds) and resampled together.
    """
    groups: Dict[tuple, List[Dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["fraction"]), []).append(row)
    table = []
    for (method, fraction), members in groups.items():
        summary = summarize_record(merge_records([m["record"] for m in members]), seed, rounds)
        entry = {"method": method, "fraction": fraction, "concepts": len(members),
                 "images": sum(m["images"] for m in members)}
        for key, (value, low, high) in summary.items():
            entry.update({key: value, f"{key}_low": low, f"{key}_high": high})
        table.append(entry)
    return table
