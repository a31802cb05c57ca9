"""gAP on the real EfficientNet-Lite0 with real photos (stamp scenes): the paper's Sec. 4.1 checks.

Prints, measured side by side in one run:

1. Table 1: Pearson correlation of channel-contribution estimates with the
   ablation ground truth (channel set to its mean activation), per stage
   pair: gAP's average activation (AA), max activation (MA), average gradient
   (AG), max gradient (MG), and a random estimate (5 seeds) as the trivial
   baseline; means with 95 % bootstrap intervals over images.
2. Cost per image: gAP vs the vmap-batched ablation, and vs one forward per
   channel (extrapolated from timed forwards), as ratios.
3. Fig. 8: the sparse surrogate's match rate and accuracy for k = 1..16.
4. Eq. 13: the discriminative degree per layer.
5. Fig. 7(a): cascading randomization, Spearman correlation with the original maps.

``--testbed recognized`` runs on ``RECOGNIZED_SCENES`` (scenes the model
recognizes), ``--baseline zero`` ablates a channel to zero (the ground
truth gAP's average activation estimates: for a decision linear in the
layer, the zero-ablation drop is H x W x alpha) instead of to its mean.

``--layers`` decomposes through other layers than the stage ends (e.g. pairs
the same number of blocks apart, so that depth is not confounded with the
distance between the two layers).

Usage: ``python benchmarks/gap_sanity.py [--images 16] [--surrogate-images 48] [--testbed stamps]
[--baseline mean] [--layers ...] [--out gap-benchmark.json]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from captum_hint.attr.activation_propagation import layer_output
from captum_hint.concepts import ConceptHierarchy
from captum_hint.datasets import RECOGNIZED_SCENES, StampScenes, load_model, stamp_table
from captum_hint.evaluation import recognition_rates, recognition_summary
from captum_hint.evaluation.statistics import bootstrap_mean
from captum_hint.gap import HierarchicalDecomposition
from captum_hint.gap.diagnostics import (
    cascading_randomization,
    contribution_sanity,
    discriminative_degree,
    sparse_surrogate,
)

RECOGNITION_CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"]


def fmt(stat):
    return f"{stat[0]:+.3f} [{stat[1]:+.3f}, {stat[2]:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16, help="scenes for Table 1 and the cost (default 16)")
    parser.add_argument("--surrogate-images", type=int, default=48, help="scenes for Fig. 8 and Eq. 13")
    parser.add_argument("--randomization-images", type=int, default=4, help="scenes for Fig. 7 (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gap-benchmark.json", help="where to write every figure as JSON")
    parser.add_argument("--testbed", default="stamps", choices=["stamps", "recognized"],
                        help="single-object stamp scenes as before (stamps) or RECOGNIZED_SCENES (recognized)")
    parser.add_argument("--baseline", default="mean", choices=["mean", "zero"],
                        help="Table 1's ablation: a channel set to its mean (as before) or to zero (what AA estimates)")
    parser.add_argument("--layers", nargs="+", default=None,
                        help="the layers to decompose through, in forward order (default: the stage ends); e.g. "
                             "_blocks.3 _blocks.6 _blocks.9 _blocks.12 _blocks.15 for pairs three blocks apart")
    parser.add_argument("--parts", nargs="+", default=["table1", "surrogate", "degree", "randomization"],
                        choices=["table1", "surrogate", "degree", "randomization"], help="which parts to run")
    args = parser.parse_args()
    torch.set_num_threads(2)

    spec = load_model("efficientnet-lite0")
    model = spec.model
    hierarchy = ConceptHierarchy.imagenet()
    settings = RECOGNIZED_SCENES if args.testbed == "recognized" else {"categories": ("animals", "vehicles")}
    scenes = StampScenes("test", max(args.images, args.surrogate_images), objects=(1, 1), seed=args.seed + 1,
                         **settings)
    samples = [scenes[i] for i in range(len(scenes))]
    images = torch.stack([s["image"] for s in samples])
    labels = torch.tensor([s["label"] for s in samples])
    decomposition = HierarchicalDecomposition(model, args.layers)
    report = {"model": "efficientnet-lite0", "layers": decomposition.layers, "seed": args.seed,
              "data": f"stamp scenes (test split, one object each, seed {args.seed + 1}, {args.testbed})",
              "ablation_baseline": args.baseline}
    print(f"EfficientNet-Lite0, stages {decomposition.layers}; {args.images} scenes for Table 1")
    # does the model see the objects' concepts in these scenes? (top-1 class under the concept, issue 22)
    report["recognition"] = recognition_rates(model, samples, hierarchy, RECOGNITION_CONCEPTS, seed=args.seed)
    print(f"recognition rate of the {len(samples)} scenes: {recognition_summary(report['recognition'])}")

    if "table1" in args.parts:
        table1_and_cost(args, model, images, decomposition, report)
    if "surrogate" in args.parts:
        surrogate_table(args, model, hierarchy, images, labels, decomposition, report)
    if "degree" in args.parts:
        degree_table(args, images, labels, decomposition, report)
    if "randomization" in args.parts:
        randomization_table(args, images, decomposition, report)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(f"\nwrote {args.out}")


def table1_and_cost(args, model, images, decomposition, report):
    """Table 1 (PCC per stage pair) and the cost per image."""
    baseline = 0.0 if args.baseline == "zero" else "mean"
    table = contribution_sanity(decomposition, images[: args.images], baseline=baseline)
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    print(f"\n{'pair':<28} {'AA (gAP)':>26} {'MA':>26} {'AG':>26} {'MG':>26} {'random':>26}")
    for row in table:
        width = row["AA"].shape[0]
        stats = {key: bootstrap_mean(row[key].numpy()) for key in ("AA", "MA", "AG", "MG")}
        # trivial baseline: random contribution estimates (5 seeds per image) against the same truth
        truth = row["truth"]
        guesses = torch.randn(5, *truth.shape, generator=generator)
        stats["random"] = bootstrap_mean([float(np.corrcoef(g.numpy(), t.numpy())[0, 1])
                                     for seed in guesses for g, t in zip(seed, truth)])
        rows.append({"pair": row["pair"], **stats, "seconds_gap_per_image": row["seconds_gap"] / width,
                     "seconds_ablation_per_image": row["seconds_ablation"] / width})
        print(f"{row['pair']:<28} " + " ".join(f"{fmt(stats[k]):>26}" for k in ("AA", "MA", "AG", "MG", "random")))
    report["table1"] = rows

    with torch.no_grad():
        one = images[:1]
        model(one)
        started = time.perf_counter()
        for _ in range(16):
            model(one)
        forward_seconds = (time.perf_counter() - started) / 16
    widths = [layer_output(model, decomposition._modules[layer], one).shape[1] for layer in decomposition.layers]
    gap_total = sum(r["seconds_gap_per_image"] for r in rows)
    vmap_total = sum(r["seconds_ablation_per_image"] for r in rows)
    loop_total = forward_seconds * sum(widths)
    report["cost"] = {"gap_seconds_per_image": gap_total, "vmap_ablation_seconds_per_image": vmap_total,
                      "per_channel_forward_seconds_per_image_extrapolated": loop_total,
                      "one_forward_seconds": forward_seconds, "channels": widths}
    print(f"\ncost per image, all {len(rows)} pairs: gAP {1000 * gap_total:.0f} ms, vmap ablation "
          f"{1000 * vmap_total:.0f} ms ({vmap_total / gap_total:.0f}x), one forward per channel "
          f"{loop_total:.1f} s (extrapolated: {sum(widths)} channels x {1000 * forward_seconds:.1f} ms; "
          f"{loop_total / gap_total:.0f}x)")



def surrogate_table(args, model, hierarchy, images, labels, decomposition, report):
    """Fig. 8: the sparse surrogate's match rate."""
    via = {row["label"]: row["via"] for row in stamp_table()}
    n = args.surrogate_images
    surrogate = sparse_surrogate(decomposition, images[:n], ks=(1, 2, 4, 8, 16))
    with torch.no_grad():
        full = model(images[:n]).argmax(1)
    leaves = [set(hierarchy.leaves_under(via[int(label)])) for label in labels[:n]]
    predicted_ok = np.array([int(p) in leaf for p, leaf in zip(full.tolist(), leaves)], dtype=float)
    print(f"\nsparse surrogate on {n} scenes (full model: accuracy under the object's WordNet concept "
          f"{predicted_ok.mean():.3f})")
    print(f"{'k':>3} {'match rate':>26} {'kept channels per layer (lowest first)':>48}")
    for row in surrogate:
        print(f"{row['k']:>3} {row['match_rate']:>26.3f} {str([round(c, 1) for c in row['kept_channels']]):>48}")
    report["surrogate"] = {"rows": surrogate, "full_accuracy_concept_level": float(predicted_ok.mean()), "images": n}



