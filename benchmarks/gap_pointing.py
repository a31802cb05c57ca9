"""Does gAP's chain of first children follow the evidence? A pointing game along the chain (issue 22, gAP)

gAP decomposes a decision onto the top stage's channels, takes the first
child (highest contribution ``alpha``, Eq. 4) at its peak (Eq. 5), and
decomposes that feature onto the stage below, down to the first stage.
A user reads that chain as "where the evidence is". Here, per level of the
chain (EfficientNet-Lite0's stage ends ``_blocks.0, 2, 4, 10, _bn1``; top
``k = 3``, NMS IoU 0.9, map threshold 0.5, the library's defaults):

* **on the object**: the first child's peak (in input pixels) lies on the
  target object's mask, within 15 px (the pointing game's tolerance); on
  two-object scenes also **on the other object**; chance: the share of
  the pixels within 15 px of the object;
* **on the border**: the peak is in the outer ring of the level's map
  (against the ring's share of the cells: where padding would pull it);
  and in the top-left cell;
* **negative response**: the first child's feature ``F`` at its peak is
  negative (the peak is then positive evidence only because the gradient is
  negative too: the paper's reading "a strong response is present" fails);
* **children's share**: the first child's share of its parent's positive
  evidence and the three kept children's together.

Two evidence rules side by side: the paper's signed maps ``A = G * F``
and *positive responses* ``A = G * max(F, 0)`` (a channel is evidence only
where it responds: what the maps mean at rectified stage outputs).

Data: the recognized testbed (``RECOGNIZED_SCENES``): ``--images`` single-
object test scenes (seed 5) and as many two-object scenes (an object of
the testbed's categories beside another, seed 6); the target is the first
object's class (the dog, not the bicycle), as ``captum-hint decompose
--target`` gives it. 95 % bootstrap intervals over images; recognition
rates printed beside.

    .venv/bin/python benchmarks/gap_pointing.py [--images 64] [--out gap-pointing.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from captum_hint.attr.activation_propagation import LayerActivationPropagation, propagate_between
from captum_hint.concepts import ConceptHierarchy
from captum_hint.core.model_state import evaluation_mode
from captum_hint.datasets import RECOGNIZED_SCENES, StampScenes, load_model
from captum_hint.evaluation import bootstrap_mean, recognition_rates, recognition_summary
from captum_hint.gap import HierarchicalDecomposition
from captum_hint.gap.decomposition import select_children

RULES = ("signed", "positive responses")
TOLERANCE = 15
CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"]


def evidence(maps, features, rule):
    """The activation maps under an evidence rule (``features`` broadcast over the decisions)."""
    return maps if rule == "signed" else maps * (features > 0)


def chain(decomposition, images, targets, rule, top_k=3):
    """Per level, top first: the first child's (channel, peak row/col, map size, F at the peak, first share,
    kept share); one forward/backward per level for the whole batch."""
    model, modules = decomposition.model, dict(decomposition.model.named_modules())
    layers = decomposition.layers
    top = LayerActivationPropagation(model, modules[layers[-1]]).propagate(images, target=targets)
    maps, features = evidence(top.maps, top.features, rule), top.features
    levels, rows = [], torch.arange(len(images))
    for lower in range(len(layers) - 1, -1, -1):
        picked = select_children(maps, top_k, decomposition.nms_iou, decomposition.map_threshold)
        first = picked.chosen.float().argmax(1)  # the first kept candidate (there is one when alpha_1 > 0)
        channel, peak = picked.channels[rows, first], picked.peaks[rows, first]
        value = features[rows, channel, peak[:, 0], peak[:, 1]]
        levels.append({"layer": layers[lower], "channel": channel, "peak": peak, "size": maps.shape[-2:],
                       "response": value, "has_child": picked.chosen.any(1),
                       "first_share": picked.shares[rows, first],
                       "kept_share": (picked.shares * picked.chosen).sum(1)})
        if lower == 0:
            return levels
        selectors = torch.stack([channel, peak[:, 0], peak[:, 1]], 1)[:, None]
        gradients, features, _ = propagate_between(model, images, modules[layers[lower - 1]], modules[layers[lower]],
                                                   selectors)
        maps = evidence(gradients[:, 0] * features, features, rule)


def near(masks, tolerance):
    """N x H x W masks grown by ``tolerance`` pixels (the pointing game's slack)."""
    return torch.nn.functional.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, 1, tolerance)[:, 0] > 0


