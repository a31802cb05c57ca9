"""HINT, end to end: regions -> concept classifiers -> Shapley scores -> associations.

::

    hint = HINT(model, layer="_blocks.10", hierarchy=h,
                concepts=["whole.n.02", "animal.n.01", "mammal.n.01"])
    hint.fit(dataloader)
    hint.scores_                      # neurons x concepts (Shapley values, Eq. 2)
    hint.top_neurons("mammal.n.01", n=10)
    maps = hint.localize(images, "animal.n.01", top_fraction=0.2)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn

from ..attr import SALIENCY_METHODS, saliency_method
from ..attr._base import check_image_batch, resolve_layer
from ..concepts.hierarchy import ConceptHierarchy
from ..concepts.scores import check_concept_score
from ..core.checks import check_finite, check_fraction, check_number, check_positive_int, check_tensor
from ..core.model_state import evaluation_mode, model_device
from .classifiers import HELD_OUT_SCORES, HOLDOUT, ConceptClassifier, fit_concept_classifiers, held_out_intervals
from .collection import REGION_RULES, check_label_source, stream_regions
from .distributed import broadcast_from_rank0, rank_and_world
from .regions import Aggregation, RegionBank, training_targets
from .shapley import NeuronConceptShapley

__all__ = ["HINT", "fit_layers"]

_FORMAT = "captum_hint.HINT/3"  # 3: bank rows store the concepts of their image, concept_score
#: Arguments of NeuronConceptShapley.attribute that HINT itself sets.
_SHAPLEY_RESERVED = ("regions", "pool", "return_standard_error", "training_data")


def _check_shapley_kwargs(shapley_kwargs: Dict[str, Any]) -> None:
    reserved = sorted(set(shapley_kwargs) & set(_SHAPLEY_RESERVED))
    if reserved:
        raise ValueError(f"shapley_kwargs: {', '.join(map(repr, reserved))} are set by HINT (the regions, the "
                         "baseline pool and the retraining data come from the fitted region bank); remove them")


def _layer_name(model: nn.Module, layer: Union[str, nn.Module]) -> str:
    if isinstance(layer, str):
        resolve_layer(model, layer)  # fails clearly on an unknown name
        return layer
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise ValueError("layer: the given module is not a submodule of model")


class HINT:
    """Hierarchical Neuron Concept Explainer for one layer of a classifier.

    Args:
        model: the classifier (N x 3 x H x W -> N x C logits), in eval mode.
        layer: the layer module or its dotted name; its output must be N x D x h x w.
        hierarchy: a :class:`~captum_hint.ConceptHierarchy` whose leaves are
            the model's classes.
        concepts: the concept set (names, wnids or words); default every
            non-leaf concept with at least 2 leaves (at most 64 of them).
            A concept covering every class is refused under
            ``concept_score="log_probability"`` with ``saliency_target="concept"``
            (its score, log 1, is constant: no region stands out) and left
            out of the default set.
        saliency: ``"smoothgrad"`` (default), ``"gradient"``,
            ``"gradient_x_input"``, ``"integrated_gradients"``,
            ``"guided_backprop"`` or a saliency class.
        saliency_kwargs: passed to the saliency's ``attribute``.
        saliency_target: ``"concept"`` (the concept's score; one saliency map
            per image and concept) or ``"leaf"`` (the image's class, shared by
            all its concepts, as in the reference code).
        concept_score: the score a concept's saliency explains:
            ``"log_probability"`` (softmax; single-label classifiers) or
            ``"logit"`` (the log-sum-exp of its leaves' logits; for
            multi-label models, whose scenes hold several classes: the
            log-probability of one class also depends on the others'
            logits, so its saliency lights up their objects too). See
            :func:`~captum_hint.concepts.concept_scores`.
        aggregation, threshold, percentile: region extraction (see
            :func:`~captum_hint.responsible_regions`).
        regions: ``"saliency"`` (the paper's rule: a concept's responsible
            positions are its salient ones, the background every position
            salient for none of the image's concepts) or
            ``"saliency_on_objects"`` (for data with object masks, such as
            :class:`~captum_hint.datasets.StampScenes`: the salient positions
            that lie on an object of the concept, and as background every
            position on no object of the image's concepts, other objects
            included; a position is on an object when any of its pixels is).
            The saliency of a concept also marks other objects of a scene,
            which the paper's rule makes positives; see the HINT page's
            *Does a map say whether the concept is there?*.
        max_regions_per_concept, max_background, store_dtype: the memory bound
            of the region bank (see :class:`~captum_hint.hint.regions.RegionBank`).
        classifier_kwargs: passed to :func:`~captum_hint.hint.classifiers.fit_concept_classifiers`.
        shapley_kwargs: passed to :meth:`NeuronConceptShapley.attribute`
            (defaults: ``n_permutations=64``, ``baseline="marginal"``).
        n_regions: regions Eq. 2 averages over (a seeded sample of the bank).
        batch_size: rows per forward pass of the saliency (images, SmoothGrad
            noisy copies or IG path points): it bounds peak memory, whatever
            the number of concepts or noise samples (see
            :class:`~captum_hint.attr.SharedPassSaliency`).
        seed: seeds every random choice (SmoothGrad noise on rank ``r`` of a
            distributed run: ``seed + r``).
        device: where the model, the classifiers and the Shapley values run
            (default: the model's device); batches are moved there.
        progress: show tqdm bars.

    Collection runs one forward pass per batch whose backward passes (one per
    concept slot) serve every concept of every image. Under
    ``torch.distributed`` (launched by ``torchrun``, each rank streaming its
    shard through a ``DistributedSampler``), the ranks' region banks are
    merged and the classifiers and Shapley values are computed on rank 0 and
    broadcast (see :mod:`captum_hint.hint.distributed`).

    Fitted attributes: ``scores_`` (D x K), ``standard_errors_`` (D x K),
    ``classifiers_`` (K :class:`ConceptClassifier`), ``f1_`` (K),
    ``bank_`` (the regions), ``n_images_``,
    ``input_shape_`` (C x H x W of the images).

    The model is never changed: every forward runs in eval mode (a model in
    train mode is put back in train mode, with a warning), and hooks and
    ``requires_grad`` flags are left as they were.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: Union[str, nn.Module],
        hierarchy: ConceptHierarchy,
        concepts: Optional[Sequence[str]] = None,
        saliency: Union[str, type] = "smoothgrad",
        aggregation: Aggregation = "l2",
        threshold: float = 0.5,
        percentile: float = 99.0,
        regions: str = "saliency",
        saliency_target: str = "concept",
        concept_score: str = "log_probability",
        saliency_kwargs: Optional[Dict[str, Any]] = None,
        max_regions_per_concept: int = 4000,
        max_background: int = 16000,
        store_dtype: torch.dtype = torch.float16,
        classifier_kwargs: Optional[Dict[str, Any]] = None,
        shapley_kwargs: Optional[Dict[str, Any]] = None,
        n_regions: int = 512,
        batch_size: int = 16,
        seed: int = 0,
        device=None,
        progress: bool = True,
    ):
        check_fraction("threshold", threshold, allow_one=False)
        check_number("percentile", percentile, 0.0, 100.0, low_open=True)
        for name, value in (("max_regions_per_concept", max_regions_per_concept), ("max_background", max_background),
                            ("n_regions", n_regions), ("batch_size", batch_size)):
            check_positive_int(name, value)
        _check_shapley_kwargs(shapley_kwargs or {})
        if regions not in REGION_RULES:
            raise ValueError(f"regions: expected one of {', '.join(map(repr, REGION_RULES))}, got {regions!r}")
        if saliency_target not in ("concept", "leaf"):
            raise ValueError(f"saliency_target: expected 'concept' or 'leaf', got {saliency_target!r}")
        self.concept_score = check_concept_score(concept_score)
        self.model = model
        self.layer = _layer_name(model, layer)
        self.hierarchy = hierarchy
        constant = saliency_target == "concept" and self.concept_score == "log_probability"

        def covers_every_class(concept: str) -> bool:
            return len(hierarchy.leaves_under(concept)) == hierarchy.num_classes

        if concepts is None:  # those with 2+ leaves; under a constant score not those covering every class
            concepts = [c for c in hierarchy.select(min_leaves=2) if not (constant and covers_every_class(c))]
            if len(concepts) > 64:
                raise ValueError(
                    f"concepts: the hierarchy has {len(concepts)} concepts with 2+ leaves; choose a "
                    "concept set, e.g. hierarchy.select(min_leaves=50)"
                )
        self.concepts = [hierarchy.lookup(c) for c in concepts]
        if not self.concepts:
            raise ValueError("concepts: the concept set is empty")
        whole = [c for c in self.concepts if covers_every_class(c)]
        if whole and constant:
            raise ValueError(
                f"concepts: {', '.join(whole)} cover(s) every class of the model, so the concept's score "
                "log P(concept) = log 1 is the same for every image and its saliency is zero: there are no regions "
                "to find. Use the concepts below it, or concept_score='logit' (the log-sum-exp of its classes' "
                "logits, which does vary), or saliency_target='leaf'")
        self._saliency_cls = saliency_method(saliency)
        self.saliency = next((n for n, c in SALIENCY_METHODS.items() if c is self._saliency_cls), self._saliency_cls.__name__)
        self.saliency_kwargs = dict(saliency_kwargs or {})
        self.saliency_target = saliency_target
        self.aggregation, self.threshold, self.percentile = aggregation, threshold, percentile
        self.regions = regions
        self.max_regions_per_concept, self.max_background = max_regions_per_concept, max_background
        self.store_dtype = store_dtype
        self.classifier_kwargs = dict(classifier_kwargs or {})
        self.shapley_kwargs = {"n_permutations": 64, "baseline": "marginal", **(shapley_kwargs or {})}
        self.n_regions, self.batch_size, self.seed, self.progress = n_regions, batch_size, seed, progress
        self.device = model_device(model, device)
        self._localizers: Dict[Tuple[int, Tuple[int, ...]], ConceptClassifier] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def layer_module(self) -> nn.Module:
        """The layer as a module of ``model`` (``layer`` is its dotted name)."""
        return resolve_layer(self.model, self.layer)

    def _forward_with_features(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """(logits N x C, layer output N x D x h x w) in one no-grad forward (model in eval mode)."""
        captured = {}
        handle = self.layer_module.register_forward_hook(lambda m, i, o: captured.__setitem__("z", o))
        try:
            with torch.no_grad():
                logits = self.model(images)
        finally:
            handle.remove()
        features = captured["z"]
        if not isinstance(features, Tensor) or features.dim() != 4:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"layer: HINT needs a layer whose output is N x D x h x w (spatial); {self.layer!r} gives {shape}"
            )
        check_finite(f"layer {self.layer!r} output", features, "the model's activations must be finite")
        return logits, features

    def _saliency(self, images: Tensor, targets: List[int], forward_func: nn.Module) -> Tensor:
        """A user's saliency class on ``forward_func``, one call per ``batch_size`` (image, target index) pairs."""
        method = self._saliency_cls(forward_func, self.layer_module)
        return torch.cat([
            method.attribute(images[s : s + self.batch_size], target=targets[s : s + self.batch_size],
                             **self.saliency_kwargs)
            for s in range(0, len(images), self.batch_size)
        ])

    # ------------------------------------------------------------------ fit
    def fit(self, dataloader: Iterable, labels: str = "given") -> "HINT":
        """Collect regions from ``dataloader``, train concept classifiers, score neurons.

        Args:
            dataloader: yields images, ``(images, leaf labels)`` or dicts with
                ``"image"``/``"label"``; streamed once. Leaf labels are N
                class indices, or an N x C 0/1 matrix for images holding
                objects of several classes: an image is then under every
                concept one of its leaves is under, and its responsible
                regions are found for each of them.
            labels: ``"given"`` (use the batches' leaf labels),
                ``"predicted"`` (use the model's top-1 classes) or
                ``"objects"`` (every object's class, the ``"labels"`` list
                of :func:`~captum_hint.datasets.collate_samples` batches).

        Returns:
            self.
        """
        check_label_source(labels)
        with evaluation_mode(self.model, "HINT.fit", "dataloader"):
            return self._fit(dataloader, labels)

    def _fit(self, dataloader: Iterable, labels: str) -> "HINT":
        (bank,), n_images = stream_regions([self], dataloader, labels)
        return self._fit_bank(bank, n_images)

    def _fit_bank(self, bank: RegionBank, n_images: int) -> "HINT":
        """Classifiers and Shapley scores from a filled bank (on rank 0 under torch.distributed, then shared)."""
        self.bank_, self.n_images_ = bank, n_images
        self._training = None
        self._localizers = {}  # classifiers of an earlier fit must not be reused
        rank, world = rank_and_world()
        if rank == 0:
            self._fit_classifiers()
            self._score_neurons()
        if world > 1:
            self._share_fitted()
        return self

    def _fitted_tensors(self) -> List[Tensor]:
        """Scores, standard errors, coef, intercept, F1 and held-out scores, as :meth:`_set_fitted` takes them."""
        held_out = torch.tensor([[getattr(c, name, float("nan")) for name in HELD_OUT_SCORES] for c in self.classifiers_],
                                dtype=torch.float64)
        return [self.scores_, self.standard_errors_, torch.stack([c.coef_ for c in self.classifiers_]),
                torch.stack([c.intercept_ for c in self.classifiers_]), self.f1_.double(), held_out]

    def _set_fitted(self, scores: Tensor, errors: Tensor, coef: Tensor, intercept: Tensor, f1: Tensor,
                    held_out: Tensor) -> None:
        self.scores_, self.standard_errors_ = scores, errors
        self.f1_ = f1.float()
        self.classifiers_ = []
        for k, concept in enumerate(self.concepts):
            classifier = ConceptClassifier(**{key: v for key, v in self.classifier_kwargs.items()
                                              if key in ("epochs", "batch_size", "lr", "weight_decay", "holdout")})
            classifier.coef_, classifier.intercept_ = coef[k], intercept[k]
            classifier.concept, classifier.f1_ = concept, float(f1[k])
            for name, value in zip(HELD_OUT_SCORES, held_out[k].tolist()):
                if name != "f1_":  # the F1 is f1[k]
                    setattr(classifier, name, value)
            self.classifiers_.append(classifier)

    def _share_fitted(self) -> None:
        """Every rank takes rank 0's classifiers and scores."""
        width, n_concepts = self.bank_.rows()[0].shape[1], len(self.concepts)
        placeholders = [torch.zeros(width, n_concepts), torch.zeros(width, n_concepts), torch.zeros(n_concepts, width),
                        torch.zeros(n_concepts), torch.zeros(n_concepts, dtype=torch.float64),
                        torch.zeros(n_concepts, len(HELD_OUT_SCORES), dtype=torch.float64)]
        mine = self._fitted_tensors() if rank_and_world()[0] == 0 else placeholders
        self._set_fitted(*broadcast_from_rank0(mine))

    def _training_data(self) -> Tuple[Tensor, Tensor, Tensor]:
        """(vectors, targets, image ids) of the bank, built once per fit (or load)."""
        if getattr(self, "_training", None) is None:
            vectors, buckets, under, images = self.bank_.rows()
            self._training = vectors, training_targets(buckets, under), images
        return self._training

    def _fit_classifiers(self) -> None:
        vectors, targets, images = self._training_data()
        kwargs = {"seed": self.seed, "progress": self.progress, "device": self.device, **self.classifier_kwargs}
        self.classifiers_ = fit_concept_classifiers(vectors, targets, images, self.concepts, **kwargs)
        self.f1_ = torch.tensor([c.f1_ for c in self.classifiers_])

    def _score_neurons(self) -> None:
        self.scores_, self.standard_errors_ = self._shapley(self.shapley_kwargs)

    def _shapley(self, shapley_kwargs: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
        """(D x K values, standard errors) of Eq. 2 on the fitted bank's regions."""
        vectors, targets, _ = self._training_data()
        generator = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(len(vectors), generator=generator)[: self.n_regions]
        pool = torch.randperm(len(vectors), generator=generator)[: 4096]
        kwargs = {"seed": self.seed, "progress": self.progress, "device": self.device, **shapley_kwargs}
        if kwargs.get("retrain"):  # the paper's L^<S>: re-fitted on the bank's regions and targets
            kwargs["training_data"] = (vectors.float(), targets)
        values, errors = NeuronConceptShapley(self.classifiers_).attribute(
            vectors[chosen].float(), pool=vectors[pool].float(), return_standard_error=True, **kwargs
        )
        return values.cpu(), errors.cpu()

    def shapley_values(self, **shapley_kwargs) -> Tuple[Tensor, Tensor]:
        """Eq. 2 again on the fitted regions and classifiers, with other Shapley settings; nothing is stored.

        ``shapley_kwargs`` override the fit's (see :class:`HINT`), e.g.
        ``retrain=True, n_permutations=16`` for the paper's variant whose
        classifier is re-fitted on every coalition (the bank's regions and
        targets are its training data). Returns (D x K values, standard errors).
        """
        self._check_fitted()
        _check_shapley_kwargs(shapley_kwargs)
        return self._shapley({**self.shapley_kwargs, **shapley_kwargs})

    # ------------------------------------------------------------------ associations
    def _check_fitted(self) -> None:
        if not hasattr(self, "scores_"):
            raise RuntimeError("HINT: call fit() first (or HINT.load a fitted one)")

    def _index(self, concept: str) -> int:
        name = self.hierarchy.lookup(concept)
        if name not in self.concepts:
            raise ValueError(f"concept: {name!r} is not in the concept set {self.concepts}")
        return self.concepts.index(name)

    def held_out_scores(self) -> Dict[str, Dict[str, float]]:
        """Per concept: the classifier's held-out F1, ROC-AUC, average precision and balanced accuracy.

        Scored on the regions of the held-out images (``classifier_kwargs``'
        ``holdout``, 20 % of the images by default).
        """
        self._check_fitted()
        return {c.concept: {name.rstrip("_"): getattr(c, name, float("nan")) for name in HELD_OUT_SCORES}
                for c in self.classifiers_}

    def held_out_intervals(self, seed: int = 0, rounds: int = 2000) -> Dict[str, Dict[str, Tuple[float, float, float]]]:
        """Per concept: held-out F1 and ROC-AUC as ``(value, low, high)``, a 95 % bootstrap over held-out images.

        The values equal :meth:`held_out_scores`' (the same held-out images,
        redrawn from the fit's seed); ``seed`` seeds the resampling only.
        """
        self._check_fitted()
        check_positive_int("rounds", rounds)
        check_positive_int("seed", seed, minimum=0)
        vectors, targets, images = self._training_data()
        settings = {"holdout": HOLDOUT, "seed": self.seed, **self.classifier_kwargs}
        intervals = held_out_intervals(self.classifiers_, vectors, targets, images, settings["holdout"],
                                       settings["seed"], seed, rounds)
        return dict(zip(self.concepts, intervals))

    def top_neurons(self, concept: str, n: int = 10):
        """The ``n`` neurons with the highest score for ``concept`` (``torch.topk`` result)."""
        self._check_fitted()
        return torch.topk(self.scores_[:, self._index(concept)], min(n, self.scores_.shape[0]))

    def concepts_of(self, neuron: int, n: int = 5) -> List[Tuple[str, float]]:
        """The ``n`` concepts a neuron scores highest for, as (concept, score) pairs."""
        self._check_fitted()
        if not 0 <= neuron < self.scores_.shape[0]:
            raise ValueError(f"neuron: {neuron} is out of range (0..{self.scores_.shape[0] - 1})")
        top = torch.topk(self.scores_[neuron], min(n, len(self.concepts)))
        return [(self.concepts[k], float(v)) for v, k in zip(top.values, top.indices)]

    def multimodal_neurons(self, n: int = 10, min_concepts: int = 2) -> Dict[int, List[str]]:
        """Neurons in the top ``n`` of at least ``min_concepts`` concepts, most shared first."""
        self._check_fitted()
        top = torch.topk(self.scores_, min(n, self.scores_.shape[0]), dim=0).indices  # n x K
        shared: Dict[int, List[str]] = {}
        for k, concept in enumerate(self.concepts):
            for neuron in top[:, k].tolist():
                shared.setdefault(neuron, []).append(concept)
        chosen = {d: cs for d, cs in shared.items() if len(cs) >= min_concepts}
        return dict(sorted(chosen.items(), key=lambda item: (-len(item[1]), item[0])))

    def plot_associations(self, concepts: Optional[Sequence[str]] = None, n: int = 10, ax=None):
        """Concepts (with F1) linked to their top-``n`` neurons; link width = score (Fig. 2)."""
        from .plotting import plot_associations

        self._check_fitted()
        chosen = [self._index(c) for c in concepts] if concepts is not None else list(range(len(self.concepts)))
        labels = [self.hierarchy.label(self.concepts[k]) for k in chosen]
        return plot_associations(self.scores_[:, chosen], labels, self.f1_[chosen], n=n, ax=ax)

    # ------------------------------------------------------------------ localization
    def neuron_ranking(self, concept: str, ranking: Union[str, Tensor] = "shapley") -> Tensor:
        """Scores that rank neurons for ``concept``: ``"shapley"``, ``"coef"``, ``"random"`` or a D tensor."""
        self._check_fitted()
        k = self._index(concept)
        n_neurons = self.scores_.shape[0]
        if isinstance(ranking, Tensor):
            if ranking.shape != (n_neurons,):
                raise ValueError(f"ranking: expected a tensor of {n_neurons} neuron scores, got {tuple(ranking.shape)}")
            return ranking.float().cpu()
        if ranking == "shapley":
            return self.scores_[:, k]
        if ranking == "coef":
            return self.classifiers_[k].coef_.abs()
        if ranking == "random":
            return torch.rand(n_neurons, generator=torch.Generator().manual_seed(self.seed + k))
        raise ValueError(f"ranking: expected 'shapley', 'coef', 'random' or a tensor, got {ranking!r}")

    def _selection(self, concept: str, top_fraction: float, ranking: Union[str, Tensor]) -> Tuple[int, Tensor]:
        check_fraction("top_fraction", top_fraction)
        scores = self.neuron_ranking(concept, ranking)
        n_keep = max(1, math.ceil(top_fraction * len(scores)))
        return self._index(concept), torch.topk(scores, n_keep).indices.sort().values

    def fit_localizers(self, selections: Sequence[Tuple[str, float, Union[str, Tensor]]]) -> "HINT":
        """Train the localizers of many ``(concept, top_fraction, ranking)`` at once; returns self.

        All of them (and every concept) train in one pass over the stored
        regions (:func:`fit_concept_classifiers` with ``feature_masks``); each
        equals a separate fit on its neurons up to float rounding. Already
        trained ones are reused.
        """
        self._check_fitted()
        wanted = {}
        for concept, fraction, ranking in selections:
            k, neurons = self._selection(concept, fraction, ranking)
            key = (k, tuple(neurons.tolist()))
            if key not in self._localizers:
                wanted[key] = neurons
        if not wanted:
            return self
        vectors, targets, images = self._training_data()
        masks = torch.zeros(len(wanted), vectors.shape[1], dtype=torch.bool)
        for row, neurons in enumerate(wanted.values()):
            masks[row, neurons] = True
        heads = torch.tensor([k for k, _ in wanted])
        kwargs = {"seed": self.seed, **self.classifier_kwargs}
        fitted = fit_concept_classifiers(vectors, targets[:, heads], images, [self.concepts[k] for k in heads.tolist()],
                                         feature_masks=masks, **kwargs)
        for (key, neurons), classifier in zip(wanted.items(), fitted):
            classifier.coef_ = classifier.coef_[neurons]
            self._localizers[key] = classifier
        return self

    def localizer(self, concept: str, top_fraction: float = 0.2, ranking: Union[str, Tensor] = "shapley"):
        """(neuron indices, classifier on them) for ``concept``, retrained on the stored regions."""
        k, neurons = self._selection(concept, top_fraction, ranking)
        self.fit_localizers([(concept, top_fraction, ranking)])
        return neurons, self._localizers[(k, tuple(neurons.tolist()))]

    def localize(
        self,
        images: Tensor,
        concept: str,
        top_fraction: float = 0.2,
        ranking: Union[str, Tensor] = "shapley",
        size: Optional[Tuple[int, int]] = None,
        interpolate_mode: str = "bilinear",
        features: Optional[Tensor] = None,
    ) -> Tensor:
        """Concept maps: a classifier on the top neurons applied at every position.

        Args:
            images: N x 3 x H x W.
            concept: a concept of the set.
            top_fraction: share of neurons kept (HINT's 10/20/40/80 %).
            ranking: how neurons are chosen (see :meth:`neuron_ranking`).
            size: output size; default the images' H x W.
            features: the layer output for ``images`` (N x D x h x w, from
                :meth:`layer_features`), to skip the forward pass when the
                same images are localized many times.

        Returns:
            N x 1 x H x W probabilities in [0, 1] (``L_e`` of each position,
            upsampled with ``LayerAttribution.interpolate``).
        """
        self._check_fitted()
        check_image_batch(images, "images")
        neurons, classifier = self.localizer(concept, top_fraction, ranking)
        if features is None:
            features = self.layer_features(images)
        n_neurons = self.scores_.shape[0]
        if not isinstance(features, Tensor) or features.dim() != 4 or features.shape[:2] != (len(images), n_neurons):
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"features: expected the layer output of these images, shaped ({len(images)}, {n_neurons}, h, w) "
                f"(from layer_features), got {shape}"
            )
        logits = torch.einsum("ndhw,d->nhw", features[:, neurons.to(features.device)].float(),
                              classifier.coef_.to(features.device)) + classifier.intercept_.to(features.device)
        maps = torch.sigmoid(logits)[:, None]
        return LayerAttribution.interpolate(maps, tuple(size or images.shape[-2:]), interpolate_mode).clamp(0, 1)

    def layer_features(self, images: Tensor) -> Tensor:
        """The layer output (N x D x h x w) for a batch of images, without gradients."""
        return self.logits_and_features(images)[1]

    def logits_and_features(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """(logits N x C, layer output N x D x h x w) of a batch of images from one forward pass, without gradients."""
        check_image_batch(images, "images")
        with evaluation_mode(self.model, "HINT", "images"):
            return self._forward_with_features(images.to(self.device))

    # ------------------------------------------------------------------ persistence
    def _config(self) -> Dict[str, Any]:
        return {
            "format": _FORMAT,
            "layer": self.layer,
            "concepts": self.concepts,
            "saliency": self.saliency,
            "saliency_kwargs": {k: v for k, v in self.saliency_kwargs.items() if isinstance(v, (int, float, str, bool))},
            "saliency_target": self.saliency_target,
            "concept_score": self.concept_score,
            # A callable cannot be stored; its name makes a later re-fit fail clearly.
            "aggregation": self.aggregation if isinstance(self.aggregation, str)
            else f"callable:{getattr(self.aggregation, '__name__', 'unnamed')}",
            "threshold": self.threshold,
            "percentile": self.percentile,
            "regions": self.regions,
            "max_regions_per_concept": self.max_regions_per_concept,
            "max_background": self.max_background,
            "classifier_kwargs": self.classifier_kwargs,
            "shapley_kwargs": {k: v for k, v in self.shapley_kwargs.items() if isinstance(v, (int, float, str, bool))},
            "n_regions": self.n_regions,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "hierarchy": self.hierarchy.to_dict(),
        }

    def _check_model_matches(self, path: Path) -> None:
        """Fail unless the model's layer width and class count are the saved HINT's (one probe forward)."""
        probe = torch.zeros(1, *self.input_shape_, device=self.device)
        with evaluation_mode(self.model, "HINT.load", "model"):
            logits, features = self._forward_with_features(probe)
        width, classes = self.scores_.shape[0], self.hierarchy.num_classes
        if features.shape[1] != width or logits.shape[1] != classes:
            raise ValueError(
                f"model: the HINT saved in {path} was fitted on a layer {self.layer!r} of {width} neurons and "
                f"{classes} classes; this model gives {features.shape[1]} neurons and {logits.shape[1]} classes"
            )

    def save(self, path: Union[str, Path]) -> None:
        """Write ``path/hint.json`` (settings, hierarchy, F1) and ``path/tensors.pt`` (tensors only)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {**self._config(), "f1": self.f1_.tolist(), "held_out": self.held_out_scores(), "n_images": self.n_images_,
                  "input_shape": list(self.input_shape_)}
        (path / "hint.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        tensors = {
            "scores": self.scores_,
            "standard_errors": self.standard_errors_,
            "coef": torch.stack([c.coef_ for c in self.classifiers_]),
            "intercept": torch.stack([c.intercept_ for c in self.classifiers_]),
            **{f"bank.{k}": v for k, v in self.bank_.state_dict().items()},
        }
        torch.save(tensors, path / "tensors.pt")

    @classmethod
    def load(cls, path: Union[str, Path], model: nn.Module, progress: bool = True) -> "HINT":
        """A fitted HINT from :meth:`save`; tensors load with ``weights_only=True``.

        Raises:
            ValueError: ``path`` holds no readable saved HINT (missing, corrupt
                or truncated files), or ``model``'s layer width or number of
                classes differs from the saved one (checked by one forward
                pass of a zero image).
        """
        path = Path(path)
        try:
            config = json.loads((path / "hint.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise ValueError(f"path: {path / 'hint.json'} is not a readable saved HINT ({error})") from None
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"path: {path} does not hold a saved HINT of format {_FORMAT}")
        try:
            tensors = torch.load(path / "tensors.pt", weights_only=True, map_location="cpu")
        except Exception as error:  # torch raises several types for truncated or foreign files
            raise ValueError(f"path: {path / 'tensors.pt'} is not a readable saved HINT ({error})") from None
        try:
            return cls._from_saved(path, config, tensors, model, progress)
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"path: {path} holds an incomplete saved HINT (missing or malformed {error})") from None
        except ValueError as error:
            if str(error).startswith("model:"):  # the model, not the files, is at fault
                raise
            raise ValueError(f"path: {path} holds a malformed saved HINT ({error})") from None

    @classmethod
    def _from_saved(cls, path: Path, config: Dict[str, Any], tensors: Dict[str, Tensor], model: nn.Module,
                    progress: bool) -> "HINT":
        hint = cls(
            model, config["layer"], ConceptHierarchy.from_dict(config["hierarchy"]), config["concepts"],
            saliency=config["saliency"], aggregation=config["aggregation"], threshold=config["threshold"],
            percentile=config["percentile"], regions=config.get("regions", "saliency"), saliency_target=config["saliency_target"],
            concept_score=config["concept_score"],
            saliency_kwargs=config["saliency_kwargs"], max_regions_per_concept=config["max_regions_per_concept"],
            max_background=config["max_background"], classifier_kwargs=config["classifier_kwargs"],
            shapley_kwargs=config["shapley_kwargs"], n_regions=config["n_regions"],
            batch_size=config["batch_size"], seed=config["seed"], progress=progress,
        )
        held_out = config.get("held_out", {})
        width, k = check_tensor("scores", tensors["scores"], "float", (None, len(hint.concepts))).shape
        check_tensor("standard_errors", tensors["standard_errors"], "float", (width, k), allow_nan=True)
        check_tensor("coef", tensors["coef"], "float", (k, width))
        check_tensor("intercept", tensors["intercept"], "float", (k,))
        hint._set_fitted(
            tensors["scores"], tensors["standard_errors"], tensors["coef"], tensors["intercept"],
            torch.tensor(config["f1"], dtype=torch.float64),
            torch.tensor([[held_out.get(c, {}).get(name.rstrip("_"), float("nan")) for name in HELD_OUT_SCORES]
                          for c in hint.concepts], dtype=torch.float64),
        )
        hint.n_images_ = config["n_images"]
        hint._training = None
        hint.bank_ = RegionBank.from_state_dict(
            {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("bank.")}, hint.seed
        )
        hint.input_shape_ = tuple(config["input_shape"])
        hint._check_model_matches(path)
        return hint



def fit_layers(model: nn.Module, layers: Sequence[Union[str, nn.Module]], hierarchy: ConceptHierarchy,
               dataloader: Iterable, labels: str = "given", **hint_kwargs) -> Dict[str, HINT]:
    """One fitted :class:`HINT` per layer from a single pass over ``dataloader``.

    Every batch runs one forward pass with hooks on all the layers, and each
    concept's backward pass reaches all of them at once
    (:class:`~captum_hint.attr.shared_pass.SharedPassSaliency`); each layer's
    regions go to its own bank, then each layer's classifiers and Shapley
    values are fitted. The result equals fitting each layer on its own
    (``HINT(model, layer, ...).fit(dataloader)``) up to float rounding.

    Args:
        model, hierarchy, hint_kwargs: as for :class:`HINT`.
        layers: the layers (modules or dotted names), each with an N x D x h x w output.
        dataloader, labels: as for :meth:`HINT.fit`.

    Returns:
        ``{layer name: fitted HINT}`` in the given order.
    """
    check_label_source(labels)
    if not layers:
        raise ValueError("layers: expected at least one layer")
    hints = [HINT(model, layer, hierarchy, **hint_kwargs) for layer in layers]
    names = [hint.layer for hint in hints]
    if len(set(names)) != len(names):
        raise ValueError(f"layers: each layer may appear once, got {names}")
    return {hint.layer: hint for hint in fit_in_one_pass(hints, dataloader, labels, "fit_layers")}


def fit_in_one_pass(hints: Sequence[HINT], dataloader: Iterable, labels: str = "given",
                    caller: str = "fit_in_one_pass") -> List[HINT]:
    """Fit HINTs that can share the data pass (see :func:`~captum_hint.hint.collection.stream_regions`) from one.

    The model runs in eval mode (``caller`` names the function in the
    train-mode warning); returns the fitted ``hints``.
    """
    with evaluation_mode(hints[0].model, caller):
        banks, n_images = stream_regions(hints, dataloader, labels)
        return [hint._fit_bank(bank, n_images) for hint, bank in zip(hints, banks)]
