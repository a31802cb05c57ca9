"""Where does each neuron ranking put the planted channel? (1 = first of the layer's D channels.)

A ranking that finds the truth puts concept ``k``'s planted channel first;
a random ranking puts it at ``(D + 1) / 2`` on average.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ..afi import GlobalFeatureOccluder, channel_importance, feature_importance
from ..core.checks import check_finite
from ..datasets.planted import PlantedModel
from ..datasets.samples import collate_samples
from ..evaluation import (bootstrap_mean, concept_ground_truth, conductance_ranking, gradcam_channel_ranking,
                          netdissect_ranking, tcav_channel_ranking)
from ..gap import chosen_channel_shares
from ..hint import HINT
from ..sevec import SemanticVectors

__all__ = ["afi_channel_importance", "images_of_class", "planted_rank", "ranking_table", "score_planted_model"]


#: HINT's rankings in :func:`score_planted_model` (method names ``"HINT (<ranking>, <saliency>)"``).
HINT_RANKINGS = ("shapley", "coef", "shapley retrained")


def planted_rank(scores: Tensor, channel: int) -> float:
    """The rank of ``channel`` when ``scores`` (D) are sorted high to low; tied channels share their mean rank."""
    if scores.dim() != 1 or not 0 <= channel < len(scores):
        raise ValueError(f"channel: expected an index into {tuple(scores.shape)} scores, got {channel}")
    check_finite("scores", scores)
    value = scores[channel]
    greater, tied = int((scores > value).sum()), int((scores == value).sum()) - 1
    return 1.0 + greater + tied / 2


def images_of_class(samples: Sequence[Dict], leaves: Sequence[int], limit: int) -> Tensor:
    """The images of at most ``limit`` samples holding an object under ``leaves``, N x C x H x W."""
    keep, _, _ = concept_ground_truth(samples, leaves)
    return torch.stack([samples[i]["image"] for i in keep[:limit]])


def afi_channel_importance(model, layer: str, images: Tensor, leaves: Sequence[int], seed: int,
                           max_iterations: int) -> Tensor:
    """AfI's channel importance (D) of the class ``leaves`` from an occluder fitted on ``images``."""
    occluder = GlobalFeatureOccluder(model, max_iterations=max_iterations, seed=seed,
                                     progress=False).fit(images, set(leaves))
    return channel_importance(feature_importance(occluder, images, layer))


