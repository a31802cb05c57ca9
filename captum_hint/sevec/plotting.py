"""SeVec's figures: retrieved images per concept (Fig. 1), related concepts (Fig. 5), t-SNE (Fig. 3)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from torch import Tensor

from .vectors import SemanticVectors

__all__ = ["plot_retrieval", "plot_relevance", "plot_tsne"]


def _label(sevec: SemanticVectors, k: int) -> str:
    concept = sevec.concepts_[k]
    return sevec.hierarchy.label(concept) if sevec.hierarchy is not None else str(concept)


def plot_retrieval(sevec: SemanticVectors, pixels: Tensor, indices: Tensor, concepts: Optional[Sequence] = None):
    """One row per concept: the held-out images nearest to its semantic vector.

    Args:
        pixels: M x 3 x H x W images in [0, 1] (the held-out set, in stream order).
        indices: K x n from :meth:`SemanticVectors.retrieve`.
        concepts: the concepts to show (default: all).
    """
    import matplotlib.pyplot as plt

    rows = [sevec.index(c) for c in concepts] if concepts is not None else list(range(len(sevec.concepts_)))
    n = indices.shape[1]
    figure, axes = plt.subplots(len(rows), n, figsize=(1.4 * n + 1.5, 1.4 * len(rows)), squeeze=False)
    for r, k in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(pixels[indices[k, c]].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(_label(sevec, k), rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle("images nearest to each semantic vector (cosine)", fontsize=9)
    figure.tight_layout()
    return figure


def plot_relevance(sevec: SemanticVectors, n: int = 5, concepts: Optional[Sequence] = None):
    """Per concept, its ``n`` most related other concepts by ``cos(v_a, v_b)`` as horizontal bars."""
    import matplotlib.pyplot as plt

    relevance = sevec.relevance().clone()
    relevance.fill_diagonal_(float("-inf"))
    rows = [sevec.index(c) for c in concepts] if concepts is not None else list(range(len(sevec.concepts_)))
    n = min(n, len(sevec.concepts_) - 1)
    columns = min(4, len(rows))
    lines = int(np.ceil(len(rows) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 0.35 * n * lines + 1.2 * lines),
                                squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, k in enumerate(rows):
        ax = axes.flat[i]
        ax.axis("on")
        top = relevance[k].topk(n)
        ax.barh(range(n)[::-1], top.values.numpy(), color="tab:blue")
        ax.set_yticks(range(n)[::-1], [_label(sevec, j) for j in top.indices.tolist()], fontsize=7)
        ax.set_xlim(min(0.0, float(top.values.min())), 1.0)
        ax.set_title(_label(sevec, k), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    return figure


def plot_tsne(sevec: SemanticVectors, groups: Sequence[str], seed: int = 0):
    """t-SNE (scikit-learn) of the semantic vectors, coloured by ancestor group, sized by ``D_c``.

    Args:
        groups: concepts of the hierarchy (e.g. ``["animal.n.01", "artifact.n.01"]``); each vector is
            coloured by the first group it falls under, grey if none.
    """
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    if sevec.hierarchy is None:
        raise ValueError("groups: colouring by ancestor needs the hierarchy")
    k = len(sevec.concepts_)
    if k < 3:
        raise ValueError(f"concepts: t-SNE needs at least 3 semantic vectors, got {k}")
    points = TSNE(n_components=2, perplexity=min(30.0, (k - 1) / 3), metric="cosine", init="random",
                  random_state=seed).fit_transform(sevec.vectors_.numpy())
    names = [sevec.hierarchy.lookup(g) for g in groups]
    colour = []
    for concept in sevec.concepts_:
        lineage = set(sevec.hierarchy.ancestors(concept)) | {concept}
        colour.append(next((i for i, g in enumerate(names) if g in lineage), len(names)))
    palette = plt.get_cmap("tab10")
    figure, ax = plt.subplots(figsize=(6, 5))
    sizes = 20 + 400 * sevec.diversity_.numpy()
    for i, name in enumerate(names + ["other"]):
        chosen = [j for j, c in enumerate(colour) if c == i]
        if chosen:
            ax.scatter(points[chosen, 0], points[chosen, 1], s=sizes[chosen], alpha=0.6,
                       color="grey" if i == len(names) else palette(i % 10),
                       label=name if i == len(names) else sevec.hierarchy.label(name))
    for j in range(k):
        ax.annotate(_label(sevec, j).split(",")[0], points[j], fontsize=6, alpha=0.7)
    ax.legend(fontsize=7, markerscale=0.5)
    ax.set_title("t-SNE of semantic vectors (size = diversity D_c)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return figure