def score(levels, target_masks, other_masks, image_size):
    """Per level: per-image hits (target, other object, border, top-left corner, negative response), shares."""
    table = []
    grown = {"on the object": near(target_masks, TOLERANCE), "on the other object": near(other_masks, TOLERANCE)}
    for level in levels:
        height, width = level["size"]
        pixel = ((level["peak"].float() + 0.5) * torch.tensor([image_size / height, image_size / width]) - 0.5)
        pixel = pixel.round().long().clamp(0, image_size - 1)
        rows = torch.arange(len(pixel))
        on_target = grown["on the object"][rows, pixel[:, 0], pixel[:, 1]]
        on_other = grown["on the other object"][rows, pixel[:, 0], pixel[:, 1]] & ~on_target
        row, col = level["peak"][:, 0], level["peak"][:, 1]
        border = (row == 0) | (col == 0) | (row == height - 1) | (col == width - 1)
        ring = 1 - (height - 2) * (width - 2) / (height * width)
        valid = level["has_child"]
        chance = {name: float(masks[valid].float().mean()) for name, masks in grown.items()}
        table.append({"layer": level["layer"], "n": int(valid.sum()), "ring_share": ring, "chance": chance,
                      **{name: bootstrap_mean(values[valid].float().numpy()) for name, values in (
                          ("on the object", on_target), ("on the other object", on_other), ("on the border", border),
                          ("top-left cell", (row == 0) & (col == 0)), ("negative response", level["response"] < 0),
                          ("first child's share", level["first_share"]),
                          ("kept children's share", level["kept_share"]))}})
    return table


def main(n_images, out):
    torch.set_num_threads(2)
    started = time.time()
    spec = load_model("efficientnet-lite0")
    hierarchy = ConceptHierarchy.imagenet()
    decomposition = HierarchicalDecomposition(spec.model)
    data = {"single object": list(StampScenes("test", n_images, objects=(1, 1), seed=5, **RECOGNIZED_SCENES)),
            "two objects": list(StampScenes("test", n_images, objects=(2, 2), seed=6, **RECOGNIZED_SCENES))}
    report = {"images": n_images, "layers": decomposition.layers, "tolerance_px": TOLERANCE, "data": {}}
    for name, samples in data.items():
        images = torch.stack([s["image"] for s in samples])
        targets = [int(s["labels"][0]) for s in samples]
        target_masks = torch.stack([s["masks"][0] for s in samples])
        other_masks = torch.stack([s["masks"][1:].any(0) for s in samples])
        recognition = recognition_rates(spec.model, samples, hierarchy, CONCEPTS)
        report["data"][name] = {"recognition": recognition}
        print(f"\n{name} ({len(samples)} scenes, target: the first object's class); recognition rate: "
              f"{recognition_summary(recognition)}")
        for rule in RULES:
            with evaluation_mode(spec.model, "gap_pointing"), torch.enable_grad():
                parts = [chain(decomposition, images[i : i + 16], targets[i : i + 16], rule)
                         for i in range(0, len(images), 16)]
            levels = [{key: torch.cat([part[depth][key] for part in parts]) if key not in ("layer", "size")
                       else parts[0][depth][key] for key in parts[0][depth]} for depth in range(len(parts[0]))]
            table = score(levels, target_masks, other_masks, images.shape[-1])
            report["data"][name][rule] = table
            print(f"  {rule} evidence (A = G * {'F' if rule == 'signed' else 'max(F, 0)'}); "
                  "per level, the first child's peak [95 % bootstrap over images]:")
            for row in table:
                cells = [f"{key} {row[key][0]:.2f} [{row[key][1]:.2f}, {row[key][2]:.2f}]" for key in row
                         if isinstance(row[key], tuple) and (name == "two objects" or key != "on the other object")]
                print(f"    {row['layer']:10s} n={row['n']:3d}  " + ", ".join(cells) +
                      f"  (chance: the ring {row['ring_share']:.2f} of the cells, the object "
                      f"{row['chance']['on the object']:.2f} of the pixels, the other object "
                      f"{row['chance']['on the other object']:.2f})")
    print(f"\n{time.time() - started:.0f} s")
    with open(out, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="scenes of each kind (default 64)")
    parser.add_argument("--out", default="gap-pointing.json")
    args = parser.parse_args()
    main(args.images, args.out)
