"""Do HINT's concept maps say whether the concept is there? (issue 22, HINT's selectivity)

The paper says its concept classifiers "only locate the objects belonging
to the target concepts". Here a map is read as evidence of presence: its
peak (and mean) on each image, against whether the image holds an object of
the concept, scored by the image-level ROC-AUC
(:func:`captum_hint.evaluation.presence_auc`, 95 % bootstrap over images),
beside the model's own concept probability (the softmax mass of the
concept's classes) and the map's values on images without the concept.

HINT as ``captum-hint demo`` fits it (EfficientNet-Lite0 at ``_blocks.10``,
384 training scenes, gradient saliency, concept-score targets, seed 0);
maps at the layer's 14 x 14 positions (the peak of the upsampled map is at
most that), with the top 20 % Shapley neurons and with all neurons. Data:

* *demo + concept-free*: the demo's 96 test scenes (1-3 animal or vehicle
  stamps, 0-2 distractors) and 48 scenes of distractor stamps only (fruit,
  vegetables, flowers, trees, tools, instruments, balls: no animal, no
  vehicle), seeds 1 and 7;
* *recognized*: 96 single-object test scenes of ``RECOGNIZED_SCENES`` (one
  large animal or vehicle on the mean colour), seed 5.

Also printed: where HINT's region rule puts the animal's responsible
positions in the training scenes that hold an animal and another object
(on the animal, on the other object, on texture, against the share of
cells each covers): do other objects become positives?

``--concept-score logit`` fits HINT on the concept's log-sum-exp logit
instead of its log-probability, whose softmax normalizer makes every
other object's classes part of the gradient. ``--train-distractors MIN
MAX`` changes how many other objects the training scenes hold (the
demo's: 0 2): are other objects' positions, as negatives, what makes a map
selective? Printed with each setting: the maps'
localization on the demo's test scenes (PxAP and MaxBoxAccV2, concepts
pooled, 20 % Shapley neurons), so that selectivity is not bought with it.
``--regions saliency_on_objects`` fits HINT with the salient positions
that lie on an object of the concept as its regions and every position on
no object of the image's concepts (other objects included) as background:
is the region rule what makes the maps peak on other objects?
``--layer`` fits HINT at another layer. Beside HINT, a *layer probe*
(:class:`LayerProbe`): a logistic regression on all the layer's channels
told every training cell's truth by the masks, the most selective linear
map the layer allows.

    .venv/bin/python benchmarks/hint_selectivity.py [--train-distractors 0 2] [--regions saliency]
        [--layer _blocks.10] [--out hint-selectivity.json]
"""

import argparse
import json
import time

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from captum_hint.app.demo import DEMO_CONCEPTS, DEMO_SCENES
from captum_hint.concepts import ConceptHierarchy
from captum_hint.concepts.scores import ConceptScore, concept_scores
from captum_hint.core.allocator import reuse_freed_memory
from captum_hint.datasets import (DISTRACTOR_CATEGORIES, RECOGNIZED_SCENES, StampScenes, collate_samples,
                                  concept_cells, load_model)
from captum_hint.evaluation import (bootstrap_mean, evaluate_localization, localization_table, presence_auc,
                                    recognition_rates, recognition_summary)
from captum_hint.attr import LayerGradient
from captum_hint.hint import HINT
from captum_hint.hint.regions import responsible_regions

CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01"]
FRACTIONS = {"HINT 20 % Shapley": 0.2, "HINT all neurons": 1.0}
#: the distractor folders but the dishes (a glass, nearly transparent, can leave a scene without a visible object)
CONCEPT_FREE = tuple(c for c in DISTRACTOR_CATEGORIES if c != "household") + ("household/tools",)


