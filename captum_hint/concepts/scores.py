"""Concept scores: a concept is a set of leaf classes of the classifier.

A concept's score for an image is ``log sum_{c in leaves} softmax(f(x))_c``,
the log-probability the model gives to *any* leaf under the concept. It is
differentiable, and for a one-leaf concept it equals the class logit minus the
image's ``logsumexp`` over all logits, so it ranks images like the logit.

That score suits single-label classifiers (softmax). For a multi-label model
(scenes holding objects of several classes), the ``"logit"`` score
``log sum_{c in leaves} exp(f(x)_c)`` leaves out the normalizer: through it,
the log-probability of concept a also depends on every other class's logit,
so a saliency of a's score highlights the objects of the scene's other
classes as much as a's own when the model is confident of both.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["CONCEPT_SCORES", "ConceptScore", "check_concept_score", "concept_scores", "is_concept", "is_concept_list"]

#: The concept scores :func:`concept_scores` computes.
CONCEPT_SCORES = ("log_probability", "logit")


def check_concept_score(score: str, name: str = "concept_score") -> str:
    """``score`` if it is one of :data:`CONCEPT_SCORES`, else a ValueError naming argument ``name``."""
    if score not in CONCEPT_SCORES:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, CONCEPT_SCORES))}, got {score!r}")
    return score


def is_concept(target: object) -> bool:
    """True if ``target`` names one concept: a ``set``/``frozenset`` of leaf indices."""
    return isinstance(target, (set, frozenset))


def is_concept_list(target: object) -> bool:
    """True if ``target`` is a per-sample list of concepts (sets of leaf indices)."""
    return (
        isinstance(target, (list, tuple))
        and len(target) > 0
        and all(is_concept(t) for t in target)
    )


def _leaf_membership(concepts: Sequence[Iterable[int]], num_classes: int, device, argument: str = "concepts"
                     ) -> Tensor:
    """K x C boolean matrix: ``membership[k, c]`` is True if class c is a leaf of concept k."""
    membership = torch.zeros(len(concepts), num_classes, dtype=torch.bool, device=device)
    for k, leaves in enumerate(concepts):
        leaves = sorted(int(c) for c in leaves)
        if not leaves:
            raise ValueError(f"{argument}: concept {k} has no leaf classes")
        if leaves[0] < 0 or leaves[-1] >= num_classes:
            raise ValueError(
                f"{argument}: concept {k} has leaf index "
                f"{leaves[0] if leaves[0] < 0 else leaves[-1]}, out of range for a "
                f"model with {num_classes} outputs (expected 0..{num_classes - 1})"
            )
        membership[k, leaves] = True
    return membership


def concept_scores(logits: Tensor, membership: Tensor, score: str = "log_probability") -> Tensor:
    """Concept scores from logits.

    Args:
        logits: N x C class logits.
        membership: K x C boolean leaf membership of K concepts.
        score: ``"log_probability"`` or ``"logit"`` (see the module docstring).

    Returns:
        N x K tensor, ``log sum_{c: membership[k, c]} softmax(logits)_c``
        (``exp(logits)_c`` for ``"logit"``).
    """
    check_concept_score(score, "score")
    if logits.dim() != 2:
        raise ValueError(
            f"logits: expected an N x C tensor of class scores, got shape {tuple(logits.shape)}"
        )
    if membership.shape[-1] != logits.shape[1]:
        raise ValueError(
            f"membership: expected {logits.shape[1]} columns (one per class), "
            f"got shape {tuple(membership.shape)}"
        )
    values = torch.log_softmax(logits, dim=1) if score == "log_probability" else logits
    # logsumexp over each concept's leaves; masked entries contribute exp(-inf) = 0.
    masked = values.unsqueeze(1).masked_fill(~membership.unsqueeze(0), float("-inf"))
    return torch.logsumexp(masked, dim=2)


class ConceptScore(nn.Module):
    """Forward wrapper whose outputs are concept scores instead of class logits.

    Use it wherever Captum takes a ``forward_func``; ``target=k`` then explains
    concept ``k``::

        mammal_and_bird = ConceptScore(model, [mammal_leaves, bird_leaves])
        LayerGradCam(mammal_and_bird, model.features[28]).attribute(x, target=0)

    Args:
        forward_func: the classifier; returns N x C logits.
        concepts: K concepts, each an iterable of leaf class indices.
        score: ``"log_probability"`` (default) or ``"logit"`` (see :func:`concept_scores`).
        argument: the caller's name for the concepts, used in errors (e.g. ``"target"``).

    Output: N x K concept scores (see :func:`concept_scores`).
    """

    def __init__(self, forward_func: Callable[..., Tensor], concepts: Sequence[Iterable[int]],
                 score: str = "log_probability", argument: str = "concepts"):
        super().__init__()
        if len(concepts) == 0:
            raise ValueError("concepts: expected at least one concept (a set of leaf indices)")
        self.forward_func = forward_func
        self.score = check_concept_score(score, "score")
        self.concepts = [frozenset(int(c) for c in leaves) for leaves in concepts]
        self._membership: Tensor | None = None
        self.argument = argument  # the name errors about the concepts give them

    def membership(self, num_classes: int, device) -> Tensor:
        """K x C boolean leaf membership, built once per class count and device."""
        cached = self._membership
        if cached is None or cached.shape[1] != num_classes or cached.device != torch.device(device):
            cached = _leaf_membership(self.concepts, num_classes, device, self.argument)
            self._membership = cached
        return cached

    def forward(self, *args, **kwargs) -> Tensor:
        """Run ``forward_func`` and return its N x K concept scores."""
        return self.from_logits(self.forward_func(*args, **kwargs))

    def from_logits(self, logits: Tensor) -> Tensor:
        """The N x K concept scores of N x C ``logits``."""
        return concept_scores(logits, self.membership(logits.shape[1], logits.device), self.score)
