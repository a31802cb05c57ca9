"""The HINT paper's experiments (Sec. 4), as functions that run on any annotated samples.

Samples are the dicts of :mod:`captum_hint.datasets` (stamp scenes, or an
ImageNet / CUB-200-2011 / VOC2007 folder through its reader), so each
experiment runs on the user's data as well as in the demo.

* :func:`ranking_study` (Fig. 4c, Tables 1–2): Shapley vs ``|coef|`` vs random
  (several seeds) vs LayerConductance vs NetDissect rankings at 10–80 % of
  the neurons, against Grad-CAM and trivial maps;
* :func:`saliency_method_study` (Fig. 4b): HINT fitted with each saliency
  method, then localizing;
* :func:`cascading_randomization_study` (Fig. 5a): the layers above the
  hidden layer randomized top-down, HINT refitted and read through a
  concept's map;
* :func:`adversarial_study` (Fig. 5b): Captum's PGD drives images to a
  target class; the target concept's classifier is applied to the
  attacked images' features.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

import torch
from captum.robust import PGD
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..concepts.hierarchy import ConceptHierarchy
from ..core.checks import check_fraction, check_number, check_positive_int
from ..core.model_state import evaluation_mode
from ..core.stages import forward_order, randomize_parameters, stage_groups, stage_layers
from ..datasets.samples import collate_samples
from ..evaluation.baselines import conductance_ranking, netdissect_ranking
from ..evaluation.benchmark import concept_ground_truth, evaluate_localization, localization_record, summarize_record
from ..evaluation.statistics import bootstrap_mean, spearman_rows
from .collection import FROM_GRADIENT
from .explainer import HINT, fit_in_one_pass

__all__ = ["ranking_study", "saliency_method_study", "cascading_randomization_study", "adversarial_study",
           "random_rankings"]


def random_rankings(hint: HINT, concepts: Sequence[str], seeds: Sequence[int]) -> Dict[str, Dict[str, Tensor]]:
    """``{"random (seed s)": {concept: D scores}}``: one seeded random ranking per seed and concept."""
    width = hint.scores_.shape[0]
    return {f"random (seed {seed})": {c: torch.rand(width, generator=torch.Generator().manual_seed(seed * 1009 + k))
                                      for k, c in enumerate(concepts)} for seed in seeds}


def _concept_batches(samples: Sequence[Dict], concept_leaves: Sequence[Sequence[int]], batch_size: int):
    """(images N x 3 x H x W, masks N x K x H x W) batches over all samples, one mask per concept; re-iterable."""
    leaves = [torch.tensor(sorted(group)) for group in concept_leaves]

    class Batches:  # NetDissect streams the data twice
        def __iter__(self):
            for start in range(0, len(samples), batch_size):
                chunk = samples[start : start + batch_size]
                yield (torch.stack([s["image"] for s in chunk]),
                       torch.stack([torch.stack([s["masks"][torch.isin(s["labels"], group)].any(0) for group in leaves])
                                    for s in chunk]))

    return Batches()


def ranking_study(hint: HINT, train_samples: Sequence[Dict], test_samples: Sequence[Dict], concepts: Sequence[str],
                  fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.8), random_seeds: Sequence[int] = (0, 1, 2),
                  conductance_images: int = 8, netdissect: bool = True, gradcam_layer: Optional[str] = None,
                  thresholds: Optional[Sequence[float]] = None, batch_size: int = 16,
                  progress: bool = False) -> List[Dict]:
    """Fig. 4c and Tables 1–2: localization with every neuron ranking at every fraction.

    Rankings: Shapley (HINT), ``|coef|`` of the full classifier, random (one per
    seed), Captum's LayerConductance on ``conductance_images`` training
    images of the concept, and NetDissect's IoU on the training samples'
    masks (when ``netdissect``; needs masks). Grad-CAM and the trivial maps
    are added once per concept.

    Returns:
        The rows of :func:`~captum_hint.evaluation.evaluate_localization`.
    """
    check_positive_int("conductance_images", conductance_images)
    rankings: Dict[str, Any] = {"shapley": "shapley", "coef": "coef", **random_rankings(hint, concepts, random_seeds)}
    conductance = {}
    for concept in concepts:
        leaves = hint.hierarchy.leaves_under(concept)
        keep, _, _ = concept_ground_truth(train_samples, leaves)
        if not keep:
            raise ValueError(f"train_samples: no sample holds an object under {concept!r}")
        images = torch.stack([train_samples[i]["image"] for i in keep[:conductance_images]]).to(hint.device)
        conductance[concept] = conductance_ranking(hint.model, hint.layer, images, leaves)
    rankings["LayerConductance"] = conductance
    if netdissect:  # one pair of passes over the data for all concepts
        batches = _concept_batches(train_samples, [hint.hierarchy.leaves_under(c) for c in concepts], batch_size)
        scores = netdissect_ranking(hint.model, hint.layer, batches, seed=hint.seed, device=hint.device)  # D x K
        rankings["NetDissect"] = {concept: scores[:, k] for k, concept in enumerate(concepts)}
    kwargs = {} if thresholds is None else {"thresholds": thresholds}
    return evaluate_localization(hint, test_samples, concepts, fractions, rankings, gradcam_layer=gradcam_layer,
                                 batch_size=batch_size, progress=progress, **kwargs)


def saliency_method_study(model: nn.Module, layer: str, hierarchy: ConceptHierarchy, concepts: Sequence[str],
                          train_samples: Sequence[Dict], test_samples: Sequence[Dict],
                          methods: Optional[Dict[str, Dict]] = None, fraction: float = 0.2,
                          hint_kwargs: Optional[Dict] = None, thresholds: Optional[Sequence[float]] = None,
                          batch_size: int = 16, seed: int = 0) -> Dict[str, Any]:
    """Fig. 4b: HINT fitted with each saliency method, then localizing with its top ``fraction`` Shapley neurons.

    Args:
        methods: saliency name -> its ``saliency_kwargs`` (default: the five
            methods with small settings: SmoothGrad 4 samples, IG 8 steps).
        hint_kwargs: further :class:`HINT` arguments shared by every fit.

    Returns:
        A dict with ``"rows"``, the localization rows (method ``"HINT <saliency>"``),
        and ``"held_out"``, each saliency's held-out classifier scores.
    """
    check_fraction("fraction", fraction)
    methods = methods if methods is not None else {
        "gradient": {}, "gradient_x_input": {}, "guided_backprop": {}, "smoothgrad": {"n_samples": 4},
        "integrated_gradients": {"n_steps": 8}}
    loader = DataLoader(list(train_samples), batch_size=batch_size, collate_fn=collate_samples)
    kwargs = {"progress": False, "seed": seed, **(hint_kwargs or {})}
    extra = {} if thresholds is None else {"thresholds": thresholds}
    hints = {name: HINT(model, layer, hierarchy, concepts, saliency=name, saliency_kwargs=saliency_kwargs, **kwargs)
             for name, saliency_kwargs in methods.items()}
    # one backward pass gives the gradient and gradient x input; every other method has its own pass
    from_gradient = [hints[name] for name in hints if name in FROM_GRADIENT]
    for group in ([from_gradient] if from_gradient else []) + [[h] for h in hints.values() if h not in from_gradient]:
        fit_in_one_pass(group, loader, caller="saliency_method_study")
    rows, held_out, outputs = [], {}, {}  # the test images' features serve every method's HINT
    for name, hint in hints.items():
        held_out[name] = hint.held_out_scores()
        for row in evaluate_localization(hint, test_samples, concepts, (fraction,), {"shapley": "shapley"},
                                         baselines=False, batch_size=batch_size, model_outputs=outputs, **extra):
            rows.append({**row, "method": f"HINT {name}"})
    return {"rows": rows, "held_out": held_out}


def _layers_above(model: nn.Module, layer: str, input_shape: Sequence[int]) -> List[str]:
    ends = stage_layers(model, input_shape)
    order = forward_order(model, sorted(set(ends) | {layer}), input_shape)
    return order[order.index(layer) + 1:]


def cascading_randomization_study(model: nn.Module, layer: str, hierarchy: ConceptHierarchy, concept: str,
                                  train_samples: Sequence[Dict], test_samples: Sequence[Dict],
                                  saliency: str = "guided_backprop", fraction: float = 0.2,
                                  hint_kwargs: Optional[Dict] = None, batch_size: int = 16,
                                  seed: int = 0) -> Dict[str, Any]:
    """Fig. 5a: saliency sanity read through a concept classifier, by cascading randomization.

    The units above ``layer`` are grouped by stage (the head first, then
    each stage down to ``layer``, exclusive) and randomized cumulatively,
    top-down, in a copy of the model (:func:`~captum_hint.core.stages.randomize_parameters`,
    seeded). After each step HINT is refitted with ``saliency``: the
    features at ``layer`` are unchanged, so whatever changes in the concept's
    map comes from the saliency that chose the training regions. A
    saliency method that passes the sanity check gives maps that decorrelate
    from the intact model's and stop localizing.

    Returns:
        A dict with ``"steps"``, one dict per step (``"randomized"``: the
        groups randomized so far; ``"spearman"``: (mean, low, high) with the
        intact maps; ``"pxap"``, ``"pointing_15px"``: (value, low, high);
        ``"f1"``: held-out F1); ``"maps"``, steps x N x 1 x H x W maps of the
        first (at most 4) test images holding the concept; ``"images"``,
        their indices.
    """
    input_shape = tuple(test_samples[0]["image"].shape)
    above = _layers_above(model, layer, input_shape)
    groups = stage_groups(model, [layer] + above, input_shape)[:-1]  # the last group is `layer`'s own: kept
    leaves = hierarchy.leaves_under(concept)
    keep, masks, boxes = concept_ground_truth(test_samples, leaves)
    if not keep:
        raise ValueError(f"test_samples: no sample holds an object under {concept!r}")
    images, masks = torch.stack([test_samples[i]["image"] for i in keep]), torch.stack(masks)
    loader = DataLoader(list(train_samples), batch_size=batch_size, collate_fn=collate_samples)
    kwargs = {"progress": False, "seed": seed, **(hint_kwargs or {})}
    working = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(seed)
    steps, shown, reference, randomized = [], [], None, []
    for name, units in [("none", [])] + list(groups):
        randomize_parameters(working, units, generator)
        randomized += [name] if units else []
        hint = HINT(working, layer, hierarchy, [concept], saliency=saliency, **kwargs).fit(loader)
        maps = torch.cat([hint.localize(images[s : s + batch_size], concept, fraction).detach().cpu()
                          for s in range(0, len(images), batch_size)])
        reference = maps if reference is None else reference
        summary = summarize_record(localization_record(maps, masks, boxes), seed=seed)
        steps.append({"randomized": " + ".join(randomized) or "none",
                      "spearman": bootstrap_mean(spearman_rows(maps, reference).numpy(), seed),
                      "pxap": summary["pxap"], "pointing_15px": summary["pointing_15px"],
                      "f1": float(hint.f1_[0])})
        shown.append(maps[:4])
    return {"steps": steps, "maps": torch.stack(shown), "images": keep[:4]}


def adversarial_study(hint: HINT, images: Tensor, target_class: int, concept: str, mean: Sequence[float],
                      std: Sequence[float], radius: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10,
                      fraction: float = 0.2, seed: int = 0) -> Dict[str, Any]:
    """Fig. 5b: attack images to ``target_class`` with Captum's PGD and read the target concept's map.

    The attack runs in pixel space ([0, 1], an L∞ ball of ``radius``) on a
    wrapper that normalizes with ``mean``/``std`` before the model; the
    concept's classifier (top ``fraction`` Shapley neurons) is applied to the
    clean and the attacked images' features.

    Returns:
        A dict with ``"success"`` (N booleans: the top-1 class became the
        target) and, each as a (clean N, attacked N) pair, ``"target_prob"``,
        ``"concept_peak"`` (the map's maximum probability) and
        ``"concept_mass"`` (its mean); ``"maps"``, the (clean, attacked)
        N x 1 x H x W maps; ``"attacked"``, the attacked images (normalized).
    """
    check_positive_int("steps", steps)
    check_number("radius", radius, low=0.0, low_open=True)
    check_fraction("fraction", fraction)
    if not 0 <= target_class < hint.hierarchy.num_classes:
        raise ValueError(f"target_class: expected a class index in [0, {hint.hierarchy.num_classes}), got {target_class}")
    device = hint.device
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def probabilities(pixels: Tensor) -> Tensor:  # PGD's default loss is -log of the target's probability
        return hint.model((pixels - mean_t) / std_t).softmax(1)

    pixels = (images.to(device) * std_t + mean_t).clamp(0, 1)
    with evaluation_mode(hint.model, "adversarial_study", "images"):
        attacked = PGD(probabilities, lower_bound=0.0, upper_bound=1.0).perturb(
            pixels, radius, step_size, steps, target=target_class, targeted=True)
        with torch.no_grad():
            clean_prob, attacked_prob = probabilities(pixels), probabilities(attacked)
    attacked_images = ((attacked - mean_t) / std_t).detach()
    clean_maps = hint.localize(images.to(device), concept, fraction).detach().cpu()
    attacked_maps = hint.localize(attacked_images, concept, fraction).detach().cpu()
    return {
        "success": (attacked_prob.argmax(1) == target_class).cpu(),
        "target_prob": (clean_prob[:, target_class].cpu(), attacked_prob[:, target_class].cpu()),
        "concept_peak": (clean_maps.flatten(1).amax(1), attacked_maps.flatten(1).amax(1)),
        "concept_mass": (clean_maps.flatten(1).mean(1), attacked_maps.flatten(1).mean(1)),
        "maps": (clean_maps, attacked_maps),
        "attacked": attacked_images.cpu(),
    }
