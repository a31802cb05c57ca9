"""The ``captum-hint ground-truth`` report: the planted truth, the rank tables and the maps side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List

from .report import plot_overlays, write_report

__all__ = ["write_ground_truth_report"]

_RANK_COLUMNS = ["method", "mean_rank", "low", "high", "top1", "n", "failed"]
_TRUTH_COLUMNS = ["variant", "seed", "class", "channel", "mask_pxap", "mask_iou", "roc_auc", "ablation_drop",
                  "largest_free_drop", "holds"]
_LOCALIZATION_COLUMNS = ["variant", "seed", "method", "pxap", "pxap_low", "pxap_high", "maxboxacc_v2", "images"]


def _truth_rows(models: List[Dict]) -> List[Dict]:
    """The class channels' checks, then any multimodal channel's (its map against the union of its classes)."""
    return [{"variant": m["variant"], "seed": m["seed"], "class": name, **entry}
            for m in models for name, entry in m["truth"]["classes"].items()] + [
        {"variant": m["variant"], "seed": m["seed"], "class": " + ".join(entry["concepts"]) + " (multimodal)",
         "channel": channel, **{k: v for k, v in entry.items() if k != "concepts"}}
        for m in models for channel, entry in m["truth"]["multimodal"].items()]


def _multimodal_rows(models: List[Dict]) -> List[Dict]:
    return [{"variant": m["variant"], "seed": m["seed"], "HINT": name, "found": entry["found"],
             "multimodal_neurons(n=2)": "; ".join(f"{n}: {', '.join(names)}" for n, names in entry["listed"].items())}
            for m in models for name, entry in m.get("multimodal", {}).items()]


def _failures(models: List[Dict]) -> List[Dict]:
    return [{"variant": m["variant"], "seed": m["seed"], "method": r["method"], "class": r["concept"],
             "error": r["error"]} for m in models for r in m["ranks"] if math.isnan(r["rank"])]


def write_ground_truth_report(study: Dict, data: Dict, out: Path) -> Path:
    """Write ``out/index.html``, ``out/ground_truth.json`` (``data``) and one figure per planted model.

    Args:
        study: :func:`~captum_hint.truth.ground_truth_study`'s result (with its example maps).
        data: the same without the maps (:func:`~captum_hint.truth.study_to_json`).
        out: the report folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings, models = study["settings"], study["models"]
    n_channels = models[0]["ranks"][0]["channels"]
    sections = [{"title": "What this is", "text": (
        "Small CNNs trained here on 64-pixel stamp scenes of four classes, in which one channel per class of the "
        "layer <code>concept_relu</code> is <i>made</i> a detector of that class (an auxiliary loss against its "
        "masks). A neuron ranking that finds the truth puts the class's planted channel first of the "
        f"{n_channels}; random puts it at {(n_channels + 1) / 2:.1f} on average. Variants: <b>bottleneck</b> (the "
        "layers above see only the planted channels) and <b>all</b> (they see every channel). "
        f"Seeds {settings['seeds']}; truth checked on {settings['test_scenes']} held-out scenes (seed "
        f"{settings['test_scene_seed']}), rankings fitted on {settings['fit_scenes']} one-object scenes (seed "
        f"{settings['fit_scene_seed']}); HINT with saliency {', '.join(settings['saliencies'])}. "
        "Intervals: 95 % bootstrap over (class, model).")},
        {"title": "Does the planted truth hold?", "text": (
            "Per class: the planted channel's map against the class's masks (PxAP, IoU at 1/2), the head's "
            "ROC-AUC, and the drop of the class's logit when the planted channel is zeroed against the largest "
            "drop from zeroing a free channel. A class holds when ROC-AUC ≥ 0.8, PxAP ≥ 0.5 and the ratio ≥ 2."),
         "table": (_truth_rows(models), _TRUTH_COLUMNS)}]
    for variant, tables in study["tables"].items():
        for subset, rows in tables.items():
            sections.append({"title": f"Rank of the planted channel: {variant}, {subset}",
                             "table": (rows, _RANK_COLUMNS) if rows else None,
                             "text": None if rows else "No class of this variant passed its truth check."})
    multimodal = _multimodal_rows(models)
    if multimodal:
        sections.append({"title": "Does HINT list the planted multimodal channel as multimodal?",
                         "text": "HINT.multimodal_neurons(n=2): the neurons among the two best of two or more "
                                 "concepts; found when the planted channel is listed with both its classes.",
                         "table": (multimodal, ["variant", "seed", "HINT", "found", "multimodal_neurons(n=2)"])})
    sections.append({"title": "Localization against the masks (held-out scenes, classes pooled)",
                     "table": ([{"variant": m["variant"], "seed": m["seed"], **row} for m in models
                                for row in m["localization"]], _LOCALIZATION_COLUMNS)})
    for m in models:
        name = f"examples_{m['variant']}_seed{m['seed']}.png"
        examples = m["examples"]
        plot_overlays(examples["pixels"], examples["maps"], examples["masks"], out / name)
        sections.append({"title": f"Maps: {m['variant']}, seed {m['seed']}", "image": name,
                         "text": "One held-out scene per class (rows: " + ", ".join(m["planted"]) + "); the planted "
                                 "channel's map beside each system's localization of the class."})
    failures = _failures(models)
    if failures:
        sections.append({"title": "Systems that could not run", "table": (failures, ["variant", "seed", "method",
                                                                                    "class", "error"])})
    return write_report(out, "captum_hint: does it find the truth?", data, sections, data_file="ground_truth.json")
