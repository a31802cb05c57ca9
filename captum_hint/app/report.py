"""The report folder: ``index.html`` with figures, ``metrics.json`` and the scores as CSV.

Everything is written with relative links, so the folder opens from disk in a
browser and can be moved or zipped.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["write_scores_csv", "plot_overlays", "plot_layer_f1", "write_report"]


def write_scores_csv(hint, path: Path) -> None:
    """The score matrix Φ: one row per neuron, one column per concept."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["neuron"] + hint.concepts)
        for neuron, row in enumerate(hint.scores_.tolist()):
            writer.writerow([neuron] + [f"{v:.6g}" for v in row])


def plot_overlays(pixels: Tensor, columns: Dict[str, Tensor], masks: Optional[Tensor], path: Path) -> None:
    """A grid: one row per image, the photo (with the GT outline) then one map per column."""
    n_rows, n_cols = pixels.shape[0], len(columns) + 1
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(2.1 * n_cols, 2.1 * n_rows), squeeze=False)
    for i in range(n_rows):
        photo = pixels[i].permute(1, 2, 0).numpy()
        axes[i, 0].imshow(photo)
        if masks is not None and masks[i].any():
            axes[i, 0].contour(masks[i].numpy(), levels=[0.5], colors="yellow", linewidths=1)
        for j, (title, maps) in enumerate(columns.items(), start=1):
            axes[i, j].imshow(photo)
            axes[i, j].imshow(maps[i, 0].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(title, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image (GT outline)" if masks is not None else "image", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_layer_f1(layer_f1: Dict[str, Dict[str, float]], path: Path) -> None:
    """F1 of concept classifiers across layers of increasing depth."""
    layers = list(layer_f1)
    concepts = list(next(iter(layer_f1.values())))
    figure, ax = plt.subplots(figsize=(6, 3.5))
    for concept in concepts:
        ax.plot(range(len(layers)), [layer_f1[layer][concept] for layer in layers], marker="o", label=concept)
    ax.set_xticks(range(len(layers)), layers, rotation=20)
    ax.set_ylabel("held-out F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("concept classifier F1 by layer", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _html_table(rows: List[Dict], columns: Sequence[str]) -> str:
    def cell(value):
        if isinstance(value, float):
            return "<td>–</td>" if math.isnan(value) else f"<td>{value:.3f}</td>"
        text = html.escape(str(value))
        return f"<td class='text'>{text}</td>" if len(text) > 40 else f"<td>{text}</td>"  # prose reads left-aligned

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,td.text{text-align:left}img{max-width:100%;border:1px solid #ddd}
pre{background:#f6f6f6;padding:1em;font-size:12px;overflow:auto}h2{border-bottom:1px solid #ddd}"""


def write_report(out: Path, title: str, summary: Dict, sections: List[Dict], data_file: str = "metrics.json") -> Path:
    """Write ``out/index.html`` and ``out/<data_file>``.

    Args:
        out: the report folder (figures already written there).
        title: page title.
        summary: everything measured, saved as JSON in ``data_file``.
        sections: ``{"title", "text"?, "image"?, "table"?: (rows, columns), "pre"?}`` in order.
        data_file: the JSON file's name (default ``metrics.json``).
    """
    out = Path(out)
    (out / data_file).write_text(json.dumps(summary, indent=1, default=float) + "\n", encoding="utf-8")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section['title'])}</h2>")
        if section.get("text"):
            parts.append(f"<p>{section['text']}</p>")
        if section.get("pre"):
            parts.append(f"<pre>{html.escape(section['pre'])}</pre>")
        if section.get("table"):
            rows, columns = section["table"]
            parts.append(_html_table(rows, columns))
        if section.get("image"):
            parts.append(f"<p><img src='{html.escape(section['image'])}' alt='{html.escape(section['title'])}'></p>")
    files = [f"<a href='{html.escape(data_file)}'>{html.escape(data_file)}</a>"]
    if (out / "scores.csv").is_file():
        files.append("<a href='scores.csv'>scores.csv</a> (neurons × concepts Shapley values)")
    parts.append(f"<p>Files: {', '.join(files)}.</p></body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
