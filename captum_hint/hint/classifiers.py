"""Linear concept classifiers ``L_e(r) = sigmoid(alpha^T r + b)`` (HINT, Sec. 3.2).

:func:`fit_concept_classifiers` trains one classifier per concept in a single
batched torch problem: a masked, class-balanced logistic regression whose
heads share nothing but the data, so it equals K separate fits. Features are
standardized while training; the returned coefficients act on raw features.
:class:`ConceptClassifier` is one such classifier with scikit-learn habits and
Captum's ``captum.concept`` ``Classifier`` interface (so it plugs into TCAV).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from captum.concept._utils.classifier import Classifier
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_finite, check_fraction, check_number, check_positive_int

__all__ = ["ConceptClassifier", "fit_concept_classifiers", "f1_score", "held_out_intervals", "weighted_f1",
           "weighted_roc_auc", "IGNORE", "HELD_OUT_SCORES", "HOLDOUT"]

#: Target value marking a row that is neither positive nor negative for a concept.
IGNORE = -1
#: Share of the images held out for the classifiers' held-out scores, by default.
HOLDOUT = 0.2
#: The held-out scores every fitted classifier carries.
HELD_OUT_SCORES = ("f1_", "roc_auc_", "average_precision_", "balanced_accuracy_")
#: Training sets up to this many float32 values (rows x (features + 2 x concepts), 64 MB) are standardized once.
_TABLE_ELEMENTS = 1 << 24


def f1_score(predicted: Tensor, actual: Tensor) -> float:
    """F1 of boolean predictions; NaN when there is no positive in either."""
    tp = (predicted & actual).sum().item()
    denominator = predicted.sum().item() + actual.sum().item()
    return 2 * tp / denominator if denominator else float("nan")


def _holdout_rows(n_rows: int, groups: Optional[Tensor], fraction: float, generator: torch.Generator) -> Tensor:
    """Boolean mask of held-out rows; whole groups (images) go to one side."""
    if fraction <= 0:
        return torch.zeros(n_rows, dtype=torch.bool)
    if groups is None:
        groups = torch.arange(n_rows)
    unique, inverse = torch.unique(groups, return_inverse=True)
    order = torch.randperm(len(unique), generator=generator)
    held_groups = torch.zeros(len(unique), dtype=torch.bool)
    held_groups[order[: max(1, int(round(fraction * len(unique))))]] = True
    if held_groups.all():  # a single group: nothing would be left to train on
        return torch.zeros(n_rows, dtype=torch.bool)
    return held_groups[inverse]


def fit_concept_classifiers(
    features: Tensor,
    targets: Tensor,
    groups: Optional[Tensor] = None,
    concepts: Optional[Sequence[Any]] = None,
    epochs: int = 30,
    batch_size: int = 2048,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    holdout: float = HOLDOUT,
    seed: int = 0,
    device=None,
    progress: bool = False,
    min_steps: int = 200,
    feature_masks: Optional[Tensor] = None,
) -> List["ConceptClassifier"]:
    """Train one linear classifier per concept, jointly.

    Args:
        features: M x D region feature vectors (any float dtype; batches are
            moved to ``device`` and float32 one at a time).
        targets: M x K with 1 (positive), 0 (negative) or :data:`IGNORE`.
        groups: M group ids (the image each row comes from); the held-out
            split keeps groups whole. Default: rows are independent.
        concepts: K names, stored as each classifier's ``concept``.
        epochs, batch_size, lr, weight_decay: Adam on minibatches of
            standardized features; small data sets get more epochs so that
            at least ``min_steps`` optimizer steps are taken.
        holdout: fraction of groups held out for ``f1_``.
        seed: seeds the split and the minibatch order.
        progress: show a tqdm bar over epochs.
        feature_masks: K x D booleans: classifier k may only use the features
            where row k is True (its other coefficients stay exactly 0). Many
            classifiers on different neuron subsets (HINT's localizers) then
            train in one pass over the data; each equals a separate fit on
            its subset up to float rounding, since Adam is per-coordinate.

    Returns:
        K fitted :class:`ConceptClassifier`, each with ``coef_``, ``intercept_``
        and held-out scores on the held-out images: ``f1_``, ``roc_auc_``,
        ``average_precision_``, ``balanced_accuracy_`` (NaN when nothing is
        held out or the held-out rows hold one class only).

    Raises:
        ValueError: shapes disagree, features hold NaN, or a concept has only
            one class of targets.
    """
    if features.dim() != 2:
        raise ValueError(f"features: expected M x D region vectors, got shape {tuple(features.shape)}")
    if targets.dim() == 1:
        targets = targets[:, None]
    if targets.shape[0] != features.shape[0]:
        raise ValueError(f"targets: expected {features.shape[0]} rows like features, got {targets.shape[0]}")
    check_finite("features", features, "check the model's activations at this layer")
    unexpected = sorted(set(targets.unique().tolist()) - {1, 0, IGNORE})
    if unexpected:
        raise ValueError(f"targets: expected only 1 (positive), 0 (negative) or {IGNORE} (IGNORE), got {unexpected}")
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_number("lr", lr, low=0.0, low_open=True)
    check_number("weight_decay", weight_decay, low=0.0)
    check_fraction("holdout", holdout, allow_zero=True, allow_one=False)
    n_rows, n_features = features.shape
    n_concepts = targets.shape[1]
    names = list(concepts) if concepts is not None else list(range(n_concepts))
    targets = targets.to(torch.int8)
    n_pos = (targets == 1).sum(0)
    n_neg = (targets == 0).sum(0)
    for k in range(n_concepts):
        if n_pos[k] == 0 or n_neg[k] == 0:
            kind = "no positive" if n_pos[k] == 0 else "no negative"
            raise ValueError(
                f"targets: concept {names[k]!r} has {kind} examples (positives {int(n_pos[k])}, "
                f"negatives {int(n_neg[k])}); a classifier needs both classes"
            )
    if feature_masks is not None and (feature_masks.shape != (n_concepts, n_features) or feature_masks.dtype != torch.bool):
        raise ValueError(f"feature_masks: expected a {n_concepts} x {n_features} bool tensor, got "
                         f"{tuple(feature_masks.shape)} {feature_masks.dtype}")
    device = torch.device(device) if device is not None else features.device
    generator = torch.Generator().manual_seed(seed)
    held = _holdout_rows(n_rows, groups, holdout, generator)
    train_rows = (~held).nonzero().flatten()

    # Standardize with training statistics (streamed, so float16 banks stay small).
    total = torch.zeros(n_features, dtype=torch.float64)
    total_sq = torch.zeros(n_features, dtype=torch.float64)
    for start in range(0, len(train_rows), 8192):
        chunk = features[train_rows[start : start + 8192]].double()
        total += chunk.sum(0)
        total_sq += (chunk * chunk).sum(0)
    mean = total / len(train_rows)
    std = (total_sq / len(train_rows) - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    mean, std = mean.float().to(device), std.float().to(device)

    # Class balance: positives and negatives of each concept weigh the same in total.
    train_targets = targets[train_rows]
    pos_weight = 0.5 / (train_targets == 1).sum(0).clamp_min(1).float()
    neg_weight = 0.5 / (train_targets == 0).sum(0).clamp_min(1).float()
    base_rate = (n_pos.float() / (n_pos + n_neg).float()).clamp(1e-4, 1 - 1e-4)
    weight = torch.zeros(n_features, n_concepts, device=device, requires_grad=True)
    bias = torch.logit(base_rate).to(device).requires_grad_()
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    pos_weight, neg_weight = pos_weight.to(device), neg_weight.to(device)
    allowed = None if feature_masks is None else feature_masks.T.to(device, torch.float32)  # D x K

    def loss_inputs(rows: Tensor):
        """Standardized features, positive labels and class weights of ``rows``."""
        y = targets[rows].to(device)
        return ((features[rows].to(device, torch.float32) - mean) / std, (y == 1).float(),
                torch.where(y == 1, pos_weight, torch.where(y == 0, neg_weight, 0.0)))

    # Small problems take their minimum number of steps over few rows: the rows' inputs are computed once and
    # each step gathers them (the same values, element-wise); larger banks stream, a batch at a time.
    table = loss_inputs(train_rows) if len(train_rows) * (n_features + 2 * n_concepts) <= _TABLE_ELEMENTS else None
    epochs = max(epochs, math.ceil(min_steps / math.ceil(len(train_rows) / batch_size)))
    for _ in tqdm(range(epochs), desc="concept classifiers", disable=not progress, leave=False):
        order = torch.randperm(len(train_rows), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            x, positive, w = (part[batch] for part in table) if table else loss_inputs(train_rows[batch])
            logits = x @ (weight if allowed is None else weight * allowed) + bias
            # a class-balanced mean per concept, so the K problems stay independent
            per_concept = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, positive, weight=w, reduction="none"
            ).sum(0) / w.sum(0).clamp_min(1e-12)
            loss = per_concept.sum()
            loss = loss + weight_decay * weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    with torch.no_grad():
        used = weight if allowed is None else weight * allowed
        coef = (used / std[:, None]).T.contiguous()  # K x D on raw features
        intercept = bias - coef @ mean
    classifiers = []
    held_rows = held.nonzero().flatten()
    for k in range(n_concepts):
        classifier = ConceptClassifier(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                       holdout=holdout, seed=seed, device=device)
        classifier.coef_ = coef[k].detach().cpu()
        classifier.intercept_ = intercept[k].detach().cpu()
        classifier.concept = names[k]
        classifier.n_positive_, classifier.n_negative_ = int(n_pos[k]), int(n_neg[k])
        for name in HELD_OUT_SCORES:
            setattr(classifier, name, float("nan"))
        classifiers.append(classifier)
    _score_holdout(classifiers, features, targets, held_rows)
    return classifiers


def _score_holdout(classifiers, features: Tensor, targets: Tensor, held_rows: Tensor) -> None:
    """Set each classifier's held-out scores (NaN when nothing was held out or one class only).

    F1 and balanced accuracy at the decision threshold 0; ROC-AUC and
    average precision (scikit-learn) need no threshold. F1 and average
    precision depend on the share of positives among the held-out rows
    (for regions: how much background each image contributes); ROC-AUC and
    balanced accuracy do not.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(held_rows) == 0:
        return
    coef = torch.stack([c.coef_ for c in classifiers], 1)
    intercept = torch.stack([c.intercept_ for c in classifiers])
    logits = torch.cat([features[held_rows[s : s + 8192]].float() @ coef + intercept
                        for s in range(0, len(held_rows), 8192)])
    actual = targets[held_rows]
    # classifiers of one concept (HINT's localizers) share their target column: one scikit-learn call per
    # metric for each distinct column, each classifier a column of a multilabel problem
    columns, column_of = actual.unique(dim=1, return_inverse=True)
    for c in range(columns.shape[1]):
        members = (column_of == c).nonzero().flatten()
        scored = columns[:, c] != IGNORE
        truth = (columns[scored, c] == 1).numpy()
        score = logits[scored][:, members].numpy()
        for classifier, column in zip((classifiers[k] for k in members.tolist()), score.T):
            classifier.f1_ = f1_score(torch.from_numpy(column > 0), torch.from_numpy(truth))
        if not 0 < truth.sum() < len(truth):
            continue
        labels = np.repeat(truth[:, None], len(members), 1)
        predicted = score > 0
        figures = {"roc_auc_": roc_auc_score(labels, score, average=None),
                   "average_precision_": average_precision_score(labels, score, average=None),
                   # balanced accuracy of a binary problem: the mean recall of its two classes
                   "balanced_accuracy_": ((predicted & labels).sum(0) / labels.sum(0)
                                          + (~predicted & ~labels).sum(0) / (~labels).sum(0)) / 2}
        for i, k in enumerate(members.tolist()):
            for name, values in figures.items():
                setattr(classifiers[k], name, float(np.atleast_1d(values)[i]))  # one column: a float


def weighted_f1(logits: Tensor, truth: Tensor, weights: Tensor) -> Tensor:
    """F1 at threshold 0 of N scored rows under R weightings (R x N row weights); R values."""
    predicted, truth = (logits > 0).double(), truth.double()
    weights = weights.double()
    tp = weights @ (predicted * truth)
    wrong = weights @ (predicted * (1 - truth)) + weights @ ((1 - predicted) * truth)
    return torch.where(2 * tp + wrong > 0, 2 * tp / (2 * tp + wrong), torch.full_like(tp, float("nan")))


def weighted_roc_auc(logits: Tensor, truth: Tensor, weights: Tensor) -> Tensor:
    """ROC-AUC of N scored rows under R weightings (R x N row weights); R values.

    The probability that a positive outscores a negative (ties count half),
    with every row counted as often as its weight: integer weights equal
    scikit-learn's AUC on the rows repeated that often.
    """
    values, group = torch.unique(logits.double(), return_inverse=True)
    weights, truth = weights.double(), truth.bool()
    negative = torch.zeros(len(weights), len(values), dtype=torch.float64)
    negative.index_add_(1, group[~truth], weights[:, ~truth])
    below = negative.cumsum(1) - negative  # negative weight strictly below each distinct score
    wins = (weights[:, truth] * (below[:, group[truth]] + negative[:, group[truth]] / 2)).sum(1)
    pairs = weights[:, truth].sum(1) * weights[:, ~truth].sum(1)
    return torch.where(pairs > 0, wins / pairs, torch.full_like(wins, float("nan")))


def held_out_intervals(classifiers: Sequence["ConceptClassifier"], features: Tensor, targets: Tensor, groups: Tensor,
                       holdout: float, split_seed: int, seed: int = 0, rounds: int = 2000) -> List[Dict[str, tuple]]:
    """Held-out F1 and ROC-AUC of each classifier with 95 % bootstrap intervals over held-out images.

    The held-out images are those :func:`fit_concept_classifiers` held out
    (the same ``groups``, ``holdout`` and ``split_seed`` redraw its split);
    each resample draws held-out images with replacement (seed ``seed``),
    all their rows with them.

    Returns:
        Per classifier ``{"f1": (value, low, high), "roc_auc": (value, low, high)}``;
        NaN throughout when nothing was held out.
    """
    from ..evaluation.statistics import bootstrap_weights

    held = _holdout_rows(len(features), groups, holdout, torch.Generator().manual_seed(split_seed))
    nothing = {"f1": (float("nan"),) * 3, "roc_auc": (float("nan"),) * 3}
    if not held.any():
        return [dict(nothing) for _ in classifiers]
    images, image_of_row = torch.unique(groups[held], return_inverse=True)
    draws = torch.cat([torch.ones(1, len(images)), bootstrap_weights(len(images), seed, rounds)])
    coef = torch.stack([c.coef_ for c in classifiers], 1).float()
    intercept = torch.stack([c.intercept_ for c in classifiers]).float()
    logits = features[held].float() @ coef + intercept
    actual = targets[held]
    out = []
    for k in range(len(classifiers)):
        scored = actual[:, k] != IGNORE
        truth, score = actual[scored, k] == 1, logits[scored, k]
        figures = {}
        for name, statistic in (("f1", weighted_f1), ("roc_auc", weighted_roc_auc)):
            values = torch.cat([statistic(score, truth, block[:, image_of_row[scored]])
                                for block in draws.split(256)]).numpy()  # 256 resamples at a time bound memory
            finite = values[1:][~np.isnan(values[1:])]
            low, high = (np.percentile(finite, [2.5, 97.5]) if finite.size else (float("nan"),) * 2)
            figures[name] = (float(values[0]), float(low), float(high))
        out.append(figures)
    return out


class ConceptClassifier(Classifier):
    """A linear concept classifier ``sigmoid(coef_ @ r + intercept_)``.

    scikit-learn style: :meth:`fit` returns self; learned attributes are
    ``coef_`` (D), ``intercept_`` (scalar tensor), ``f1_`` (held-out F1).
    Captum style: :meth:`train_and_eval`, :meth:`weights`, :meth:`classes`
    make it a ``captum.concept`` classifier for TCAV (two concepts).

    Args:
        epochs, batch_size, lr, weight_decay, holdout, seed, device: see
            :func:`fit_concept_classifiers`.
    """

    def __init__(
        self,
        epochs: int = 30,
        batch_size: int = 2048,
        lr: float = 0.05,
        weight_decay: float = 1e-4,
        holdout: float = HOLDOUT,
        seed: int = 0,
        device=None,
    ) -> None:
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay, self.holdout, self.seed, self.device = weight_decay, holdout, seed, device
        self.concept: Any = None
        self.classes_: List[int] = [0, 1]

    def _params(self) -> Dict[str, Any]:
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                    holdout=self.holdout, seed=self.seed, device=self.device)

    def fit(self, features: Tensor, labels: Tensor, groups: Optional[Tensor] = None) -> "ConceptClassifier":
        """Fit on M x D ``features`` and M binary ``labels`` (1 = concept); returns self."""
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or not set(labels.unique().tolist()) <= {0, 1}:
            raise ValueError("labels: expected a 1-D tensor of 0/1 labels")
        (fitted,) = fit_concept_classifiers(features, labels.to(torch.int8), groups, [self.concept], **self._params())
        self.coef_, self.intercept_ = fitted.coef_, fitted.intercept_
        for name in HELD_OUT_SCORES:
            setattr(self, name, getattr(fitted, name))
        self.n_positive_, self.n_negative_ = fitted.n_positive_, fitted.n_negative_
        return self

    def decision_function(self, features: Tensor) -> Tensor:
        """Logits ``features @ coef_ + intercept_`` for features shaped ... x D."""
        self._check_fitted()
        coef = self.coef_.to(features.device, features.dtype)
        return features @ coef + self.intercept_.to(features.device, features.dtype)

    def predict_proba(self, features: Tensor) -> Tensor:
        """``L_e(r)``: the probability that each region shows the concept."""
        return torch.sigmoid(self.decision_function(features))

    def predict(self, features: Tensor) -> Tensor:
        """N x D features -> N booleans: the concept's probability is at least 1/2."""
        return self.decision_function(features) > 0

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("ConceptClassifier: call fit() (or train_and_eval()) first")

    # -- captum.concept.Classifier ------------------------------------------
    def train_and_eval(self, dataloader, test_split_ratio: float = 0.33, **kwargs: Any) -> Dict[str, Tensor]:
        """TCAV entry point: batches of (activations, concept ids) with two concepts.

        The larger concept id is the positive class. Returns ``{"accs": ...}``
        (held-out accuracy) like Captum's default classifier, plus ``"f1"``.
        """
        inputs, labels = zip(*[(x.flatten(1), y) for x, y in dataloader])
        features, ids = torch.cat(inputs), torch.cat(labels)
        classes = sorted(ids.unique().tolist())
        if len(classes) != 2:
            raise ValueError(f"dataloader: expected exactly two concepts, got ids {classes}")
        self.classes_ = classes
        self.holdout = test_split_ratio
        self.fit(features, (ids == classes[1]).to(torch.int8))
        generator = torch.Generator().manual_seed(self.seed)
        held = _holdout_rows(len(ids), None, test_split_ratio, generator)
        rows = held if held.any() else torch.ones_like(held)
        accuracy = (self.predict(features[rows].float()) == (ids[rows] == classes[1])).float().mean()
        return {"accs": accuracy, "f1": torch.tensor(self.f1_)}

    def weights(self) -> Tensor:
        """2 x D: one row per class in :meth:`classes` order, as Captum expects."""
        self._check_fitted()
        return torch.stack([-self.coef_, self.coef_])

    def classes(self) -> List[int]:
        """Captum's classifier API: the two TCAV classes, ``[0, 1]``."""
        return list(self.classes_)

    def __repr__(self) -> str:
        fitted = f", f1_={self.f1_:.3f}" if hasattr(self, "f1_") else ""
        return f"ConceptClassifier(concept={self.concept!r}{fitted})"
