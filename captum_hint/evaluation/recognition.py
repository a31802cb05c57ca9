"""Does the model see the concept? Recognition rates of a data set.

An experiment that asks what a model knows about a concept (SeVec's
vectors, AfI's occluder, gAP's decision trees, HINT's maps) needs images in
which the model sees that concept. A scene *recognizes* a concept when it
holds an object under the concept and the model's top-1 class lies under
it too (``husky`` recognizes *dog* and *animal*, not only *husky*). The
rate is the share of the scenes holding the concept that recognize it; a
benchmark reports it next to its results, and a protocol that uses
correctly classified images keeps :func:`recognized_indices`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..core.checks import check_positive_int
from ..core.model_state import evaluation_mode
from .statistics import bootstrap_mean

__all__ = ["top1_classes", "recognition_rates", "recognized_indices", "recognition_summary"]


def top1_classes(model: nn.Module, samples: Sequence[Dict], batch_size: int = 32, device=None) -> Tensor:
    """N top-1 class indices of the samples' ``"image"`` (no gradients; the model's state is restored)."""
    check_positive_int("batch_size", batch_size)
    if not len(samples):
        raise ValueError("samples: expected at least one sample")
    top1 = []
    with evaluation_mode(model, "top1_classes"), torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = torch.stack([s["image"] for s in samples[start : start + batch_size]])
            top1.append(model(batch if device is None else batch.to(device)).argmax(1).cpu())
    return torch.cat(top1)


def _holds(sample: Dict, leaves: Tensor) -> bool:
    labels = sample["labels"] if "labels" in sample else torch.tensor([sample["label"]])
    return bool(torch.isin(torch.as_tensor(labels), leaves).any())


def _recognition(samples: Sequence[Dict], hierarchy, concept: str, top1: Tensor) -> Tuple[List[int], Tensor]:
    """(indices of the samples holding ``concept``, whether each one's top-1 class lies under it)."""
    if len(top1) != len(samples):
        raise ValueError(f"top1: expected one class per sample ({len(samples)}), got {len(top1)}")
    leaves = torch.tensor(hierarchy.leaves_under(concept))
    holding = [i for i, s in enumerate(samples) if _holds(s, leaves)]
    return holding, torch.isin(top1[holding], leaves)


def recognized_indices(samples: Sequence[Dict], hierarchy, concept: str, top1: Tensor) -> List[int]:
    """Indices of the samples that hold an object under ``concept`` and whose top-1 class lies under it.

    Args:
        samples: dicts with ``"labels"`` (every object's leaf class) or ``"label"``.
        hierarchy: a :class:`~captum_hint.concepts.ConceptHierarchy` whose leaves are the model's classes.
        top1: :func:`top1_classes` of the samples.
    """
    holding, hits = _recognition(samples, hierarchy, concept, top1)
    return [i for i, hit in zip(holding, hits.tolist()) if hit]


def recognition_rates(model: nn.Module, samples: Sequence[Dict], hierarchy, concepts: Sequence[str],
                      top1: Optional[Tensor] = None, batch_size: int = 32, seed: int = 0, device=None) -> List[Dict]:
    """Per concept, the share of the samples holding it whose top-1 class lies under it.

    Args:
        top1: the samples' :func:`top1_classes`, when the caller has them.
        seed: of the bootstrap over samples.

    Returns:
        One row per concept: ``concept``, ``label``, ``n`` (samples holding
        it), ``recognized``, ``rate`` with its 95 % bootstrap interval
        ``low``, ``high`` (NaN when no sample holds it).
    """
    top1 = top1_classes(model, samples, batch_size, device) if top1 is None else top1
    rows = []
    for concept in concepts:
        holding, hits = _recognition(samples, hierarchy, concept, top1)
        rate, low, high = bootstrap_mean(hits.double().numpy(), seed=seed) if holding else (float("nan"),) * 3
        rows.append({"concept": concept, "label": hierarchy.label(concept), "n": len(holding),
                     "recognized": int(hits.sum()), "rate": rate, "low": low, "high": high})
    return rows


def recognition_summary(rows: Sequence[Dict]) -> str:
    """One line of :func:`recognition_rates`' rows: ``label rate [low, high] (recognized/n)`` per concept."""
    return ", ".join(f"{r['label'].split(',')[0]} {r['rate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                     f"({r['recognized']}/{r['n']})" for r in rows)
