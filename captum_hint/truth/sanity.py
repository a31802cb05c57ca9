"""Sanity checks for neuron explanations (after Adebayo et al., NeurIPS 2018, for rankings instead of maps).

Each check takes a *ranking function* ``rankings(model, samples) -> {concept: D
scores}`` that fits an explainer and returns its neuron ranking per concept;
:func:`system_rankings` builds one for HINT, SeVec and AfI.

* :func:`label_randomization_check`: the images keep their pixels but get
  another image's annotations (labels, masks, boxes); an explanation of the
  concepts must lose its agreement with the original (Spearman correlation
  near 0). No network is retrained: what is randomized is the concept data.
* :func:`cascading_randomization_check`: the model's layers are re-initialized
  one after another from the output down, through the explained layer and
  below it, on a copy of the model; a ranking that depends on the model
  moves away from the original as the cascade goes on.
* :func:`split_half_stability`: the explainer fitted on two disjoint halves of
  the data; the overlap of their top-k neurons (1 = the same set).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
from scipy.stats import spearmanr
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..attr import resolve_layer
from ..attr.activation_propagation import layer_output
from ..concepts.hierarchy import ConceptHierarchy
from ..core.checks import check_positive_int
from ..datasets.samples import collate_samples
from ..evaluation import bootstrap_mean
from ..hint import HINT
from ..sevec import SemanticVectors
from .ranks import afi_channel_importance, images_of_class

__all__ = ["ANNOTATION_KEYS", "cascading_randomization_check", "label_randomization_check", "rank_correlation",
           "split_half_stability", "system_rankings", "top_k_overlap"]

#: What a sample says about its concepts (moved together by the label randomization); the image stays.
ANNOTATION_KEYS = ("label", "labels", "masks", "boxes", "concept_masks", "present")

RankingFunction = Callable[[nn.Module, Sequence[Dict]], Dict[str, Tensor]]


def rank_correlation(first: Tensor, second: Tensor) -> float:
    """Spearman's rank correlation of two D-score rankings (SciPy; ties get their mean rank).

    NaN when either ranking is constant or holds NaN (a system that could not rank).
    """
    if first.shape != second.shape or first.dim() != 1:
        raise ValueError(f"second: expected D scores like first {tuple(first.shape)}, got {tuple(second.shape)}")
    if bool(first.isnan().any() or second.isnan().any()):
        return math.nan  # a system that could not rank
    if bool((first == first[0]).all()) or bool((second == second[0]).all()):
        return math.nan  # a constant ranking has no order to agree with
    return float(spearmanr(first.double().numpy(), second.double().numpy()).statistic)


def top_k_overlap(first: Tensor, second: Tensor, k: int) -> float:
    """The share of ``first``'s top-``k`` neurons that are also in ``second``'s top-``k`` (NaN if either holds NaN)."""
    check_positive_int("k", k)
    if k > len(first):
        raise ValueError(f"k: expected at most {len(first)} (the number of neurons), got {k}")
    if bool(first.isnan().any() or second.isnan().any()):
        return math.nan
    top_first, top_second = set(first.topk(k).indices.tolist()), set(second.topk(k).indices.tolist())
    return len(top_first & top_second) / k


def system_rankings(system: str, layer: str, hierarchy: ConceptHierarchy, concepts: Sequence[str],
                    saliency: str = "gradient_x_input", class_images: int = 32, occluder_iterations: int = 300,
                    batch_size: int = 32, use_layer_input: bool = False, seed: int = 0) -> RankingFunction:
    """A ranking function for ``system``: ``"HINT (shapley)"``, ``"HINT (coef)"``, ``"SeVec"`` or ``"AfI"``.

    HINT is fitted with ``saliency``; SeVec's vector is summed over each
    channel's positions (spatial representation); AfI's channel importance
    comes from an occluder fitted on at most ``class_images`` images of each
    concept (NaN scores, with a warning, for a concept none of whose images
    the model classifies as it). Rankings are per channel for SeVec and AfI, per neuron (HINT's
    neurons are the layer's channels) for HINT. ``use_layer_input`` (SeVec
    only) takes the layer's input, e.g. the rectified input of a pooling layer.
    """
    if use_layer_input and system != "SeVec":
        raise ValueError(f"use_layer_input: only SeVec takes a layer's input, not {system!r}")
    systems = ("HINT (shapley)", "HINT (coef)", "SeVec", "AfI")
    if system not in systems:
        raise ValueError(f"system: expected one of {systems}, got {system!r}")

    def loader(samples):
        return DataLoader(list(samples), batch_size=batch_size, collate_fn=collate_samples)

    def rankings(model: nn.Module, samples: Sequence[Dict]) -> Dict[str, Tensor]:
        if system.startswith("HINT"):
            hint = HINT(model, layer, hierarchy, concepts, saliency=saliency, seed=seed, progress=False)
            hint.fit(loader(samples))
            kind = "shapley" if system == "HINT (shapley)" else "coef"
            return {c: hint.neuron_ranking(c, kind) for c in concepts}
        if system == "SeVec":
            sevec = SemanticVectors(model, layer, concepts, hierarchy, use_layer_input=use_layer_input,
                                    progress=False).fit(loader(samples))
            with torch.no_grad():
                channels = layer_output(model, resolve_layer(model, layer), samples[0]["image"][None],
                                        layer_input=use_layer_input).shape[1]
            return {c: sevec.vector(c).view(channels, -1).sum(1) for c in concepts}
        result = {}
        for concept in concepts:
            leaves = hierarchy.leaves_under(concept)
            images = images_of_class(samples, leaves, class_images)
            try:
                result[concept] = afi_channel_importance(model, layer, images, leaves, seed, occluder_iterations)
            except ValueError as error:  # no image classified as the concept: no occluder, no ranking
                warnings.warn(f"system_rankings: AfI has no ranking for {concept!r}: {error}", stacklevel=2)
                with torch.no_grad():
                    channels = layer_output(model, resolve_layer(model, layer), images[:1]).shape[1]
                result[concept] = torch.full((channels,), math.nan)
        return result

    return rankings


def _shuffled_annotations(samples: Sequence[Dict], generator: torch.Generator) -> List[Dict]:
    order = torch.randperm(len(samples), generator=generator).tolist()
    return [{**sample, **{key: samples[j][key] for key in ANNOTATION_KEYS if key in samples[j]}}
            for sample, j in zip(samples, order)]


def label_randomization_check(rankings: RankingFunction, model: nn.Module, samples: Sequence[Dict],
                              repeats: int = 1, seed: int = 0) -> Dict:
    """Concept-label randomization: the rankings' Spearman correlation with the original after shuffling annotations.

    Each repeat gives every image another image's annotations
    (:data:`ANNOTATION_KEYS`, one seeded permutation) and refits.

    Returns:
        ``{"original": {concept: D}, "correlation": {concept: [one per repeat]}, "mean": float}``.
    """
    check_positive_int("repeats", repeats)
    original = rankings(model, samples)
    generator = torch.Generator().manual_seed(seed)
    correlation: Dict[str, List[float]] = {c: [] for c in original}
    for _ in range(repeats):
        shuffled = rankings(model, _shuffled_annotations(samples, generator))
        for concept, scores in original.items():
            correlation[concept].append(rank_correlation(scores, shuffled[concept]))
    values = [v for vs in correlation.values() for v in vs if not math.isnan(v)]
    return {"original": original, "correlation": correlation, "mean": sum(values) / len(values) if values else math.nan}


def _cascade(model: nn.Module, modules: Optional[Sequence[str]]) -> List[str]:
    """Modules with parameters of their own, from the output down (their registration order reversed)."""
    if modules is not None:
        names = dict(model.named_modules())
        missing = [m for m in modules if m not in names]
        if missing:
            raise ValueError(f"modules: {missing} are not modules of the model")
        return list(modules)
    return [name for name, module in reversed(list(model.named_modules()))
            if name and any(True for _ in module.parameters(recurse=False))]


def cascading_randomization_check(rankings: RankingFunction, model: nn.Module, samples: Sequence[Dict],
                                  modules: Optional[Sequence[str]] = None, seed: int = 0) -> Dict:
    """Re-initialize the model's layers from the output down, one more per step; the rankings' agreement each step.

    Works on a deep copy: the user's model is not touched. Each step
    re-initializes every submodule of the named module with its own
    ``reset_parameters`` (PyTorch's default initialization, seeded);
    BatchNorm layers get fresh statistics too.

    Args:
        modules: the cascade's order (dotted names, e.g. whole blocks); default
            every module with parameters of its own, output first.

    Returns:
        A dict: ``steps`` (the module names), ``correlation`` (concept → one value per step),
        ``mean`` (one per step) and ``errors`` (step → message); a step where the ranking cannot
        be computed (it raises a ``ValueError``) gives NaN correlations and its message.
    """
    order = _cascade(model, modules)
    original = rankings(model, samples)
    randomized = copy.deepcopy(model)
    named = dict(randomized.named_modules())
    correlation: Dict[str, List[float]] = {c: [] for c in original}
    means, errors = [], {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in order:
            resettable = [m for m in named[name].modules() if hasattr(m, "reset_parameters")]
            if not resettable:
                raise ValueError(f"modules: {name!r} holds no module with reset_parameters()")
            for module in resettable:
                module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
            try:
                now = rankings(randomized, samples)
            except ValueError as error:  # e.g. AfI: a random head classifies no image as the concept
                errors[name] = str(error)
                now = {c: torch.full_like(original[c], math.nan) for c in original}
            step = [rank_correlation(original[c], now[c]) for c in original]
            for concept, value in zip(original, step):
                correlation[concept].append(value)
            finite = [v for v in step if not math.isnan(v)]
            means.append(sum(finite) / len(finite) if finite else math.nan)
    return {"steps": order, "correlation": correlation, "mean": means, "errors": errors}


def split_half_stability(rankings: RankingFunction, model: nn.Module, samples: Sequence[Dict], k: int = 3,
                         splits: int = 3, seed: int = 0) -> Dict:
    """The explainer fitted on two disjoint random halves; the overlap@k of their top-k per concept.

    Returns:
        A dict: ``overlap`` and ``correlation`` (concept → one value per split), ``mean``,
        ``low``, ``high`` (the mean overlap@k with its 95 % bootstrap interval over (split,
        concept)), ``k`` and ``chance`` (k / D, what two random rankings of the D neurons give
        in expectation).
    """
    check_positive_int("splits", splits)
    check_positive_int("k", k)
    if len(samples) < 2:
        raise ValueError(f"samples: expected at least 2 to split, got {len(samples)}")
    generator = torch.Generator().manual_seed(seed)
    overlap: Dict[str, List[float]] = {}
    correlation: Dict[str, List[float]] = {}
    for _ in range(splits):
        order = torch.randperm(len(samples), generator=generator).tolist()
        half = len(order) // 2
        first = rankings(model, [samples[i] for i in order[:half]])
        second = rankings(model, [samples[i] for i in order[half:]])
        for concept in first:
            overlap.setdefault(concept, []).append(top_k_overlap(first[concept], second[concept], k))
            correlation.setdefault(concept, []).append(rank_correlation(first[concept], second[concept]))
    mean, low, high = bootstrap_mean([v for vs in overlap.values() for v in vs], seed=seed)
    n_neurons = len(next(iter(first.values())))
    return {"overlap": overlap, "correlation": correlation, "mean": mean, "low": low, "high": high, "k": k,
            "chance": k / n_neurons}
