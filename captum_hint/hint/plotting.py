"""HINT's figures: concepts linked to their neurons (the paper's Fig. 2)."""

from __future__ import annotations

__all__ = ["plot_associations"]


def plot_associations(scores, concept_labels, f1=None, n: int = 10, ax=None):
    """Concepts linked to their top-``n`` neurons, link width = score (HINT Fig. 2).

    Args:
        scores: D x K neuron-concept scores.
        concept_labels: K concept labels (left column; F1 appended if given).
        f1: K F1 scores of the concept classifiers, or None.
        n: neurons per concept.
        ax: matplotlib Axes to draw on (default: a new figure).

    Returns:
        The matplotlib Axes. Neurons (right column) are the union of every
        concept's top ``n``, ordered by their best score.
    """
    import matplotlib.pyplot as plt
    import torch

    scores = torch.as_tensor(scores).float()
    n_concepts = scores.shape[1]
    if len(concept_labels) != n_concepts:
        raise ValueError(f"concept_labels: expected {n_concepts} labels, got {len(concept_labels)}")
    top = torch.topk(scores, min(n, scores.shape[0]), dim=0).indices  # n x K
    neurons = sorted(set(top.flatten().tolist()), key=lambda d: -scores[d].max().item())
    row = {d: i for i, d in enumerate(neurons)}
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.3 * max(len(neurons), n_concepts) + 1.5))
    def spread(count, total):
        return [total - 1 - (i + 0.5) * total / count for i in range(count)]
    concept_y = spread(n_concepts, len(neurons))
    neuron_y = spread(len(neurons), len(neurons))
    scale = scores.max().clamp_min(1e-12).item()
    colors = plt.get_cmap("tab10")
    for k in range(n_concepts):
        for d in top[:, k].tolist():
            width = 0.3 + 5 * scores[d, k].item() / scale
            ax.plot([0, 1], [concept_y[k], neuron_y[row[d]]], color=colors(k % 10), linewidth=width, alpha=0.6)
        text = concept_labels[k] if f1 is None else f"{concept_labels[k]}  (F1 {float(f1[k]):.2f})"
        ax.text(-0.02, concept_y[k], text, ha="right", va="center", fontsize=9)
    for d in neurons:
        ax.text(1.02, neuron_y[row[d]], f"#{d}", ha="left", va="center", fontsize=8)
    ax.set_xlim(-0.6, 1.2)
    ax.axis("off")
    ax.set_title(f"concepts and their top-{n} neurons (link width = Shapley value)", fontsize=10)
    return ax
