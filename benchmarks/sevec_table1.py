"""SeVec's Table 1 as the paper runs it (issue 22, SeVec): class vectors, the class's probability, pooled features

The paper (Gu & Tresp, "Single Neuron vs. Semantic Vector") fits one
semantic vector per ImageNet *class* at VGG16's fc1 and, on validation
images, reports the change of the ground-truth class's probability when the
representation is multiplied by ``1[v_c > 0.5]`` (+0.19), by a random
permutation of that mask (about 0), or when the class's most frequent unit
(or a random unit) is raised to 1.5 x the layer's largest activation
(about 0). Here, on the recognized testbed's settings (one large stamp on
the mean colour, ``RECOGNIZED_SCENES``):

* **class target, pooled** (the paper's protocol): vectors of the classes
  with at least ``--min-scenes`` training scenes (seed 0), at the head's
  ReLU6 averaged over positions (the closest analogue of fc1 here: the
  input of ``_avg_pooling``); test scenes of the same classes (other
  scenes of the training photos, seed 1, as the paper's validation images
  are other images of its classes), kept where the model's top-1 is the
  class;
* **concept target, pooled**: disjoint concepts (carnivore, ungulate,
  bird, wheeled vehicle, ...), the concept's probability, held-out photos'
  scenes the model puts under the concept;
* **concept target, spatial** (the old benchmark's reading, every 7 x 7
  position a representation) on the same images.

95 % bootstrap intervals over images; the recognition rate of each test set.

    .venv/bin/python benchmarks/sevec_table1.py [--train-scenes 768] [--out sevec-table1.json]
"""

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from captum_hint.concepts import ConceptHierarchy
from captum_hint.datasets import RECOGNIZED_SCENES, StampScenes, collate_samples, load_model
from captum_hint.evaluation import top1_classes
from captum_hint.evaluation.statistics import bootstrap_mean
from captum_hint.sevec import SemanticVectors, neuron_vs_vector_test

CONCEPTS = ["carnivore.n.01", "ungulate.n.01", "primate.n.02", "rodent.n.01", "bird.n.01", "fish.n.01",
            "insect.n.01", "reptile.n.01", "wheeled_vehicle.n.01", "craft.n.02"]


def table1(sevec, images, targets, seed):
    changes = neuron_vs_vector_test(sevec, images, targets, seed=seed)
    return {name: bootstrap_mean(values.numpy()) for name, values in changes.items()}


def main(n_train, min_scenes, out):
    torch.set_num_threads(2)
    started = time.time()
    spec = load_model("efficientnet-lite0")
    model, hierarchy = spec.model, ConceptHierarchy.imagenet()
    train = list(StampScenes("train", n_train, objects=(1, 1), seed=0, **RECOGNIZED_SCENES))
    labels = torch.tensor([s["label"] for s in train])
    loader = DataLoader(train, batch_size=32, collate_fn=collate_samples)
    report = {"train_scenes": n_train, "rows": []}

    # class target: the paper's protocol
    counts = torch.bincount(labels, minlength=1000)
    classes = (counts >= min_scenes).nonzero().flatten().tolist()
    same_photos = list(StampScenes("train", n_train // 2, objects=(1, 1), seed=1, **RECOGNIZED_SCENES))
    images = torch.stack([s["image"] for s in same_photos])
    truth = torch.tensor([s["label"] for s in same_photos])
    predicted = top1_classes(model, same_photos)
    of_classes = torch.isin(truth, torch.tensor(classes))
    chosen = of_classes & (predicted == truth)
    recognition = bootstrap_mean((predicted == truth)[of_classes].float().numpy())
    print(f"class target: {len(classes)} classes with >= {min_scenes} of {n_train} training scenes; test scenes of "
          f"them {int(of_classes.sum())}, top-1 correct {recognition[0]:.2f} [{recognition[1]:.2f}, "
          f"{recognition[2]:.2f}] -> {int(chosen.sum())} used")
    sevec = SemanticVectors(model, "_avg_pooling", classes, None, "pooled", use_layer_input=True,
                            progress=False).fit(loader)
    settings = {"class target, pooled (the paper's)": (sevec, images[chosen], truth[chosen].tolist(), recognition)}

    # concept targets on held-out photos
    held_out = list(StampScenes("test", n_train // 2, objects=(1, 1), seed=2, **RECOGNIZED_SCENES))
    images = torch.stack([s["image"] for s in held_out])
    truth = torch.tensor([s["label"] for s in held_out])
    predicted = top1_classes(model, held_out)
    concepts = [c for c in CONCEPTS if torch.isin(labels, torch.tensor(hierarchy.leaves_under(c))).sum() >= min_scenes]
    owner = torch.full((len(held_out),), -1)
    correct = torch.zeros(len(held_out), dtype=torch.bool)
    for k, concept in enumerate(concepts):
        leaves = torch.tensor(hierarchy.leaves_under(concept))
        owner[torch.isin(truth, leaves)] = k
        correct |= torch.isin(truth, leaves) & torch.isin(predicted, leaves)
    recognition = bootstrap_mean(correct[owner >= 0].float().numpy())
    print(f"concept target: {len(concepts)} disjoint concepts; held-out photos' scenes under them "
          f"{int((owner >= 0).sum())}, top-1 under the concept {recognition[0]:.2f} [{recognition[1]:.2f}, "
          f"{recognition[2]:.2f}] -> {int(correct.sum())} used")
    targets = [concepts[k] for k in owner[correct].tolist()]
    for representation in ("pooled", "spatial"):
        fitted = SemanticVectors(model, "_avg_pooling", concepts, hierarchy, representation, use_layer_input=True,
                                 progress=False).fit(loader)
        settings[f"concept target, {representation}"] = (fitted, images[correct], targets, recognition)

    print("\nchange of the target's probability, mean [95 % bootstrap over images] (paper: semantic vector +0.19, "
          "the others about 0)")
    for name, (fitted, chosen_images, chosen_targets, rate) in settings.items():
        rows = table1(fitted, chosen_images, chosen_targets, seed=0)
        report["rows"].append({"setting": name, "n": len(chosen_images), "recognition": rate, **rows})
        print(f"  {name} (n = {len(chosen_images)})")
        for modification, (mean, low, high) in rows.items():
            print(f"    {modification:16s} {mean:+.4f} [{low:+.4f}, {high:+.4f}]")
    print(f"\n{time.time() - started:.0f} s")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-scenes", type=int, default=768)
    parser.add_argument("--min-scenes", type=int, default=6)
    parser.add_argument("--out", default="sevec-table1.json")
    args = parser.parse_args()
    main(args.train_scenes, args.min_scenes, args.out)
