"""The main job (``captum-hint demo``): HINT on EfficientNet-Lite0 and stamp scenes, the paper's experiments, a report.

Every figure of the report carries a 95 % bootstrap interval over images
(seed ``args.seed``), and method differences a paired bootstrap.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from torch.utils.data import DataLoader

from ..datasets.stamps import DISTRACTOR_CATEGORIES
from .cli import _say

DEMO_CONCEPTS = ["whole.n.02", "animal.n.01", "vertebrate.n.01", "mammal.n.01", "bird.n.01",
                 "invertebrate.n.01", "artifact.n.01"]
DEMO_EVALUATED = ["whole.n.02", "animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"]
FRACTIONS = (0.1, 0.2, 0.4, 0.8)
#: The demo's stamp scenes (train and test differ in objects per scene and seed).
DEMO_SCENES = {"categories": ("animals", "vehicles"), "distractors": DISTRACTOR_CATEGORIES,
               "n_distractors": (0, 2), "scale": (0.4, 0.75)}
PER_CONCEPT_METRICS = ("maxboxacc_v2", "pxap", "pointing_15px", "off_target_mass")
TABLE_METRICS = ["maxboxacc", "maxboxacc_v2", "pxap", "pointing_15px", "pointing_strict", "energy_pointing",
                 "hint_pointing", "hint_iou", "loc_acc", "off_target_mass", "mask_area"]


def _interval(row: Dict, key: str) -> str:
    if key not in row or (isinstance(row[key], float) and math.isnan(row[key])):
        return "–"
    return f"{row[key]:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"


def _shown(table: List[Dict], metrics: Sequence[str]) -> List[Dict]:
    """Table rows for the report: each metric as "value [low, high]" (a ``concept`` column is kept if present)."""
    from ..evaluation import METRIC_NAMES

    return [{**({"concept": r["concept"]} if "concept" in r else {}), "method": r["method"],
             "neurons": "–" if math.isnan(r["fraction"]) else f"{100 * r['fraction']:.0f} %",
             "images": r["images"], **{METRIC_NAMES[m]: _interval(r, m) for m in metrics}} for r in table]


def _paired(rows: List[Dict], reference: str, fraction: float, metrics: Sequence[str], seed: int) -> List[Dict]:
    """Shapley − each other method at ``fraction`` (flat methods at any fraction), concepts pooled, paired."""
    from ..evaluation import METRIC_NAMES, compare_records, merge_records

    def pooled(method: str):
        chosen = [r for r in rows if r["method"] == method and (r["fraction"] == fraction or math.isnan(r["fraction"]))]
        return merge_records([r["record"] for r in chosen]) if chosen else None

    first = pooled(reference)
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        second = pooled(method) if method != reference else None
        if second is None or first is None:
            continue
        difference = compare_records(first, second, seed)
        out.append({"comparison": f"{reference} − {method}",
                    **{METRIC_NAMES[m]: "{:+.3f} [{:+.3f}, {:+.3f}]".format(*difference[m]) for m in metrics
                       if m in difference}})
    return out


def _mask_areas(hint, samples, lower: Sequence[str], higher: Sequence[str]) -> List[Dict]:
    """Mask area of higher- vs lower-level concept maps on the same objects (20 % Shapley neurons)."""
    from ..evaluation import concept_ground_truth, mask_area

    rows = []
    for concept in lower:
        keep, _, _ = concept_ground_truth(samples, hint.hierarchy.leaves_under(concept))
        if not keep:
            continue
        images = torch.stack([samples[i]["image"] for i in keep])
        features = hint.layer_features(images)
        row = {"objects": hint.hierarchy.label(concept), "images": len(keep),
               "own concept": mask_area(hint.localize(images, concept, 0.2, features=features)).mean().item()}
        for level in higher:
            row[hint.hierarchy.label(level)] = mask_area(hint.localize(images, level, 0.2, features=features)).mean().item()
        rows.append(row)
    return rows


def _layer_sweep(spec, hierarchy, concepts, samples, seed) -> Dict[str, Dict[str, float]]:
    from ..datasets import collate_samples
    from ..hint import fit_layers

    loader = DataLoader(samples, batch_size=16, collate_fn=collate_samples)
    swept = [c for c in ("animal.n.01", "mammal.n.01", "bird.n.01") if c in concepts]
    # One forward and backward pass per batch reaches every layer of the sweep.
    fitted = fit_layers(spec.model, spec.layers, hierarchy, loader, concepts=swept, saliency="gradient",
                        saliency_target="leaf", shapley_kwargs={"n_permutations": 1}, n_regions=32, seed=seed,
                        progress=False)
    return {layer: {hierarchy.label(c): float(v) for c, v in zip(sweep.concepts, sweep.f1_)}
            for layer, sweep in fitted.items()}


def run_demo(args) -> int:
    """The main job; writes the report folder ``args.out``."""
    from ..concepts import ConceptHierarchy
    from ..datasets import StampScenes, collate_samples, load_model
    from ..evaluation import concept_ground_truth, gradcam_maps, localization_table, normalize_maps
    from ..hint import HINT
    from ..hint.experiments import (adversarial_study, cascading_randomization_study, ranking_study,
                                    saliency_method_study)
    from ..hint.reference_patches import top_activating_patches
    from .explore import explore_model
    from .figures import plot_map_rows, plot_method_bars, plot_metric_by_fraction, plot_reference_patches
    from .report import plot_layer_f1, plot_overlays, write_report, write_scores_csv

    started, phases = time.time(), {}

    def phase(name: str) -> None:
        phases[name] = round(time.time() - started - sum(phases.values()), 1)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _say(f"model {args.model}; fetching the stamp photos (Debian tuxpaint-stamps-default, cached)")
    spec = load_model(args.model)
    hierarchy = ConceptHierarchy.imagenet()
    train = StampScenes("train", args.train_scenes, objects=(1, 1), seed=args.seed, **DEMO_SCENES)
    test = StampScenes("test", args.test_scenes, objects=(1, 3), seed=args.seed + 1, **DEMO_SCENES)
    train_samples, test_samples = list(train), list(test)  # rendered a few at a time in threads
    loader = DataLoader(train_samples, batch_size=16, collate_fn=collate_samples)
    _say(f"{len(train)} training scenes from {len(train.stamps)} stamps (+{len(train.distractor_stamps)} distractor "
         f"stamps), {len(test)} test scenes from {len(test.stamps)} other stamps")
    phase("scenes")

    train_labels = torch.tensor([sample["label"] for sample in train_samples])
    concepts = [c for c in DEMO_CONCEPTS if torch.isin(train_labels, torch.tensor(hierarchy.leaves_under(c))).sum() >= 2]
    dropped = sorted(set(DEMO_CONCEPTS) - set(concepts))
    if dropped:
        _say(f"too few training scenes (< 2) for {', '.join(dropped)}: left out of the concept set")
    evaluated = [c for c in DEMO_EVALUATED if c in concepts]
    saliency_kwargs = {"n_samples": args.smoothgrad_samples} if args.saliency == "smoothgrad" else {}
    _say(f"HINT on {spec.layer} with {args.saliency} saliency, concept-score targets")
    hint = HINT(spec.model, spec.layer, hierarchy, concepts, saliency=args.saliency,
                saliency_kwargs=saliency_kwargs, seed=args.seed)
    hint.fit(loader)
    hint.save(out / "hint")
    write_scores_csv(hint, out / "scores.csv")
    held_out = hint.held_out_scores()
    _say("held-out F1 / ROC-AUC: " + ", ".join(f"{hierarchy.label(c)} {v['f1']:.2f} / {v['roc_auc']:.2f}"
                                               for c, v in held_out.items()))
    phase("HINT fit")

    _say(f"F1 across layers {', '.join(spec.layers)} (gradient saliency, class target)")
    layer_f1 = _layer_sweep(spec, hierarchy, concepts, train_samples[:192], args.seed)
    plot_layer_f1(layer_f1, out / "layer_f1.png")
    phase("layer sweep")

    _say("neuron rankings x fractions on the test scenes (Fig. 4c, Tables 1-2)")
    rows = ranking_study(hint, train_samples, test_samples, evaluated, FRACTIONS, random_seeds=(0, 1, 2),
                         conductance_images=args.conductance_images, gradcam_layer=spec.gradcam_layer, progress=True)
    table = localization_table(rows, seed=args.seed)
    plot_metric_by_fraction(table, "maxboxacc_v2", "MaxBoxAccV2", out / "rankings_maxboxacc.png")
    plot_metric_by_fraction(table, "pxap", "PxAP", out / "rankings_pxap.png")
    at_20 = [r for r in table if r["fraction"] == 0.2 or math.isnan(r["fraction"])]
    differences = _paired(rows, "HINT (shapley)", 0.2, ["maxboxacc_v2", "pxap", "pointing_15px", "hint_iou",
                                                         "off_target_mass"], args.seed)
    per_concept = [{"concept": hierarchy.label(r["concept"]), **localization_table([r], seed=args.seed)[0]}
                   for r in rows if r["method"] in ("HINT (shapley)", "HINT (random (seed 0))", "Grad-CAM", "centre Gaussian")
                   and (r["fraction"] == 0.2 or math.isnan(r["fraction"]))]
    phase("rankings")

    study_concepts = [c for c in ("animal.n.01", "bird.n.01", "artifact.n.01") if c in concepts]
    _say(f"HINT with each of the five saliency methods on {min(len(train_samples), 128)} scenes (Fig. 4b)")
    saliency = saliency_method_study(spec.model, spec.layer, hierarchy, study_concepts, train_samples[:128],
                                     test_samples, seed=args.seed,
                                     hint_kwargs={"shapley_kwargs": {"n_permutations": 16}})
    saliency_table = localization_table(saliency["rows"], seed=args.seed)
    plot_method_bars(saliency_table, {"maxboxacc_v2": "MaxBoxAccV2", "pxap": "PxAP", "pointing_15px": "pointing (15 px)",
                                      "hint_iou": "HINT mask IoU"}, out / "saliency_methods.png",
                     "HINT with each saliency method (20 % Shapley neurons)")
    phase("saliency methods")

    randomization = None
    sanity_concept = next((c for c in ("bird.n.01", "animal.n.01") if c in concepts), None)
    if sanity_concept is not None:
        _say(f"cascading randomization above {spec.layer}, guided backprop, {hierarchy.label(sanity_concept)} (Fig. 5a)")
        randomization = cascading_randomization_study(
            spec.model, spec.layer, hierarchy, sanity_concept, train_samples[:128], test_samples, seed=args.seed,
            hint_kwargs={"shapley_kwargs": {"n_permutations": 16}})
        shown = torch.stack([test_samples[i]["image"] for i in randomization["images"]])
        pixels = spec.denormalize(shown)
        plot_map_rows({f"randomized: {s['randomized']}": (pixels, m) for s, m in
                       zip(randomization["steps"], randomization["maps"])}, out / "randomization.png")
    phase("randomization")

    adversarial = None
    if "bird.n.01" in concepts:
        bird_leaves = torch.tensor(hierarchy.leaves_under("bird.n.01"))
        birds = [s["image"] for s in train_samples if s["label"] in bird_leaves.tolist()][:16]
        with torch.no_grad():
            predicted = spec.model(torch.stack(birds)).argmax(1)
        predicted = predicted[torch.isin(predicted, bird_leaves)]
        target = int(predicted.mode().values) if len(predicted) else int(bird_leaves[0])
        others = [i for i, s in enumerate(test_samples) if not torch.isin(s["labels"], bird_leaves).any()][:6]
        _say(f"PGD towards '{hierarchy.label(hierarchy.leaves[target])}' on {len(others)} non-bird scenes (Fig. 5b)")
        images = torch.stack([test_samples[i]["image"] for i in others])
        adversarial = adversarial_study(hint, images, target, "bird.n.01", spec.mean, spec.std, seed=args.seed)
        plot_map_rows({"bird map, clean": (spec.denormalize(images), adversarial["maps"][0]),
                       "bird map, attacked": (spec.denormalize(adversarial["attacked"]), adversarial["maps"][1])},
                      out / "adversarial.png")
    phase("adversarial")

    _say("reference patches of the top neurons")
    patch_concepts = [c for c in ("animal.n.01", "bird.n.01", "artifact.n.01") if c in concepts]
    neurons = list(dict.fromkeys(n for c in patch_concepts for n in hint.top_neurons(c, 3).indices.tolist()))
    patches = top_activating_patches(spec.model, spec.layer, loader, neurons, k=6)
    owners = {n: [hierarchy.label(c) for c in patch_concepts if n in hint.top_neurons(c, 3).indices.tolist()]
              for n in neurons}
    plot_reference_patches(spec.denormalize(patches["patches"].flatten(0, 1)).view_as(patches["patches"]),
                           patches["values"], [f"#{n} ({', '.join(owners[n])})" for n in neurons],
                           out / "reference_patches.png")
    phase("reference patches")

    _say("figures")
    areas = _mask_areas(hint, test_samples, [c for c in ("mammal.n.01", "bird.n.01") if c in concepts],
                        [c for c in ("animal.n.01", "whole.n.02") if c in concepts])
    hint.plot_associations(n=8).figure.savefig(out / "associations.png", dpi=90, bbox_inches="tight")
    hint.hierarchy.plot(concepts).figure.savefig(out / "hierarchy.png", dpi=90, bbox_inches="tight")
    keep, masks, _ = concept_ground_truth(test_samples, hierarchy.leaves_under("animal.n.01"))
    keep, masks = keep[:5], torch.stack(masks[:5])
    images = torch.stack([test_samples[i]["image"] for i in keep])
    columns = {f"HINT {hierarchy.label(c)} (20 %)": hint.localize(images, c, 0.2) for c in
               ["whole.n.02", "animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"] if c in concepts}
    columns["Grad-CAM animal"] = gradcam_maps(spec.model, spec.gradcam_layer, images, hierarchy.leaves_under("animal.n.01"))
    columns = {k: normalize_maps(v.detach()) for k, v in columns.items()}
    plot_overlays(spec.denormalize(images), columns, masks, out / "overlays.png")
    phase("figures")

    _say("the explorer site: concept, neuron and image pages (gAP trees, SeVec, an AfI occluder for bird)")
    # gAP explains the predicted class: up to 16 test scenes the model recognizes come first, then others
    with torch.no_grad():
        predicted = torch.cat([spec.model(batch) for batch in
                               torch.stack([s["image"] for s in test_samples]).split(32)]).argmax(1).tolist()
    hits = [i for i, s in enumerate(test_samples) if predicted[i] in s["labels"].tolist()]
    shown = hits[:16] + sorted(set(range(len(test_samples))) - set(hits))[:24 - len(hits[:16])]
    explore_model(out / "site", spec, hint, [test_samples[i] for i in shown], train_samples[:128],
                  afi_concepts=[c for c in ("bird.n.01",) if c in concepts], afi_iterations=args.afi_iterations,
                  names=[f"test scene {i}" for i in shown],
                  notes=[f"The images: {len(hits)} of the {len(test_samples)} test scenes are recognized (the model's "
                         f"top class is one of their objects); up to 16 of them are shown first, then others."],
                  seed=args.seed, progress=False)
    phase("explorer")

    seconds = time.time() - started
    summary = {
        "model": spec.name, "layer": spec.layer, "seed": args.seed, "concepts": concepts, "concepts_left_out": dropped,
        "train_scenes": len(train), "test_scenes": len(test), "f1": {c: v["f1"] for c, v in held_out.items()},
        "held_out": held_out, "layer_f1": layer_f1, "wsol": table, "wsol_differences": differences,
        "wsol_per_concept": per_concept, "saliency_methods": {"table": saliency_table, "held_out": saliency["held_out"]},
        "randomization": randomization["steps"] if randomization else None,
        "adversarial": None if adversarial is None else {
            key: [v.tolist() for v in adversarial[key]] if isinstance(adversarial[key], tuple) else adversarial[key].tolist()
            for key in ("success", "target_prob", "concept_peak", "concept_mass")},
        "reference_patches": {"neurons": neurons, "values": patches["values"].tolist(),
                              "image_index": patches["image_index"].tolist()},
        "mask_area": areas, "seconds": seconds, "phases": phases,
        "top_neurons": {c: hint.top_neurons(c, 5).indices.tolist() for c in concepts},
        "multimodal_neurons": {str(k): v for k, v in list(hint.multimodal_neurons(n=8).items())[:10]},
    }
    sections = _sections(args, spec, hierarchy, train, test, held_out, table, at_20, differences, per_concept,
                         saliency_table, saliency["held_out"], randomization, adversarial, areas, layer_f1, seconds)
    index = write_report(out, "captum_hint demo: HINT on EfficientNet-Lite0", summary, sections)
    _say(f"report: {index} ({seconds / 60:.1f} min; phases {phases})")
    return 0


def _sections(args, spec, hierarchy, train, test, held_out, table, at_20, differences, per_concept, saliency_table,
              saliency_held_out, randomization, adversarial, areas, layer_f1, seconds) -> List[Dict]:
    from ..evaluation import METRIC_NAMES, bootstrap_mean

    note = (f"Every interval is a 95 % percentile bootstrap over test images (2000 resamples, seed {args.seed}); "
            "differences are paired bootstraps on the same images.")
    sections = [
        {"title": "Set-up", "text": (
            f"Model <b>{spec.name}</b> (ImageNet weights), layer <code>{spec.layer}</code>, {args.saliency} "
            f"saliency with the concept score as target, aggregation L2, t = 0.5. {len(train)} training scenes "
            "(one animal or vehicle photo blended into a tinted texture photo, with 0–2 distractor objects: "
            f"fruit, vegetables, flowers, tools, dishes, instruments, balls), {len(test)} test scenes (1–3 objects "
            f"from stamps unseen in training, 0–2 distractors, exact masks). {note} Run time {seconds / 60:.1f} min.")},
        {"title": "Browse the model: the explorer site",
         "text": "<a href='site/index.html'>site/index.html</a>: a page per concept (classifier scores with "
                 "intervals, top neurons by HINT, SeVec and AfI, localization examples), per neuron (Shapley values "
                 "over the hierarchy, reference patches, the images whose gAP trees pass through it) and per test "
                 "image (its gAP tree named by HINT, each concept's map), with a search box. It opens from disk."},
        {"title": "Concept classifiers on held-out images", "image": "hierarchy.png",
         "text": "Scored on the regions of the 20 % of training images held out from the classifiers. F1 and average "
                 "precision depend on the share of background regions among the negatives (more background rows, "
                 "more false positives for the same error rates); ROC-AUC and balanced accuracy do not.",
         "table": ([{"concept": hierarchy.label(c), "leaves": len(hierarchy.leaves_under(c)),
                     **{k: f"{v:.3f}" for k, v in scores.items()}} for c, scores in held_out.items()],
                   ["concept", "leaves", "f1", "roc_auc", "average_precision", "balanced_accuracy"])},
        {"title": "Neurons and concepts (Shapley values, Fig. 2a)", "image": "associations.png",
         "text": "Top neurons per concept; link width is the neuron's Shapley value for the concept classifier."},
        {"title": "What the top neurons respond to: reference patches", "image": "reference_patches.png",
         "text": "For the top 3 neurons of animal, bird and artifact: the training scenes where the neuron's peak "
                 "activation is highest, cropped to the layer's effective receptive field around the peak (value "
                 "above each crop)."},
        {"title": "Localization at several concept levels", "image": "overlays.png",
         "text": "Concept classifiers on the top 20 % neurons, applied at every position; Grad-CAM for comparison."},
        {"title": "Weakly supervised localization at 20 % of the neurons, concepts pooled (Tables 1–2)",
         "text": "MaxBoxAcc / MaxBoxAccV2 and PxAP follow wsolevaluation (Choe et al. 2020, thresholds at 0.01 "
                 "steps); the pointing game is Zhang et al.'s with TorchRay's 15 px tolerance (strict: no "
                 "tolerance); energy pointing keeps the top 30 % of the map's mass; HINT 'pointing' and mask IoU "
                 "are the HINT paper's Fig. 4c metrics at t = 0.5; 'mass on other objects' is selectivity: the "
                 "share of the map's mass on pasted objects not under the concept (lower is better). The centre "
                 "Gaussian and full-image rows are the trivial baselines. " + note,
         "table": (_shown(at_20, TABLE_METRICS), ["method", "neurons", "images", *[METRIC_NAMES[m] for m in TABLE_METRICS]])},
        {"title": "Shapley against every other method (paired, 20 %)",
         "text": "Positive: Shapley-chosen neurons do better (for mass on other objects, negative is better).",
         "table": (differences, ["comparison", *[METRIC_NAMES[m] for m in ("maxboxacc_v2", "pxap", "pointing_15px",
                                                                          "hint_iou", "off_target_mass")]])},
        {"title": "Neuron rankings at 10–80 % (Fig. 4c)", "image": "rankings_maxboxacc.png",
         "text": "Shaded: 95 % intervals. Grey lines: Grad-CAM and the trivial maps."},
        {"title": "PxAP by ranking and fraction", "image": "rankings_pxap.png",
         "table": (_shown(table, ["maxboxacc_v2", "pxap", "pointing_15px", "hint_iou"]),
                   ["method", "neurons", "images", *[METRIC_NAMES[m] for m in ("maxboxacc_v2", "pxap", "pointing_15px",
                                                                               "hint_iou")]])},
        {"title": "HINT with each saliency method (Fig. 4b)", "image": "saliency_methods.png",
         "text": "Each method refits HINT on the first 128 training scenes (animal, bird, artifact; SmoothGrad 4 "
                 "samples, integrated gradients 8 steps) and localizes with its top 20 % Shapley neurons.",
         "table": ([{**r, "held-out ROC-AUC (mean over concepts)": "{:.3f}".format(
             sum(v["roc_auc"] for v in saliency_held_out[r["method"].replace("HINT ", "")].values())
             / len(saliency_held_out[r["method"].replace("HINT ", "")]))} for r in _shown(saliency_table, [
                 "maxboxacc_v2", "pxap", "pointing_15px", "hint_iou"])],
                   ["method", "images", *[METRIC_NAMES[m] for m in ("maxboxacc_v2", "pxap", "pointing_15px", "hint_iou")],
                    "held-out ROC-AUC (mean over concepts)"])},
    ]
    if randomization is not None:
        sections.append({
            "title": "Saliency sanity by cascading randomization (Fig. 5a)", "image": "randomization.png",
            "text": "The layers above the hidden layer are randomized top-down in a copy of the model and HINT is "
                    "refitted with guided backprop; the hidden layer's features do not change, so any change in the "
                    "concept's map comes from the saliency that picked the training regions.",
            "table": ([{"randomized": s["randomized"], "Spearman with intact maps": "{:.3f} [{:.3f}, {:.3f}]".format(*s["spearman"]),
                        "PxAP": "{:.3f} [{:.3f}, {:.3f}]".format(*s["pxap"]),
                        "pointing (15 px)": "{:.3f} [{:.3f}, {:.3f}]".format(*s["pointing_15px"]), "F1": f"{s['f1']:.3f}"}
                       for s in randomization["steps"]],
                      ["randomized", "Spearman with intact maps", "PxAP", "pointing (15 px)", "F1"])})
    if adversarial is not None:
        clean, attacked = adversarial["target_prob"]
        peak_clean, peak_attacked = adversarial["concept_peak"]
        sections.append({
            "title": "Explaining an adversarial attack (Fig. 5b)", "image": "adversarial.png",
            "text": "Captum's PGD (L∞ radius 8/255, 10 steps) drives non-bird scenes to a bird class; the bird "
                    "classifier (20 % Shapley neurons) is applied to the clean and the attacked features. Top rows "
                    "of the figure: clean and attacked images' bird maps.",
            "table": ([{"images": len(clean), "attack success": "{:.3f} [{:.3f}, {:.3f}]".format(
                *bootstrap_mean(adversarial["success"].float().numpy(), args.seed)),
                "target probability clean → attacked": "{:.3f} → {:.3f}".format(clean.mean(), attacked.mean()),
                "bird map peak clean → attacked": "{:.3f} → {:.3f}".format(peak_clean.mean(), peak_attacked.mean()),
                "peak increase (paired)": "{:+.3f} [{:+.3f}, {:+.3f}]".format(
                    *bootstrap_mean((peak_attacked - peak_clean).numpy(), args.seed))}],
                ["images", "attack success", "target probability clean → attacked", "bird map peak clean → attacked",
                 "peak increase (paired)"])})
    sections += [
        {"title": "Mask area: higher- vs lower-level concept classifiers on the same objects",
         "table": (areas, list(areas[0]) if areas else [])},
        {"title": "F1 across layers (Fig. 2b)", "image": "layer_f1.png",
         "table": ([{"layer": layer, **values} for layer, values in layer_f1.items()],
                   ["layer", *next(iter(layer_f1.values()))])},
        {"title": "Per concept at 20 %",
         "table": (_shown(per_concept, PER_CONCEPT_METRICS), ["concept", "method", "images",
                                                     *[METRIC_NAMES[m] for m in PER_CONCEPT_METRICS]])},
    ]
    return sections