def cell_kinds(samples, leaves, size, num_classes):
    """(cells on an object of the concept, cells on another object and none of the concept's): N x h x w each.

    :func:`captum_hint.datasets.concept_cells` with two "concepts": the concept's leaves and every other class.
    """
    inside = torch.zeros(1, num_classes, dtype=torch.bool)
    inside[0, leaves] = True
    cells = concept_cells({"masks": [s["masks"] for s in samples], "labels": [s["labels"] for s in samples]},
                          torch.cat([inside, ~inside]), size)
    return cells[:, 0], cells[:, 1] & ~cells[:, 0]


class Scored:
    """One data set's pass through the model: the layer's features, the logits and each image's object cells."""

    def __init__(self, hint, model, samples):
        self.hint, self.samples, self.images = hint, samples, torch.stack([s["image"] for s in samples])
        chunks = range(0, len(self.images), 32)
        self.features = torch.cat([hint.layer_features(self.images[i : i + 32]) for i in chunks])
        with torch.no_grad():
            self.logits = torch.cat([model(self.images[i : i + 32]) for i in chunks])
        self.size = tuple(self.features.shape[-2:])
        # any object: the cells of the concepts "no class" and "every class" together
        self.objects = torch.stack(cell_kinds(samples, [], self.size, hint.hierarchy.num_classes)).any(0).flatten(1)

    def scores(self, concept):
        """Per image: each map's peak and mean, and the model's concept probability; whether each peak is on
        an object."""
        scores, peaks_on_objects = {}, {}
        for name, fraction in FRACTIONS.items():
            maps = self.hint.localize(self.images, concept, fraction, size=self.size, features=self.features)
            maps = maps.flatten(1)
            scores[f"{name}: peak"] = maps.amax(1)
            scores[f"{name}: mean"] = maps.mean(1)
            peaks_on_objects[name] = self.objects.gather(1, maps.argmax(1, keepdim=True))[:, 0]
        membership = torch.zeros(1, self.logits.shape[1], dtype=torch.bool)
        membership[0, self.hint.hierarchy.leaves_under(concept)] = True
        scores["model: p(concept)"] = concept_scores(self.logits, membership)[:, 0].exp()
        return scores, peaks_on_objects


class LayerProbe:
    """What the layer allows: a logistic regression told every cell's truth by the masks.

    Fitted on all of the layer's channels (standardized) at the training
    scenes' cells, the concept's object cells against the rest, with other
    objects' cells weighing as much in total as texture cells (and
    positives as much as both): the most selective linear map the layer
    gives these scenes, with nothing left to the region rule.
    """

    def __init__(self, train, leaves):
        self.leaves = leaves
        features, concept, other = self.cells(train)
        self.scaler = StandardScaler().fit(features)
        weights = torch.where(concept, 0.5 / concept.sum(), torch.where(other, 0.25 / other.sum(),
                                                                        0.25 / (~concept & ~other).sum()))
        self.model = LogisticRegression(max_iter=2000).fit(self.scaler.transform(features), concept.numpy(),
                                                           sample_weight=(weights * len(weights)).numpy())

    def cells(self, scored):
        """(every cell's channels, on the concept's object, on another object), cells of all images in a row."""
        concept, other = cell_kinds(scored.samples, self.leaves, scored.size, scored.hint.hierarchy.num_classes)
        features = scored.features.permute(0, 2, 3, 1).reshape(-1, scored.features.shape[1]).float().numpy()
        return features, concept.flatten(), other.flatten()

    def maps(self, scored):
        """(N x cells probabilities, the cells' AUC of the concept's object against other objects and texture)."""
        features, concept, other = self.cells(scored)
        maps = torch.from_numpy(self.model.predict_proba(self.scaler.transform(features))[:, 1])
        aucs = {}
        for against, where in (("other objects", other), ("texture", ~concept & ~other)):
            chosen = concept | where
            labels = concept[chosen].numpy()
            aucs[against] = roc_auc_score(labels, maps[chosen].numpy()) if 0 < labels.sum() < len(labels) else None
        return maps.view(len(scored.images), -1).float(), aucs