def score_planted_model(planted: PlantedModel, samples: Sequence[Dict],
                        saliency: Union[str, Sequence[str]] = "gradient", random_seeds: Sequence[int] = (0, 1, 2),
                        conductance_images: int = 8, class_images: int = 32, seed: int = 0,
                        fitted: Optional[Dict] = None, occluder_iterations: int = 300,
                        retrain_permutations: int = 16, concept_score: str = "log_probability") -> List[Dict]:
    """Every ranking's rank of each class's planted channel: rows ``{"method", "concept", "rank"}``.

    Rankings: HINT's Shapley values and ``|coef|`` (fitted on ``samples``, every object's class a label,
    with each ``saliency``, ``concept_score`` and the classes as concepts; methods
    ``"HINT (shapley, <saliency>)"``, ``"HINT (coef, <saliency>)"``) and the
    paper's retraining variant of Φ (``"HINT (shapley retrained, <saliency>)"``,
    :meth:`~captum_hint.hint.HINT.shapley_values` with ``retrain=True`` and
    ``retrain_permutations`` permutations); SeVec's semantic vector
    (spatial, fitted on ``samples``), its loading summed per channel (it
    counts how often a unit is active on the concept's images, not how
    selective it is); AfI's channel importance (an occluder with its
    defaults, at most ``occluder_iterations`` steps, on at most ``class_images`` images of the class);
    gAP's chosen children of the class's logit (:func:`~captum_hint.gap.chosen_channel_shares`,
    top 3) on the ``class_images``; Captum's LayerConductance on
    ``conductance_images`` images of the class, Grad-CAM's channel weights
    on the ``class_images``, TCAV's CAV (Captum) separating the
    ``class_images`` from as many images without the class,
    the NetDissect IoU against the class masks, and uniform random scores
    (one row per seed). A system that cannot run on the model gives a row
    with ``rank`` NaN and its ``error``, so what fails is reported, not dropped.
    Rows rank the class's planted channel (``"target": "planted"``) and, for a
    class a planted multimodal channel answers to, that channel too
    (``"target": "multimodal"``; rank it among the layer's channels, the
    class's own one included).
    ``fitted``, when given, receives the fitted explainers (``"HINT (<saliency>)"``, ``"SeVec"``) and
    AfI's channel importance per class (``"AfI"``, class → D weights).
    """
    model, layer, concepts = planted.model, planted.layer, planted.concepts
    saliencies = [saliency] if isinstance(saliency, str) else list(saliency)
    loader = DataLoader(list(samples), batch_size=32, collate_fn=collate_samples)
    hints, hint_errors = {}, {}
    for name in saliencies:
        try:
            hints[name] = HINT(model, layer, planted.hierarchy, concepts, saliency=name, seed=seed,
                               concept_score=concept_score, progress=False).fit(loader, labels="objects")
        except ValueError as error:  # e.g. no responsible region: the saliency is flat at the layer
            hint_errors.update({f"HINT ({ranking}, {name})": str(error) for ranking in HINT_RANKINGS})
    retrained = {name: hint.shapley_values(retrain=True, n_permutations=retrain_permutations)[0]
                 for name, hint in hints.items()}
    sevec = SemanticVectors(model, layer, concepts, planted.hierarchy, progress=False).fit(loader)
    batches = [(torch.stack([s["image"] for s in chunk]), torch.stack([s["concept_masks"] for s in chunk]))
               for chunk in (samples[i : i + 32] for i in range(0, len(samples), 32))]
    dissected = netdissect_ranking(model, layer, batches, seed=seed)  # D x K
    n_channels = dissected.shape[0]
    rows, afi_weights = [], {}
    for k, concept in enumerate(concepts):
        leaves = planted.hierarchy.leaves_under(concept)
        images = images_of_class(samples, leaves, class_images)
        without = [s["image"] for s in samples if not set(s["labels"].tolist()) & set(leaves)][:class_images]
        target = leaves[0] if len(leaves) == 1 else set(leaves)
        rankings = {f"HINT ({ranking}, {name})": hint.neuron_ranking(concept, ranking)
                    for name, hint in hints.items() for ranking in ("shapley", "coef")}
        rankings.update({f"HINT (shapley retrained, {name})": values[:, k] for name, values in retrained.items()})
        rankings.update({
            # the vector's loading summed over the positions of each channel (spatial: D = C x h x w)
            "SeVec (vector)": sevec.vector(concept).view(n_channels, -1).sum(1),
            "LayerConductance": conductance_ranking(model, layer, images[:conductance_images], leaves),
            "Grad-CAM weights": gradcam_channel_ranking(model, layer, images, leaves),
            "gAP (chosen children)": chosen_channel_shares(model, layer, images, target),
            "NetDissect": dissected[:, k]})
        errors = dict(hint_errors)
        if without:
            rankings["TCAV (CAV)"] = tcav_channel_ranking(model, layer, images, torch.stack(without), seed=seed)
        else:
            errors["TCAV (CAV)"] = "samples: every sample holds the class; TCAV needs images without it"
        try:
            rankings["AfI (channel importance)"] = afi_weights[concept] = afi_channel_importance(
                model, layer, images, leaves, seed, occluder_iterations)
        except ValueError as error:  # e.g. no image of the class is classified as it
            errors["AfI (channel importance)"] = str(error)
        targets = [(planted.planted_[k], "planted")] + [(channel, "multimodal") for channel, names
                                                         in planted.multimodal_.items() if concept in names]
        rows += [{"method": method, "concept": concept, "rank": math.nan, "channels": n_channels, "target": target,
                  "error": error} for _, target in targets for method, error in errors.items()]
        for random_seed in random_seeds:
            rankings[f"random (seed {random_seed})"] = torch.rand(
                n_channels, generator=torch.Generator().manual_seed(random_seed * 1000 + k))
        rows += [{"method": method, "concept": concept, "rank": planted_rank(scores.float(), channel),
                  "channels": n_channels, "target": target}
                 for channel, target in targets for method, scores in rankings.items()]
    if fitted is not None:
        fitted.update({f"HINT ({name})": hint for name, hint in hints.items()}, SeVec=sevec, AfI=afi_weights)
    return rows


def ranking_table(rows: Sequence[Dict], seed: int = 0) -> List[Dict]:
    """Mean rank per method with a 95 % bootstrap interval over its (concept, model) rows; random seeds pooled.

    Rows whose system could not run (rank NaN) are counted in ``failed``.
    """
    groups: Dict[str, List[float]] = {}
    for row in rows:
        method = "random" if row["method"].startswith("random") else row["method"]
        groups.setdefault(method, []).append(row["rank"])
    table = []
    for method, ranks in groups.items():
        ranked = [r for r in ranks if not math.isnan(r)]
        mean, low, high = bootstrap_mean(ranked, seed=seed) if ranked else (math.nan,) * 3
        table.append({"method": method, "mean_rank": mean, "low": low, "high": high, "n": len(ranked),
                      "failed": len(ranks) - len(ranked), "top1": sum(r == 1 for r in ranked) / max(1, len(ranked))})
    return sorted(table, key=lambda r: (math.isnan(r["mean_rank"]), r["mean_rank"]))
