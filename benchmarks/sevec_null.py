"""SeVec's geometry against a null of random image subsets (issue 22, SeVec).

The paper compares cosines between semantic vectors of sibling concepts
with those of unrelated ones, and reads the diversity D_c of each concept.
Both depend on how many images a vector averages (a vector of M random
images is closer to another of M random images the larger M is), and
nested concepts share images. Here, as the issue asks: disjoint concepts,
each subsampled to the same M images, every figure next to the same figure
for random image subsets of size M (the null), over 200 seeded draws.

Data: single-object training scenes of the recognized testbed
(``RECOGNIZED_SCENES``, 384 scenes, seed 0); representation: the pooled
head ReLU6 of EfficientNet-Lite0 (the input of ``_avg_pooling`` averaged
over its 7 x 7 positions, the analogue of the paper's fc1), binarized
``1[phi > 0]`` as SeVec does (Eq. 3). Concepts: disjoint ones with at
least ``--min-images`` scenes; M is the smallest count among them.

    .venv/bin/python benchmarks/sevec_null.py [--draws 200] [--min-images 10]
"""

import argparse
import itertools

import numpy as np
import torch

from captum_hint.concepts import ConceptHierarchy
from captum_hint.datasets import RECOGNIZED_SCENES, StampScenes, load_model
from captum_hint.sevec import layer_representation

CANDIDATES = ["carnivore.n.01", "ungulate.n.01", "primate.n.02", "rodent.n.01", "bird.n.01", "fish.n.01",
              "insect.n.01", "reptile.n.01", "wheeled_vehicle.n.01", "craft.n.02"]


def vector(units, rows):
    """SeVec's v_c and D_c of the images ``rows`` (Eq. 3): the normalized sum of their unit rows."""
    total = units[rows].sum(0)
    return total / total.norm(), 1 - float(total.norm()) / len(rows)


def interval(values):
    values = np.asarray(values)
    return f"{values.mean():.4f} [{np.percentile(values, 2.5):.4f}, {np.percentile(values, 97.5):.4f}]"


def main(draws, min_images):
    spec = load_model("efficientnet-lite0")
    hierarchy = ConceptHierarchy.imagenet()
    samples = list(StampScenes("train", 384, objects=(1, 1), seed=0, **RECOGNIZED_SCENES))
    images = torch.stack([s["image"] for s in samples])
    pooled = torch.cat([layer_representation(spec.model, spec.model._avg_pooling, images[i : i + 32], "pooled", True)
                        for i in range(0, len(images), 32)])
    active = (pooled > 0).float()
    units = active / active.norm(dim=1, keepdim=True).clamp_min(1e-12)
    labels = torch.tensor([s["label"] for s in samples])
    members = {c: torch.isin(labels, torch.tensor(hierarchy.leaves_under(c))).nonzero().flatten()
               for c in CANDIDATES}
    concepts = [c for c in CANDIDATES if len(members[c]) >= min_images]
    m = min(len(members[c]) for c in concepts)
    top = hierarchy.lowest_common_ancestor(*concepts)
    kinds = {}
    for a, b in itertools.combinations(concepts, 2):
        if set(hierarchy.parents(a)) & set(hierarchy.parents(b)):
            kinds[(a, b)] = "siblings"
        elif hierarchy.lowest_common_ancestor(a, b) == top:
            kinds[(a, b)] = "unrelated"
    print(f"{len(samples)} scenes, pooled head ReLU6 ({units.shape[1]} units, 1[phi > 0] density "
          f"{float(active.mean()):.3f}); concepts with >= {min_images} scenes, each subsampled to M = {m}: "
          + ", ".join(f"{hierarchy.label(c).split(',')[0]} ({len(members[c])})" for c in concepts))
    print(f"pairs: {sum(k == 'siblings' for k in kinds.values())} siblings, "
          f"{sum(k == 'unrelated' for k in kinds.values())} unrelated (meeting only at {hierarchy.label(top)})")
    generator = torch.Generator().manual_seed(0)
    cosines = {"siblings": [], "unrelated": [], "random subsets (null)": []}
    diversity = {c: [] for c in concepts}
    diversity["random subset (null)"] = []
    for _ in range(draws):
        fitted = {}
        for c in concepts:
            rows = members[c][torch.randperm(len(members[c]), generator=generator)[:m]]
            fitted[c], d = vector(units, rows)
            diversity[c].append(d)
        for kind in ("siblings", "unrelated"):
            cosines[kind].append(float(np.mean([float(fitted[a] @ fitted[b]) for (a, b), k in kinds.items()
                                                if k == kind])))
        order = torch.randperm(len(units), generator=generator)
        first, d = vector(units, order[:m])
        second, _ = vector(units, order[m : 2 * m])
        cosines["random subsets (null)"].append(float(first @ second))
        diversity["random subset (null)"].append(d)
    print(f"\nmean cosine between semantic vectors, mean over {draws} draws [2.5, 97.5 percentiles of the draws]")
    for kind, values in cosines.items():
        print(f"  {kind:24s} {interval(values)}")
    print(f"\nD_c at M = {m}")
    for name, values in diversity.items():
        label = name if name.startswith("random") else hierarchy.label(name).split(",")[0]
        print(f"  {label:24s} {interval(values)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--min-images", type=int, default=10)
    args = parser.parse_args()
    main(args.draws, args.min_images)