def responsible_cells(hint, model, samples, concept):
    """Where the saliency puts the concept's responsible positions in training scenes with other objects.

    HINT's own region rule (its saliency method's gradient of the concept
    score, l2 over channels, the 99th-percentile scaling, threshold 0.5) on
    the training scenes that hold the concept and another object; each
    cell of the layer's grid is the concept's object, another object (any
    pixel of one, and none of the concept's) or texture.
    """
    leaves = torch.tensor(hint.hierarchy.leaves_under(concept))
    chosen = [s for s in samples if torch.isin(s["labels"], leaves).any() and not torch.isin(s["labels"], leaves).all()]
    images = torch.stack([s["image"] for s in chosen])
    method = LayerGradient(ConceptScore(model, [leaves.tolist()], score=hint.concept_score), hint.layer_module)
    saliency = torch.cat([method.attribute(images[i : i + 32], target=0).detach() for i in range(0, len(images), 32)])
    responsible = responsible_regions(saliency, hint.threshold, hint.aggregation, hint.percentile).responsible[:, 0]
    size = tuple(responsible.shape[-2:])

    on_concept, on_other = cell_kinds(chosen, leaves, size, hint.hierarchy.num_classes)
    kinds = {"the concept's object": on_concept, "another object": on_other, "texture": ~on_concept & ~on_other}
    total = responsible.flatten(1).sum(1).clamp_min(1)
    return len(chosen), {kind: (bootstrap_mean(((responsible & where).flatten(1).sum(1) / total).numpy()),
                                float(where.float().mean())) for kind, where in kinds.items()}