def degree_table(args, images, labels, decomposition, report):
    """Eq. 13: the discriminative degree per layer (classes: the objects' WordNet concepts)."""
    via = {row["label"]: row["via"] for row in stamp_table()}
    n = args.surrogate_images
    names = sorted({via[int(label)] for label in labels[:n]})
    index = torch.tensor([names.index(via[int(label)]) for label in labels[:n]])
    batches = [(images[s : s + 8], index[s : s + 8]) for s in range(0, n, 8)]
    degree = discriminative_degree(decomposition, batches, num_classes=len(names), top_k=3)
    report["discriminative_degree"] = {
        layer: {"mean": float(v[~v.isnan()].mean()), "channels_counted": int((~v.isnan()).sum()),
                "chance": 1 / len(names)} for layer, v in degree.items()}
    print(f"\ndiscriminative degree D over {n} scenes, {len(names)} concepts (1/C = {1 / len(names):.3f}):")
    for layer in decomposition.layers:
        entry = report["discriminative_degree"][layer]
        print(f"  {layer:<12} mean D {entry['mean']:.3f} over {entry['channels_counted']} channels chosen")



def randomization_table(args, images, decomposition, report):
    """Fig. 7(a): cascading randomization."""
    m = args.randomization_images
    randomized = cascading_randomization(decomposition, images[:m], top_k=2, seed=args.seed)
    methods = [k for k in randomized[0] if k != "randomized"]
    print(f"\ncascading randomization on {m} scenes: mean Spearman rho with the original maps")
    print(f"{'randomized down to':<20}" + "".join(f"{k:>22}" for k in methods))
    for row in randomized:
        print(f"{row['randomized']:<20}" + "".join(f"{float(row[k].nanmean()):>22.3f}" for k in methods))
    report["randomization"] = [{"randomized": r["randomized"], **{k: float(r[k].nanmean()) for k in methods}}
                               for r in randomized]


if __name__ == "__main__":
    main()
