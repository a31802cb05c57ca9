"""The sanity checks' figure: one panel per check, one colour per system."""

from __future__ import annotations

import math
from typing import Dict, Optional

import matplotlib.pyplot as plt

__all__ = ["plot_sanity_checks"]


def _finite(values):
    return [v for v in values if not math.isnan(v)]


def plot_sanity_checks(label: Dict[str, Dict], cascade: Dict[str, Dict], split: Dict[str, Dict],
                       title: Optional[str] = None):
    """Three panels from the checks' results, each keyed by system name.

    Left: :func:`~captum_hint.truth.label_randomization_check` (Spearman
    correlation with the original after shuffling the concept labels; one
    dot per concept and repeat, near 0 passes). Middle:
    :func:`~captum_hint.truth.cascading_randomization_check` (mean
    correlation after each cascade step). Right:
    :func:`~captum_hint.truth.split_half_stability` (overlap@k with its 95 %
    interval; dashes: two random rankings). Returns the matplotlib figure.
    """
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    systems = list(dict.fromkeys([*label, *cascade, *split]))
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(systems)}
    ax = axes[0]
    for i, name in enumerate(label):
        values = _finite([v for vs in label[name]["correlation"].values() for v in vs])
        ax.scatter([i] * len(values), values, color=colours[name], alpha=0.7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(label)), list(label), rotation=20, fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman with the original")
    ax.set_title("concept labels shuffled", fontsize=10)
    ax = axes[1]
    for name, result in cascade.items():
        ax.plot(range(1, len(result["mean"]) + 1), result["mean"], marker="o", color=colours[name], label=name)
    steps = next(iter(cascade.values()))["steps"] if cascade else []
    ax.set_xticks(range(1, len(steps) + 1), steps, rotation=60, fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_title("layers re-initialized, output first (cumulative)", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[2]
    for i, (name, result) in enumerate(split.items()):
        ax.errorbar([i], [result["mean"]], yerr=[[result["mean"] - result["low"]], [result["high"] - result["mean"]]],
                    fmt="o", color=colours[name], capsize=4)
        ax.plot([i - 0.2, i + 0.2], [result["chance"]] * 2, color="grey", ls="--", lw=1,
                label="chance (k / D)" if i == 0 else None)
    ax.set_xticks(range(len(split)), list(split), rotation=20, fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    k = next(iter(split.values()))["k"] if split else "k"
    ax.set_ylabel(f"overlap@{k} of the two halves")
    ax.set_title("fitted on disjoint halves", fontsize=10)
    if split:
        ax.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure
