"""Issue 21, first part: do the neuron rankings find planted concept channels?

Trains (or loads from $CAPTUM_HINT_CACHE) planted models for each variant
and seed, checks the planted truth on held-out scenes, and prints where each
ranking puts each class's planted channel (1 = first of the layer's
channels; random: (D + 1) / 2). The table is given over every (model, class)
and over those whose planted truth holds (check_planted_truth).

    python benchmarks/planted_truth.py --seeds 0 1 2
    python benchmarks/planted_truth.py --seeds 0 1 2 --concept-score logit --fit-objects 1 3
    python benchmarks/planted_truth.py --seeds 0 1 2 --multimodal mammal fruit   # a planted multimodal channel
"""

import argparse
import json
import time

from captum_hint.core.allocator import reuse_freed_memory
from captum_hint.datasets.planted import VARIANTS, PlantedScenes, check_planted_truth, train_planted_model
from captum_hint.truth import ranking_table, score_planted_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--fit-scenes", type=int, default=256, help="scenes HINT and the baselines are fitted on")
    parser.add_argument("--test-scenes", type=int, default=256, help="held-out scenes of the truth check")
    parser.add_argument("--saliency", nargs="+", default=["gradient", "gradient_x_input"], help="HINT saliencies")
    parser.add_argument("--concept-score", default="log_probability", choices=["log_probability", "logit"],
                        help="the score HINT's saliency explains (the planted models are multi-label: 'logit')")
    parser.add_argument("--fit-objects", nargs=2, type=int, default=[1, 1], metavar=("MIN", "MAX"),
                        help="objects per fit scene (HINT takes every object's class as a label)")
    parser.add_argument("--multimodal", nargs=2, metavar=("CLASS", "CLASS"),
                        help="plant one more channel answering to both classes (trains new models)")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    reuse_freed_memory()
    started, rows, checks = time.time(), [], {}
    for variant in args.variants:
        for seed in args.seeds:
            planted = train_planted_model(variant, seed=seed, progress=True, multimodal=args.multimodal)
            check = check_planted_truth(planted, PlantedScenes(args.test_scenes, seed=10_000 + seed))
            checks[f"{variant}/{seed}"] = check
            print(f"{variant} seed {seed}: planted {planted.planted_}, truth {'holds' if check['passed'] else 'fails'}"
                  + ("" if check["passed"] else f" ({'; '.join(check['failures'])})"))
            for name, entry in check["classes"].items():
                print(f"   {name:8s} channel {entry['channel']:2d}  mask PxAP {entry['mask_pxap']:.2f}  IoU "
                      f"{entry['mask_iou']:.2f}  ROC-AUC {entry['roc_auc']:.2f}  ablation {entry['ablation_drop']:.2f}"
                      f" vs free {entry['largest_free_drop']:.2f}")
            for channel, entry in check["multimodal"].items():
                print(f"   multimodal channel {channel:2d} ({' + '.join(entry['concepts'])})  mask PxAP "
                      f"{entry['mask_pxap']:.2f}  IoU {entry['mask_iou']:.2f}")
            fit = PlantedScenes(args.fit_scenes, objects=tuple(args.fit_objects), seed=20_000 + seed)
            samples = [fit[i] for i in range(len(fit))]
            fitted = {}
            for row in score_planted_model(planted, samples, saliency=args.saliency, seed=seed,
                                           concept_score=args.concept_score, fitted=fitted):
                rows.append({**row, "variant": variant, "seed": seed,
                             "truth_holds": check["classes"][row["concept"]]["holds"]})
            if planted.multimodal_:
                for name, hint in fitted.items():
                    if name.startswith("HINT"):
                        print(f"   {name}: multimodal_neurons(n=2) {hint.multimodal_neurons(n=2)}, "
                              f"(n=3) {hint.multimodal_neurons(n=3)}")
    for variant in args.variants:
        for target in ("planted", "multimodal"):
            kept = [r for r in rows if r["variant"] == variant and r["target"] == target]
            for label, subset in (("every class", kept), ("classes whose truth holds",
                                                         [r for r in kept if r["truth_holds"]])):
                if subset:
                    print_table(f"{variant}, {target} channel, {label} (seeds {args.seeds}, {subset[0]['channels']} "
                                f"channels; mean rank, 95 % bootstrap over (class, seed))", subset)
    print(f"\n{time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "checks": checks, "args": vars(args)}, f, indent=1)


def print_table(title, subset):
    print(f"\n{title}")
    for r in ranking_table(subset):
        print(f"   {r['method']:40s} {r['mean_rank']:5.2f} [{r['low']:.2f}, {r['high']:.2f}]  "
              f"first {r['top1']:.2f}  n {r['n']}" + (f"  could not run {r['failed']}" if r["failed"] else ""))


if __name__ == "__main__":
    main()
