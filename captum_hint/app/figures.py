"""Figures of the demo report: the paper's experiments with their confidence intervals, and reference patches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["plot_metric_by_fraction", "plot_method_bars", "plot_map_rows", "plot_reference_patches"]


def plot_metric_by_fraction(table: List[Dict], metric: str, label: str, path: Path,
                            flat: Sequence[str] = ("Grad-CAM", "centre Gaussian", "full image")) -> None:
    """Fig. 4c: a metric against the share of neurons, one line (with its 95 % band) per ranking."""
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    methods = [m for m in dict.fromkeys(r["method"] for r in table) if m not in flat]
    for method in methods:
        rows = sorted((r for r in table if r["method"] == method and metric in r), key=lambda r: r["fraction"])
        if not rows:
            continue
        x = [100 * r["fraction"] for r in rows]
        line, = ax.plot(x, [r[metric] for r in rows], marker="o", label=method.replace("HINT ", ""))
        ax.fill_between(x, [r[f"{metric}_low"] for r in rows], [r[f"{metric}_high"] for r in rows],
                        color=line.get_color(), alpha=0.12)
    for style, method in zip(("--", ":", "-."), flat):
        row = next((r for r in table if r["method"] == method and metric in r), None)
        if row is not None:
            ax.axhline(row[metric], color="grey", linestyle=style, label=method)
    ax.set_xscale("log")
    ax.set_xticks([10, 20, 40, 80], ["10 %", "20 %", "40 %", "80 %"])
    ax.set_xlabel("neurons kept")
    ax.set_ylabel(label)
    ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_method_bars(rows: List[Dict], metrics: Dict[str, str], path: Path, title: str) -> None:
    """Fig. 4b: one group of bars per method, one bar (with its 95 % interval) per metric."""
    figure, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(1, len(metrics))
    for j, (metric, label) in enumerate(metrics.items()):
        values = np.array([r.get(metric, math.nan) for r in rows])
        errors = np.array([[v - r.get(f"{metric}_low", v), r.get(f"{metric}_high", v) - v] for r, v in zip(rows, values)]).T
        ax.bar(np.arange(len(rows)) + j * width, values, width, yerr=errors, capsize=2, label=label)
    ax.set_xticks(np.arange(len(rows)) + width * (len(metrics) - 1) / 2,
                  [r["method"].replace("HINT ", "") for r in rows], rotation=15, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_map_rows(rows: Dict[str, Tuple[Tensor, Tensor]], path: Path) -> None:
    """A grid: one row per name, each N photos (N x 3 x H x W in [0, 1]) under their N x 1 x H x W maps."""
    n_rows, n_cols = len(rows), max(len(pixels) for pixels, _ in rows.values())
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows), squeeze=False)
    for i, (name, (pixels, maps)) in enumerate(rows.items()):
        for j in range(n_cols):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j < len(pixels):
                axes[i, j].imshow(pixels[j].permute(1, 2, 0).clamp(0, 1).numpy())
                axes[i, j].imshow(maps[j, 0].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[i, 0].set_ylabel(name, fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_reference_patches(patches: Tensor, values: Tensor, labels: Sequence[str], path: Path) -> None:
    """One row per neuron: its top-activating crops (U x k x 3 x P x P in [0, 1]) with their activations."""
    n_rows, n_cols = patches.shape[:2]
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, 1.35 * n_rows), squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            axes[i, j].imshow(patches[i, j].permute(1, 2, 0).clamp(0, 1).numpy())
            axes[i, j].set_title(f"{values[i, j]:.2f}", fontsize=6)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
