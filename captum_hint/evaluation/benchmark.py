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
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from captum.attr import LayerAttribution
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_finite, check_fraction, check_positive_int
from ..core.model_state import evaluation_mode
from .baselines import center_gaussian_maps, full_image_maps, gradcam_pass
from .metrics import (MAXBOXACC_V2_IOUS, WSOL_THRESHOLDS, box_ious_over_thresholds, boxes_to_masks,
                      _pointing_hits, energy_pointing_game, max_box_accuracy, pixel_average_precision)
from .pixels import pixel_figures
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


class _Truth(NamedTuple):
    """One concept's ground truth, with what every method's record needs of it computed once."""

    masks: Tensor
    boxes: Sequence[Tensor]
    has_mask: Tensor
    box_masks: Tensor
    point_masks: Tensor
    other_masks: Optional[Tensor]
    correct: Optional[Tensor]


def _truth(gt_masks: Tensor, gt_boxes: Sequence[Tensor], other_masks: Optional[Tensor], correct: Optional[Tensor]) -> _Truth:
    has_mask = gt_masks.flatten(1).any(1)
    box_masks = boxes_to_masks(gt_boxes, *gt_masks.shape[1:])
    return _Truth(gt_masks, gt_boxes, has_mask, box_masks, torch.where(has_mask[:, None, None], gt_masks, box_masks),
                  other_masks, correct)


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
    return _record(maps, _truth(gt_masks, gt_boxes, other_masks, correct), thresholds, threshold, energy, tolerance, bins)


def _record(maps: Tensor, truth: _Truth, thresholds: Sequence[float] = WSOL_THRESHOLDS, threshold: float = 0.5,
            energy: float = 0.3, tolerance: float = 15.0, bins: int = 100) -> Record:
    has_mask = truth.has_mask
    nan = torch.full((len(maps),), math.nan)
    # the scaled maps and every per-pixel figure from one pass over each map
    pixels = pixel_figures(maps, truth.masks, truth.other_masks, threshold, bins)
    scaled = pixels.scaled
    # the sweep and the one-threshold box from the same pass over each map
    ious = box_ious_over_thresholds(scaled, truth.boxes, [*thresholds, threshold], scaled=True)
    hits = ious[:, -1] >= 0.5
    record = {
        "box_hits": ious[:, :-1, None] >= torch.tensor(MAXBOXACC_V2_IOUS),
        "pixels": pixels.histograms * has_mask[:, None, None],
        "pointing_15px": _pointing_hits(pixels.peak, truth.point_masks, tolerance).float(),
        "pointing_strict": _pointing_hits(pixels.peak, truth.point_masks, 0.0).float(),
        "energy_pointing": energy_pointing_game(scaled, truth.boxes, energy, scaled=True,
                                                box_masks=truth.box_masks).float(),
        "hint_pointing": torch.where(has_mask, pixels.coverage, nan),
        "hint_iou": torch.where(has_mask, pixels.iou, nan),
        "loc_acc": hits.float(),
        "loc_acc_top1": (hits & truth.correct).float() if truth.correct is not None else nan.clone(),
        "mask_area": pixels.area,
        "off_target_mass": nan.clone(),
    }
    if truth.other_masks is not None:
        scored = truth.other_masks.flatten(1).any(1)
        record["off_target_mass"] = torch.where(scored, pixels.other_share, nan)
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


def _model_outputs(hint, images: Sequence[Tensor], concept_leaves: Sequence[Sequence[int]], gradcam_layer,
                   batch_size: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Top-1 classes, HINT layer features and Grad-CAM maps (N x K x h x w at ``gradcam_layer``) of the images.

    One forward pass per batch serves all three; every image is scored for
    every concept, since an image usually holds several.
    """
    top1, features, cams = [], [], []
    with evaluation_mode(hint.model, "evaluate_localization"):
        for start in range(0, len(images), batch_size):
            batch = torch.stack(list(images[start : start + batch_size])).to(hint.device)
            if gradcam_layer is None:
                logits, layer_output = hint._forward_with_features(batch)
            else:
                maps, logits, layer_output = gradcam_pass(hint.model, gradcam_layer, batch, concept_leaves,
                                                          capture=hint.layer_module)
                check_finite(f"layer {hint.layer!r} output", layer_output, "the model's activations must be finite")
                cams.append(maps.cpu())
            top1.append(logits.argmax(1).cpu())
            features.append(layer_output.cpu())
    return torch.cat(top1), torch.cat(features), torch.cat(cams) if cams else None


def evaluate_localization(hint, samples: Sequence[Dict], concepts: Sequence[str],
                          fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
                          rankings: Optional[Dict[str, object]] = None, gradcam_layer: Optional[str] = None,
                          baselines: bool = True, thresholds: Sequence[float] = WSOL_THRESHOLDS,
                          threshold: float = 0.5, energy: float = 0.3, batch_size: int = 16,
                          progress: bool = False, model_outputs: Optional[Dict] = None,
                          map_methods: Optional[Dict[str, Callable[[Tensor, str], Tensor]]] = None) -> List[Dict]:
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
        model_outputs: a dict to keep the model's outputs on the samples
            (top-1 classes, layer features, Grad-CAM) for later calls on the
            same model, layer, samples and concepts, e.g. for several HINTs
            fitted at one layer; the samples are keyed by their position.
        map_methods: other explainers' maps, scored alike: name ->
            ``f(images, concept)`` giving N x 1 x h x w maps of the concept
            (upsampled bilinearly to the images' size when smaller).

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
    concept_leaves = [hint.hierarchy.leaves_under(c) for c in concepts]
    truths = [concept_ground_truth(samples, leaves) for leaves in concept_leaves]
    used = sorted({i for keep, _, _ in truths for i in keep})
    key = (id(hint.model), hint.layer, gradcam_layer, tuple(used), tuple(concepts))
    outputs = None if model_outputs is None else model_outputs.get(key)
    if outputs is None:
        outputs = _model_outputs(hint, [samples[i]["image"] for i in used], concept_leaves, gradcam_layer, batch_size)
        if model_outputs is not None:
            model_outputs[key] = outputs
    top1, features, cams = outputs
    position = {index: row for row, index in enumerate(used)}
    rows = []
    for k, concept in enumerate(tqdm(concepts, desc="localization", disable=not progress)):
        leaves = concept_leaves[k]
        keep, masks, boxes = truths[k]
        if not keep:
            continue
        at = torch.tensor([position[i] for i in keep])
        images = torch.stack([samples[i]["image"] for i in keep])
        masks, others = torch.stack(masks), other_objects(samples, keep, leaves)
        correct = torch.isin(top1[at], torch.tensor(leaves))

        truth = _truth(masks, boxes, others, correct)

        def add(method: str, fraction: float, maps: Tensor) -> None:
            record = _record(maps, truth, thresholds, threshold, energy)
            rows.append({"method": method, "fraction": fraction, "concept": concept, "images": len(keep),
                         "record": record})

        for name, ranking in rankings.items():
            for fraction in fractions:
                add(f"HINT ({name})", fraction, hint.localize(images, concept, fraction, ranking_of(ranking, concept),
                                                              features=features[at].to(hint.device)).cpu())
        if gradcam_layer is not None:
            add("Grad-CAM", math.nan, LayerAttribution.interpolate(cams[at, k : k + 1], tuple(images.shape[-2:]),
                                                                   "bilinear"))
        for name, method in (map_methods or {}).items():
            maps = method(images, concept).detach().cpu()
            if maps.shape[-2:] != images.shape[-2:]:
                maps = LayerAttribution.interpolate(maps, tuple(images.shape[-2:]), "bilinear")
            add(name, math.nan, maps)
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
