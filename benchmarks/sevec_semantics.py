"""SeVec on the real EfficientNet-Lite0 with stamp scenes: the paper's tests, side by side in one run.

1. Fig. 7: the generalized pointing game (keep the highest pixels holding m % of
   the map's energy; a hit when they all lie in the target object's box, or, the
   paper's wording read the other way, in any box of the target concept) of
   Guided Backprop and Gradient x Input against their semantic versions, on
   scenes of 2-3 objects, each object explained for its own concept; with a
   centre-Gaussian map as the trivial baseline, 95 % bootstrap intervals over
   (image, object) pairs, and the paired difference semantic - plain.
2. Table 1: the change of the true concept's probability under the four
   modifications of the representation.
3. Geometry: mean cosine between sibling concepts vs concepts meeting only at
   the top of the set.
4. Table 2: correlation of D_c with per-concept accuracy (and its p-value).
5. Beyond the paper: SeVec vs HINT at the same channels (HINT at ``_bn1``,
   SeVec at the ReLU6 that follows it): cosine between the pooled semantic
   vector and the concept classifier's coefficients, and the overlap of the
   top-20 units.

Usage: ``python benchmarks/sevec_semantics.py [--train-scenes 192] [--test-scenes 64] [--out sevec-benchmark.json]
[--recognized] [--pointing-only]``; ``--recognized`` keeps the (image, object) pairs whose image the model
classifies under the object's concept (the paper's correctly classified images).
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from captum_hint import HINT, ConceptHierarchy
from captum_hint.attr import SemanticGradientXInput, SemanticGuidedBackprop
from captum_hint.datasets import StampScenes, collate_samples, load_model
from captum_hint.evaluation import energy_pointing_game, recognition_rates, recognition_summary
from captum_hint.evaluation.statistics import bootstrap_mean
from captum_hint.sevec import (
    SemanticVectors,
    accuracy_correlation,
    neuron_vs_vector_test,
)

CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01", "carnivore.n.01", "ungulate.n.01", "primate.n.02",
            "rodent.n.01", "insect.n.01", "reptile.n.01", "fish.n.01", "wheeled_vehicle.n.01", "craft.n.02"]
ENERGIES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def most_specific(hierarchy, concepts, label):
    """The deepest fitted concept above a leaf label, or None."""
    lineage = set(hierarchy.ancestors(hierarchy.leaves[label])) | {hierarchy.leaves[label]}
    above = [c for c in concepts if c in lineage]
    return max(above, key=hierarchy.depth) if above else None


def centre_gaussian(size, sigma=0.25):
    axis = torch.linspace(-0.5, 0.5, size)
    return torch.exp(-(axis[:, None] ** 2 + axis[None] ** 2) / (2 * sigma**2))[None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-scenes", type=int, default=192)
    parser.add_argument("--test-scenes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sevec-benchmark.json")
    parser.add_argument("--recognized", action="store_true",
                        help="play the pointing game only on (image, object) pairs whose image the model classifies "
                             "under the object's concept (top-1), as the paper's correctly classified images")
    parser.add_argument("--pointing-only", action="store_true", help="stop after the pointing game (part 1)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = load_model("efficientnet-lite0")
    model, hierarchy = spec.model, ConceptHierarchy.imagenet()
    train = [s for s in StampScenes("train", args.train_scenes, objects=(1, 1), seed=args.seed,
                                    categories=("animals", "vehicles"))]
    test = [s for s in StampScenes("test", args.test_scenes, objects=(2, 3), seed=args.seed + 1,
                                   categories=("animals", "vehicles"))]
    labels = torch.tensor([s["label"] for s in train])
    concepts = [c for c in CONCEPTS if torch.isin(labels, torch.tensor(hierarchy.leaves_under(c))).sum() >= 2]
    sevec = SemanticVectors(model, "_avg_pooling", concepts, hierarchy, "spatial", use_layer_input=True,
                            progress=False).fit(DataLoader(train, batch_size=16, collate_fn=collate_samples))
    report = {"data": f"stamp scenes: {len(train)} training (1 object, seed {args.seed}), {len(test)} test "
                      f"(2-3 objects, seed {args.seed + 1})", "layer": "_avg_pooling input (ReLU6 of the head)",
              "concepts": concepts, "counts": sevec.counts_.tolist(), "diversity": sevec.diversity_.tolist()}
    print(f"SeVec at the input of _avg_pooling (1280 x 7 x 7), {len(concepts)} concepts, {report['data']}")
    # does the model see the concepts in these scenes? (top-1 class under the object's concept, issue 22)
    report["recognition"] = {name: recognition_rates(model, data, hierarchy, concepts, seed=args.seed)
                             for name, data in (("train", train), ("test", test))}
    for name, rows in report["recognition"].items():
        print(f"recognition rate ({name}): {recognition_summary(rows)}")

    # 1. generalized pointing game, one (image, object) pair per visible object with a fitted concept
    pairs = [(i, j, most_specific(hierarchy, concepts, int(label)))
             for i, sample in enumerate(test) for j, label in enumerate(sample["labels"].tolist())]
    pairs = [(i, j, c) for i, j, c in pairs if c is not None]
    if args.recognized:
        with torch.no_grad():
            predicted = torch.cat([model(torch.stack([s["image"] for s in test[k : k + 32]]))
                                   for k in range(0, len(test), 32)]).argmax(1).tolist()
        all_pairs = len(pairs)
        pairs = [(i, j, c) for i, j, c in pairs if predicted[i] in hierarchy.leaves_under(c)]
        report["recognized_pairs"] = {"kept": len(pairs), "of": all_pairs}
        print(f"pairs whose image the model classifies under the object's concept: {len(pairs)} of {all_pairs}")
    images = torch.stack([test[i]["image"] for i, _, _ in pairs])
    boxes = [test[i]["boxes"][j : j + 1] for i, j, _ in pairs]
    targets = [set(hierarchy.leaves_under(c)) for _, _, c in pairs]
    vectors = torch.stack([sevec.vector(c) for _, _, c in pairs])
    methods = {"guided backprop": SemanticGuidedBackprop(model, "_avg_pooling", use_layer_input=True),
               "gradient x input": SemanticGradientXInput(model, "_avg_pooling", use_layer_input=True)}
    maps = {}
    for name, method in methods.items():
        for semantic in (False, True):
            chunks = [method.attribute(images[s : s + 8], target=targets[s : s + 8],
                                       semantic_vector=vectors[s : s + 8] if semantic else None)
                      for s in range(0, len(images), 8)]
            maps[f"{'semantic ' if semantic else ''}{name}"] = torch.cat(chunks).abs().sum(1, keepdim=True)
    maps["centre Gaussian"] = centre_gaussian(images.shape[-1]).expand(len(images), 1, -1, -1)
    # the paper: a hit when the kept area "lies in the bounding box of the corresponding target object"; with
    # several objects of the target concept in a scene that is either the explained object's box or any of them
    readings = {"the explained object's box": boxes,
                "any box of the target concept": [test[i]["boxes"][torch.isin(test[i]["labels"], torch.tensor(
                    hierarchy.leaves_under(c)))] for i, _, c in pairs]}
    report["pointing_game_readings"] = {}
    for reading, reading_boxes in readings.items():
        reading_hits = {name: {m: energy_pointing_game(value, reading_boxes, m).float().numpy() for m in ENERGIES}
                        for name, value in maps.items()}
        print(f"\ngeneralized pointing game on {len(pairs)} (image, object) pairs, a hit inside {reading}; "
              "mean [95 % CI]")
        print(f"{'energy':>7}" + "".join(f"{name:>28}" for name in maps))
        rows = []
        for m in ENERGIES:
            stats = {name: bootstrap_mean(reading_hits[name][m]) for name in maps}
            rows.append({"energy": m, **stats})
            print(f"{m:>7.2f}" + "".join(f"{s[0]:>10.3f} [{s[1]:.3f}, {s[2]:.3f}]" for s in stats.values()))
        report["pointing_game_readings"][reading] = rows
        if reading_boxes is boxes:
            hits, report["pointing_game"] = reading_hits, rows
    print("\npaired difference semantic - plain (mean [95 % CI])")
    differences = []
    for name in methods:
        for m in ENERGIES:
            d = bootstrap_mean(hits[f"semantic {name}"][m] - hits[name][m])
            differences.append({"method": name, "energy": m, "difference": d})
        print(f"  {name:<18}" + " ".join(f"{m:.2f}: {d['difference'][0]:+.3f} [{d['difference'][1]:+.3f}, "
                                        f"{d['difference'][2]:+.3f}]" for m, d in
                                        zip(ENERGIES, differences[-len(ENERGIES):]) if m in (0.01, 0.3, 0.7)))
    report["pointing_game_differences"] = differences
    if args.pointing_only:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
        return

    # 2. Table 1 on the test pairs (each image's concept of one object)
    first = {}
    for i, _, c in pairs:
        first.setdefault(i, c)
    table1 = neuron_vs_vector_test(sevec, torch.stack([test[i]["image"] for i in first]), list(first.values()),
                                   seed=args.seed)
    report["table1"] = {name: bootstrap_mean(values.numpy()) for name, values in table1.items()}
    print(f"\nTable 1 on {len(first)} test scenes: change of the concept's probability, mean [95 % CI]")
    for name, stat in report["table1"].items():
        print(f"  {name:<18} {stat[0]:+.4f} [{stat[1]:+.4f}, {stat[2]:+.4f}]")

    # 3-4. geometry and diversity vs accuracy
    report["geometry"] = sevec.sibling_cosines()
    geometry = report["geometry"]
    print(f"\ncosine: siblings {geometry['siblings']:.3f} ({geometry['n_sibling_pairs']} pairs), concepts "
          f"meeting only at {geometry['top']} {geometry['unrelated']:.3f} ({geometry['n_unrelated_pairs']} pairs)")
    single = [s for s in StampScenes("test", args.test_scenes, objects=(1, 1), seed=args.seed + 2,
                                     categories=("animals", "vehicles"))]
    correlation = accuracy_correlation(sevec, DataLoader(single, batch_size=16, collate_fn=collate_samples))
    report["recognition"]["single-object test"] = recognition_rates(model, single, hierarchy, concepts, seed=args.seed)
    print(f"recognition rate (single-object test): {recognition_summary(report['recognition']['single-object test'])}")
    report["diversity_accuracy"] = {"r": correlation["r"], "p_value": correlation["p_value"],
                                    "n_concepts": correlation["n_concepts"],
                                    "accuracy": correlation["accuracy"].tolist()}
    print(f"D_c vs accuracy over {correlation['n_concepts']} concepts: r {correlation['r']:+.3f}, "
          f"p {correlation['p_value']:.3g}")

    # 5. SeVec vs HINT on the same 1280 channels
    pooled = SemanticVectors(model, "_avg_pooling", concepts, hierarchy, "pooled", use_layer_input=True,
                             progress=False).fit(DataLoader(train, batch_size=16, collate_fn=collate_samples))
    hint = HINT(model, "_bn1", hierarchy, concepts, saliency="gradient", shapley_kwargs={"n_permutations": 16},
                n_regions=256, seed=args.seed, progress=False).fit(
        DataLoader(train, batch_size=16, collate_fn=collate_samples))
    comparison = []
    for k, concept in enumerate(concepts):
        coef = hint.classifiers_[k].coef_
        v = pooled.vectors_[k]
        cosine = float(torch.nn.functional.cosine_similarity(v, coef, dim=0))
        top_sevec = set(v.topk(20).indices.tolist())
        top_hint = set(hint.top_neurons(concept, 20).indices.tolist())
        chance = 20 * 20 / v.numel()
        comparison.append({"concept": hierarchy.label(concept), "cos(v_c, coef)": cosine,
                           "top-20 overlap": len(top_sevec & top_hint), "overlap by chance": chance,
                           "hint_f1": float(hint.f1_[k])})
    report["sevec_vs_hint"] = comparison
    print("\nSeVec (pooled) vs HINT (_bn1) per concept: cos(v_c, classifier coef), top-20 unit overlap (chance 0.31)")
    for row in comparison:
        print(f"  {row['concept']:<18} cos {row['cos(v_c, coef)']:+.3f}  overlap {row['top-20 overlap']:>2}/20  "
              f"(HINT F1 {row['hint_f1']:.2f})")
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
