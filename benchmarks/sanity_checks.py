"""Issue 21: the three sanity checks of neuron rankings, on a planted model and on EfficientNet-Lite0.

* concept-label randomization (annotations shuffled across images, no
  retraining): Spearman correlation with the original ranking; near 0 passes;
* cascading randomization, output first, through the explained layer and
  below: mean Spearman correlation after each step;
* split-half stability: overlap@k of the top-k neurons fitted on two
  disjoint halves, 95 % bootstrap interval over (split, concept).

    python benchmarks/sanity_checks.py --out docs/img            # both models
    python benchmarks/sanity_checks.py --models planted          # the planted one only

AfI on EfficientNet-Lite0 costs minutes per occluder (Adam steps over the
class's images at 224 px), times every ranking the checks ask for; it runs
only with ``--afi-images N`` (its images per concept), on ``--afi-concepts``,
with ``--afi-iterations`` steps, and the cascade can be cut to its first
``--cascade-steps`` modules:

    python benchmarks/sanity_checks.py --models efficientnet --afi-images 16 --afi-iterations 50 \
        --afi-concepts mammal.n.01 bird.n.01 --repeats 1 --splits 1 --cascade-steps 3 --out /tmp/afi
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

from captum_hint.core.allocator import reuse_freed_memory
from captum_hint.truth import (cascading_randomization_check, label_randomization_check, plot_sanity_checks,
                               split_half_stability, system_rankings)

EFFICIENTNET_CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"]
EFFICIENTNET_CASCADE = ["_fc", "_bn1", "_conv_head", *[f"_blocks.{i}" for i in range(15, 7, -1)]]


def planted_case(args):
    from captum_hint.datasets.planted import PlantedScenes, train_planted_model
    from captum_hint.truth.study import FIT_SEED

    planted = train_planted_model("bottleneck", seed=0, progress=True)
    scenes = PlantedScenes(args.planted_scenes, objects=(1, 1), seed=FIT_SEED)
    samples = [scenes[i] for i in range(len(scenes))]
    common = dict(layer=planted.layer, hierarchy=planted.hierarchy, concepts=planted.concepts, seed=args.seed)
    systems = {name: system_rankings(name, saliency="gradient_x_input", **common)
               for name in ("HINT (shapley)", "HINT (coef)", "AfI")}
    systems["SeVec"] = system_rankings("SeVec", **common)
    cascade = ["head", "above.0", "concept_conv", "features.7", "features.6", "features.4", "features.3",
               "features.1", "features.0"]
    return (f"planted bottleneck model (seed 0), {len(samples)} one-object scenes (seed {FIT_SEED}), "
            "HINT with gradient x input", planted.model, samples, systems, cascade)


def efficientnet_case(args):
    from captum_hint.app.demo import DEMO_SCENES
    from captum_hint.concepts import ConceptHierarchy
    from captum_hint.datasets import StampScenes, load_model

    spec = load_model("efficientnet-lite0")
    hierarchy = ConceptHierarchy.imagenet()
    scenes = StampScenes("train", args.efficientnet_scenes, objects=(1, 1), seed=args.seed, **DEMO_SCENES)
    samples = [scenes[i] for i in range(len(scenes))]
    if args.afi_images:
        afi = system_rankings("AfI", spec.layer, hierarchy, args.afi_concepts, class_images=args.afi_images,
                              occluder_iterations=args.afi_iterations, seed=args.seed)
        return (f"EfficientNet-Lite0, AfI at {spec.layer} ({args.afi_images} images per concept, at most "
                f"{args.afi_iterations} steps), {len(samples)} one-object stamp scenes (seed {args.seed})", spec.model,
                samples, {"AfI": afi}, EFFICIENTNET_CASCADE[: args.cascade_steps])
    systems = {"HINT (shapley)": system_rankings("HINT (shapley)", spec.layer, hierarchy, EFFICIENTNET_CONCEPTS,
                                                 saliency="gradient", seed=args.seed),
               "SeVec (_avg_pooling input)": system_rankings("SeVec", "_avg_pooling", hierarchy,
                                                             EFFICIENTNET_CONCEPTS, use_layer_input=True,
                                                             seed=args.seed)}
    return (f"EfficientNet-Lite0, HINT at {spec.layer} (gradient saliency), {len(samples)} one-object stamp scenes "
            f"(seed {args.seed})", spec.model, samples, systems, EFFICIENTNET_CASCADE[: args.cascade_steps])


def summary_of(results):
    label, cascade, split = results
    return {"label": {n: {"correlation": r["correlation"], "mean": r["mean"]} for n, r in label.items()},
            "cascade": cascade, "split": split}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["planted", "efficientnet"], choices=["planted", "efficientnet"])
    parser.add_argument("--planted-scenes", type=int, default=256)
    parser.add_argument("--efficientnet-scenes", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="label shuffles")
    parser.add_argument("--splits", type=int, default=3, help="random half splits")
    parser.add_argument("--k", type=int, default=3, help="top-k of the split-half overlap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--afi-images", type=int, default=0, help="EfficientNet: run AfI (only) on this many images")
    parser.add_argument("--afi-iterations", type=int, default=300, help="EfficientNet: AfI's occluder steps")
    parser.add_argument("--afi-concepts", nargs="+", default=EFFICIENTNET_CONCEPTS, help="EfficientNet: AfI's concepts")
    parser.add_argument("--cascade-steps", type=int, default=len(EFFICIENTNET_CASCADE),
                        help="EfficientNet: randomize only the first this many modules of the cascade")
    parser.add_argument("--out", default=".", help="folder for sanity_<model>.png and sanity_checks.json")
    args = parser.parse_args()
    reuse_freed_memory()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args)}
    for name in args.models:
        started = time.time()
        title, model, samples, systems, cascade_modules = (planted_case if name == "planted" else efficientnet_case)(args)
        label, cascade, split, errors = {}, {}, {}, {}
        checks = {"label": (label, lambda r: label_randomization_check(r, model, samples, repeats=args.repeats,
                                                                       seed=args.seed)),
                  "cascade": (cascade, lambda r: cascading_randomization_check(r, model, samples, cascade_modules,
                                                                               seed=args.seed)),
                  "split": (split, lambda r: split_half_stability(r, model, samples, k=args.k, splits=args.splits,
                                                                  seed=args.seed))}
        for system, rankings in systems.items():
            for check, (results, run) in checks.items():
                try:
                    results[system] = run(rankings)
                except ValueError as error:  # e.g. AfI: no image of a class is classified as it
                    errors[f"{system} / {check}"] = str(error)
            print(f"{name} {system}: label-shuffled Spearman {label.get(system, {}).get('mean', math.nan):.2f}; "
                  f"cascade {[round(v, 2) for v in cascade.get(system, {}).get('mean', [])]}; split-half "
                  f"overlap@{args.k} {split.get(system, {}).get('mean', math.nan):.2f} "
                  f"[{split.get(system, {}).get('low', math.nan):.2f}, {split.get(system, {}).get('high', math.nan):.2f}]",
                  flush=True)
        for failed, error in errors.items():
            print(f"   could not run: {failed}: {error}")
        figure = plot_sanity_checks(label, cascade, split, title=title)
        figure.savefig(out / f"sanity_{name}{'_afi' if name == 'efficientnet' and args.afi_images else ''}.png", dpi=90)
        report[name] = {"title": title, **summary_of((label, cascade, split)), "errors": errors,
                        "seconds": time.time() - started}
        for entry in report[name]["label"].values():
            entry["correlation"] = {c: list(v) for c, v in entry["correlation"].items()}
    with open(out / "sanity_checks.json", "w") as f:
        json.dump(report, f, indent=1, default=lambda t: t.tolist() if isinstance(t, torch.Tensor) else str(t))


if __name__ == "__main__":
    main()