def main(out, train_distractors, concept_score, regions, layer):
    reuse_freed_memory()
    started = time.time()
    spec = load_model("efficientnet-lite0")
    layer = layer or spec.layer
    hierarchy = ConceptHierarchy.imagenet()
    train = list(StampScenes("train", 384, objects=(1, 1), seed=0,
                             **{**DEMO_SCENES, "n_distractors": tuple(train_distractors)}))
    hint = HINT(spec.model, layer, hierarchy, DEMO_CONCEPTS, saliency="gradient", concept_score=concept_score,
                regions=regions, seed=0, progress=False)
    hint.fit(DataLoader(train, batch_size=16, collate_fn=collate_samples))
    data = {
        "demo + concept-free": list(StampScenes("test", 96, objects=(1, 3), seed=1, **DEMO_SCENES))
        + list(StampScenes("test", 48, objects=(1, 3), seed=7, categories=CONCEPT_FREE, scale=DEMO_SCENES["scale"])),
        "recognized": list(StampScenes("test", 96, objects=(1, 1), seed=5, **RECOGNIZED_SCENES)),
    }
    report = {"data": {name: len(samples) for name, samples in data.items()}, "rows": [], "recognition": {},
              "train_distractors": list(train_distractors), "concept_score": concept_score, "regions": regions,
              "layer": layer}
    print(f"HINT at {layer} ({concept_score} score, {regions} regions) fitted in {time.time() - started:.0f} s on "
          "training scenes with "
          f"{train_distractors[0]}-{train_distractors[1]} other objects; held-out F1 " + ", ".join(
              f"{hierarchy.label(c).split(',')[0]} {v['f1']:.2f}" for c, v in hint.held_out_scores().items()
              if c in CONCEPTS))
    n_scenes, shares = responsible_cells(hint, spec.model, train, "animal.n.01")
    report["responsible_cells"] = {"scenes": n_scenes, **shares}
    print(f"where the saliency rule puts the animal's responsible positions in the {n_scenes} training scenes with "
          "an animal and another object:")
    for kind, ((mean, low, high), area) in shares.items():
        print(f"  on {kind:22s} {mean:.3f} [{low:.3f}, {high:.3f}] of them (its share of the cells: {area:.3f})")
    demo_test = data["demo + concept-free"][:96]
    localization = localization_table(evaluate_localization(hint, demo_test, CONCEPTS, (0.2,), {"shapley": "shapley"},
                                                            baselines=False))
    report["localization"] = localization
    for row in localization:
        print(f"localization on the demo's 96 test scenes, {row['method']}: PxAP {row['pxap']:.3f} "
              f"[{row['pxap_low']:.3f}, {row['pxap_high']:.3f}], MaxBoxAccV2 {row['maxboxacc_v2']:.3f} "
              f"[{row['maxboxacc_v2_low']:.3f}, {row['maxboxacc_v2_high']:.3f}]")
    print("ROC-AUC of present vs absent [95 % bootstrap over images], mean score on images with / without the "
          "concept")
    training_cells = Scored(hint, spec.model, train)
    probes = {concept: LayerProbe(training_cells, torch.tensor(hierarchy.leaves_under(concept)))
              for concept in CONCEPTS}
    for name, samples in data.items():
        scored = Scored(hint, spec.model, samples)
        report["recognition"][name] = recognition_rates(spec.model, samples, hierarchy, CONCEPTS,
                                                        top1=scored.logits.argmax(1))
        print(f"\n{name} ({len(samples)} scenes); recognition rate: {recognition_summary(report['recognition'][name])}")
        for concept in CONCEPTS:
            leaves = torch.tensor(hierarchy.leaves_under(concept))
            present = torch.tensor([bool(torch.isin(s["labels"], leaves).any()) for s in samples])
            print(f"  {hierarchy.label(concept).split(',')[0]}: {int(present.sum())} with, {int((~present).sum())} "
                  "without")
            scores, peaks_on_objects = scored.scores(concept)
            probe_maps, probe_aucs = probes[concept].maps(scored)
            scores["layer probe (masks told): peak"] = probe_maps.amax(1)
            peaks_on_objects["layer probe (masks told)"] = scored.objects.gather(
                1, probe_maps.argmax(1, keepdim=True))[:, 0]
            report["rows"].append({"data": name, "concept": concept, "score": "layer probe: cell AUC", **probe_aucs})
            print("    layer probe (masks told), cells' AUC of the concept's object against " + ", ".join(
                f"{against} {auc:.3f}" for against, auc in probe_aucs.items() if auc is not None))
            for map_name, on_object in peaks_on_objects.items():
                share = bootstrap_mean(on_object[~present].float().numpy())
                chance = float(scored.objects[~present].float().mean())
                report["rows"].append({"data": name, "concept": concept, "score": f"{map_name}: peak on an object",
                                       "without": share, "chance": chance})
                print(f"    {map_name}: peak on another object in images without it {share[0]:.2f} "
                      f"[{share[1]:.2f}, {share[2]:.2f}] (cells on objects: {chance:.2f})")
            for score, values in scores.items():
                auc, low, high = presence_auc(values, present)
                row = {"data": name, "concept": concept, "score": score, "auc": auc, "low": low, "high": high,
                       "with": float(values[present].mean()), "without": float(values[~present].mean()),
                       "n_with": int(present.sum()), "n_without": int((~present).sum())}
                report["rows"].append(row)
                print(f"    {score:28s} AUC {auc:.2f} [{low:.2f}, {high:.2f}]   with {row['with']:.3f}   "
                      f"without {row['without']:.3f}")
    print(f"\n{time.time() - started:.0f} s")
    with open(out, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="hint-selectivity.json")
    parser.add_argument("--train-distractors", nargs=2, type=int, default=[0, 2], metavar=("MIN", "MAX"))
    parser.add_argument("--concept-score", default="log_probability", choices=["log_probability", "logit"],
                        help="HINT's concept score (the demo's: log_probability)")
    parser.add_argument("--regions", default="saliency", choices=["saliency", "saliency_on_objects"],
                        help="HINT's region rule (the demo's: saliency)")
    parser.add_argument("--layer", default=None, help="HINT's layer (the demo's: _blocks.10)")
    args = parser.parse_args()
    main(args.out, args.train_distractors, args.concept_score, args.regions, args.layer)
