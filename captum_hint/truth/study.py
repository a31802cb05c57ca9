"""The ground-truth study: planted models trained (or loaded), their truth checked, every system scored.

:func:`ground_truth_study` is what ``captum-hint ground-truth`` runs; its
result is plain data (:func:`study_to_json` drops the example maps) so it
saves as ``ground_truth.json`` and reloads exactly.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import torch
from captum.attr import LayerAttribution
from tqdm.auto import tqdm

from ..afi import meta_detector
from ..attr import SemanticGradientXInput
from ..datasets.planted import VARIANTS, PlantedModel, PlantedScenes, check_planted_truth, train_planted_model
from ..datasets.samples import MEAN, STD
from ..evaluation import evaluate_localization, gradcam_maps, localization_table, normalize_maps
from ..gap import chosen_children_map
from .ranks import ranking_table, score_planted_model

__all__ = ["ground_truth_study", "planted_examples", "study_to_json", "FIT_SEED", "TEST_SEED"]

#: Scene seeds of a model with seed ``s``: training ``s``, truth check ``TEST_SEED + s``, rankings ``FIT_SEED + s``.
TEST_SEED, FIT_SEED = 10_000, 20_000


def planted_examples(planted: PlantedModel, samples: Sequence[Dict], hints: Dict, fraction: float,
                     map_methods: Optional[Dict[str, Callable]] = None) -> Dict:
    """One scene per class (the first holding that class alone) and each map of it, for figures.

    Returns ``{"images": K x 3 x H x W, "pixels": the same in [0, 1] RGB, "masks": K x H x W,
    "maps": {name: K x 1 x H x W in [0, 1]}}``:
    the planted channel's map (sigmoid of its pre-activation), each HINT's
    localization with its Shapley ranking at ``fraction``, Grad-CAM, and
    each of ``map_methods`` (name → ``f(images, class)``, as in
    :func:`~captum_hint.evaluation.evaluate_localization`).
    """
    concepts, model = planted.concepts, planted.model
    chosen = []
    for k in range(len(concepts)):
        alone = [s for s in samples if s["present"][k] and int(s["present"].sum()) == 1]
        if not alone:
            raise ValueError(f"samples: expected a scene holding class {concepts[k]!r} alone")
        chosen.append(alone[0])
    images = torch.stack([s["image"] for s in chosen])
    masks = torch.stack([s["concept_masks"][k] for k, s in enumerate(chosen)])
    size = tuple(images.shape[-2:])
    with torch.no_grad():
        _, pre = model.forward_with_concept_logits(images)
    planted_maps = torch.sigmoid(pre[torch.arange(len(concepts)), torch.tensor(planted.planted_)])[:, None]
    maps = {"planted channel": LayerAttribution.interpolate(planted_maps, size, "bilinear")}
    for name, hint in hints.items():
        maps[f"{name} Shapley {fraction:.0%}"] = torch.cat([
            hint.localize(images[k : k + 1], concept, fraction, "shapley", size=size)
            for k, concept in enumerate(concepts)])
    maps["Grad-CAM"] = torch.cat([gradcam_maps(model, planted.layer, images[k : k + 1],
                                               planted.hierarchy.leaves_under(concept), size)
                                  for k, concept in enumerate(concepts)])
    for name, method in (map_methods or {}).items():
        maps[name] = LayerAttribution.interpolate(
            torch.cat([method(images[k : k + 1], concept).detach() for k, concept in enumerate(concepts)]), size,
            "bilinear")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (MEAN, STD))  # PlantedScenes' normalization
    return {"images": images, "pixels": (images * std + mean).clamp(0, 1), "masks": masks,
            "maps": {name: normalize_maps(m.detach().float()).clamp(0, 1) for name, m in maps.items()}}


def ground_truth_study(variants: Sequence[str] = VARIANTS, seeds: Sequence[int] = (0,), fit_scenes: int = 256,
                       test_scenes: int = 256, saliencies: Sequence[str] = ("gradient", "gradient_x_input"),
                       fraction: float = 0.25, train_scenes: int = 1536, epochs: int = 40,
                       occluder_iterations: int = 300, retrain_permutations: int = 16,
                       multimodal: Optional[Sequence[str]] = None, progress: bool = False) -> Dict:
    """Train (or load) the planted models, check their truth, score every ranking and localization.

    For each variant and seed: :func:`train_planted_model` (``train_scenes``, ``epochs``),
    :func:`check_planted_truth` on ``test_scenes`` held-out scenes,
    :func:`score_planted_model` on ``fit_scenes`` one-object scenes (HINT
    with each of ``saliencies``, its retrained Φ with ``retrain_permutations``,
    AfI's occluder for at most ``occluder_iterations`` steps), and the
    localization of HINT (Shapley, ``fraction`` of the neurons), Grad-CAM,
    SeVec's semantic saliency, AfI's meta-detector, gAP's chosen children
    and the centre Gaussian against the masks of the held-out scenes
    (:func:`evaluate_localization`; it needs a fitted HINT, so a model on
    which no HINT could run has none). ``multimodal``, two class names,
    plants a multimodal channel as well (:func:`train_planted_model`): it is
    ranked for each of its classes, and each HINT's
    :meth:`~captum_hint.hint.HINT.multimodal_neurons` (``n=2``) is checked
    for listing it with both.

    Returns:
        A dict: ``settings``; ``models``, one dict per model (variant, seed, planted, config,
        history, truth, ranks, localization, examples); ``tables`` (variant → ``"every class"``
        and ``"truth holds"`` rank tables of the class channels, and ``"multimodal channel"``
        when one is planted). A model's ``multimodal`` entry: per HINT, the neurons
        ``multimodal_neurons(n=2)`` lists and whether the planted one is among them with
        both its classes (``found``). The ``examples`` (tensors, :func:`planted_examples`)
        are for figures and are left out of :func:`study_to_json`.
    """
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"variants: expected names from {VARIANTS}, got {variant!r}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    settings = {"variants": list(variants), "seeds": list(seeds), "train_scenes": train_scenes, "epochs": epochs,
                "fit_scenes": fit_scenes, "test_scenes": test_scenes, "saliencies": list(saliencies),
                "fraction": fraction, "occluder_iterations": occluder_iterations,
                "retrain_permutations": retrain_permutations,
                "multimodal": None if multimodal is None else list(multimodal),
                "test_scene_seed": f"{TEST_SEED} + model seed", "fit_scene_seed": f"{FIT_SEED} + model seed"}
    models = []
    for variant, seed in tqdm([(v, s) for v in variants for s in seeds], desc="planted models", disable=not progress):
        planted = train_planted_model(variant, seed=seed, n_scenes=train_scenes, epochs=epochs, progress=progress,
                                      multimodal=multimodal)
        test = PlantedScenes(test_scenes, seed=TEST_SEED + seed)
        test_samples = [test[i] for i in range(len(test))]
        truth = check_planted_truth(planted, test_samples)  # the rendered samples: no second rendering
        fit = PlantedScenes(fit_scenes, objects=(1, 1), seed=FIT_SEED + seed)
        fitted: Dict = {}
        ranks = score_planted_model(planted, [fit[i] for i in range(len(fit))], saliency=saliencies, seed=seed,
                                    fitted=fitted, occluder_iterations=occluder_iterations,
                                    retrain_permutations=retrain_permutations)
        for row in ranks:
            row["truth_holds"] = (all(entry["holds"] for entry in truth["multimodal"].values())
                                  if row["target"] == "multimodal" else truth["classes"][row["concept"]]["holds"])
        hints = {name: explainer for name, explainer in fitted.items() if name.startswith("HINT")}
        found = {}
        for name, hint in hints.items() if planted.multimodal_ else ():
            listed = {str(neuron): names for neuron, names in hint.multimodal_neurons(n=2).items()}  # JSON's keys
            found[name] = {"listed": listed, "found": all(set(names) <= set(listed.get(str(channel), []))
                                                          for channel, names in planted.multimodal_.items())}
        system_maps = _system_maps(planted, fitted)
        localization = _localization(planted, hints, test_samples, fraction, system_maps)
        models.append({"variant": variant, "seed": seed, "planted": dict(zip(planted.concepts, planted.planted_)),
                       "config": planted.config, "history": planted.history_, "truth": truth, "ranks": ranks,
                       "localization": localization, "multimodal": found,
                       "examples": planted_examples(planted, test_samples, hints, fraction, system_maps)})
    tables = {}
    for variant in variants:
        rows = [r for m in models if m["variant"] == variant for r in m["ranks"] if r["target"] == "planted"]
        tables[variant] = {"every class": ranking_table(rows),
                           "truth holds": ranking_table([r for r in rows if r["truth_holds"]])}
        shared = [r for m in models if m["variant"] == variant for r in m["ranks"] if r["target"] == "multimodal"]
        if shared:
            tables[variant]["multimodal channel"] = ranking_table(shared)
    return {"settings": settings, "models": models, "tables": tables}


def _system_maps(planted: PlantedModel, fitted: Dict) -> Dict[str, Callable]:
    """Each other system's own map of a class: ``f(images, class) -> N x 1 x h x w``.

    SeVec: semantic gradient x input (the class's vector suppresses the
    layer's irrelevant units in the backward pass), absolute, summed over
    colours; AfI: the meta-detector (Eq. 9) with its channel importance as
    weights; gAP: the chosen children's maps of the class's decision at the
    planted layer (:func:`~captum_hint.gap.chosen_children_map`). AfI's map
    is left out when its occluder could not run for every class (its rank
    rows then carry the error).
    """
    model, layer, hierarchy = planted.model, planted.layer, planted.hierarchy
    semantic = SemanticGradientXInput(model, layer)

    def sevec(images, concept):
        vector = fitted["SeVec"].vector(concept)
        return semantic.attribute(images, target=set(hierarchy.leaves_under(concept)),
                                  semantic_vector=vector).abs().sum(1, keepdim=True)

    def afi(images, concept):
        return meta_detector(model, layer, fitted["AfI"][concept], images).clamp_min(0)

    def gap(images, concept):
        leaves = hierarchy.leaves_under(concept)
        return chosen_children_map(model, layer, images, leaves[0] if len(leaves) == 1 else set(leaves))

    maps = {"SeVec semantic saliency": sevec, "gAP chosen children": gap}
    if fitted.get("AfI") and len(fitted["AfI"]) == len(planted.concepts):
        maps["AfI meta-detector"] = afi
    return maps


def _localization(planted: PlantedModel, hints: Dict, samples: List[Dict], fraction: float,
                  map_methods: Dict[str, Callable]) -> List[Dict]:
    """Mask PxAP (and the WSOL record) of each HINT, Grad-CAM, the other systems' maps and the trivial ones."""
    table, first = [], True
    for name, hint in hints.items():
        rows = evaluate_localization(hint, samples, planted.concepts, fractions=(fraction,),
                                     rankings={"shapley": "shapley"}, gradcam_layer=planted.layer if first else None,
                                     baselines=first, map_methods=map_methods if first else None)
        table += [{**row, "method": row["method"].replace("HINT (shapley)", f"{name} Shapley")}
                  for row in localization_table(rows)]
        first = False
    return table


def study_to_json(study: Dict) -> Dict:
    """The study without its example tensors, ready for ``json.dump``.

    A rank that could not be computed is NaN and the bottleneck's ablation
    ratio can be infinite: Python's ``json`` writes and reads both back exactly.
    """
    return {**study, "models": [{k: v for k, v in m.items() if k != "examples"} for m in study["models"]]}

