"""The explorer site at scale: a 1280-neuron layer and 1000 images, size on disk, time and peak memory.

    python benchmarks/explorer_size.py                      # 1280 neurons, 1000 stamp scenes
    python benchmarks/explorer_size.py --neurons 256 --images 100

The model is a small CNN whose HINT layer has ``--neurons`` channels at 14 x 14
(random weights: the sizes and times, not the meanings, are the point), over
ImageNet's 1000 classes and the demo's concepts. HINT is fitted on 128
single-object stamp scenes; the site gets ``--images`` multi-object test
scenes (real photos, so the JPEGs are as large as the demo's), their gAP trees
(top-2, output down to HINT's layer) and an AfI-like importance for one
concept (random, as only its size matters). Prints the bytes per kind of
file, the number of neurons with reference patches, wall time and peak RSS.
"""

import argparse
import os
import resource
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from torch import nn
from torch.utils.data import DataLoader

from captum_hint import HINT, ConceptHierarchy
from captum_hint.app.demo import DEMO_CONCEPTS, DEMO_SCENES
from captum_hint.app.explore import gap_layers_from, write_site
from captum_hint.datasets import StampScenes, collate_samples
from captum_hint.gap import HierarchicalDecomposition


def model_with_width(width: int, seed: int = 0) -> nn.Module:
    """224 px -> 56 -> 28 -> 14 x 14 x ``width`` (the HINT layer ``features.5``) -> 7 x 7 x 256 -> 1000 classes."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.features = nn.Sequential(nn.Conv2d(3, 32, 7, stride=4, padding=3), nn.ReLU(),
                                   nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(64, width, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(width, 256, 3, stride=2, padding=1), nn.ReLU())
    model.pool, model.flat, model.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 1000)
    torch.random.set_rng_state(generator_state)  # leave the global generator as it was
    return model.eval()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_bytes(root: Path) -> dict:
    sizes = {}
    for folder, _, files in os.walk(root):
        key = os.path.relpath(folder, root)
        sizes[key] = (len(files), sum(os.path.getsize(os.path.join(folder, f)) for f in files))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=1280)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, hierarchy = model_with_width(args.neurons, args.seed), ConceptHierarchy.imagenet()
    train = list(StampScenes("train", 128, objects=(1, 1), seed=args.seed, **DEMO_SCENES))
    concepts = [c for c in DEMO_CONCEPTS if c != "invertebrate.n.01"]  # the stamps hold few invertebrates
    started = time.time()
    hint = HINT(model, "features.5", hierarchy, concepts, saliency="gradient", seed=args.seed,
                shapley_kwargs={"n_permutations": 4}, progress=False)
    hint.fit(DataLoader(train, batch_size=32, collate_fn=collate_samples))
    fitted, peaks = time.time(), {"HINT fit": peak_mb()}
    test = StampScenes("test", args.images, objects=(1, 3), seed=args.seed + 1, **DEMO_SCENES)
    images, labels = [], []
    for i in range(len(test)):  # keep the images and labels only (not the scenes' masks)
        sample = test[i]
        images.append(sample["image"])
        labels.append(sample["labels"].tolist())
    images = torch.stack(images)
    pixels = (images * torch.tensor([0.229, 0.224, 0.225])[:, None, None]
              + torch.tensor([0.485, 0.456, 0.406])[:, None, None]).clamp(0, 1)
    rendered, peaks["scenes"] = time.time(), peak_mb()
    layers = gap_layers_from(model, "features.5", (3, 224, 224))
    trees = HierarchicalDecomposition(model, layers).decompose(images, top_k=2)
    decomposed, peaks["gAP trees"] = time.time(), peak_mb()
    generator = torch.Generator().manual_seed(args.seed)
    afi = {"bird.n.01": torch.rand(args.neurons, generator=generator)}
    with TemporaryDirectory() as folder:
        write_site(folder, hint, images, labels, pixels=pixels, trees=trees,
                   afi_importance=afi, seed=args.seed, progress=False)
        written, peaks["write_site"] = time.time(), peak_mb()
        sizes = folder_bytes(Path(folder))
    total = sum(b for _, b in sizes.values())
    print(f"{args.neurons} neurons, {args.images} images, {len(concepts)} concepts, gAP layers {layers}, seed {args.seed}")
    for key, (count, size) in sorted(sizes.items()):
        print(f"  {key:16s} {count:6d} files {size / 1e6:8.2f} MB  ({size / max(count, 1) / 1e3:6.2f} kB each)")
    print(f"  total            {total / 1e6:8.2f} MB; neurons with reference patches: "
          f"{sizes.get(os.path.join('img', 'patches'), (0, 0))[0]} of {args.neurons}")
    print(f"time: HINT fit {fitted - started:.1f} s, scenes {rendered - fitted:.1f} s, gAP trees "
          f"{decomposed - rendered:.1f} s, write_site {written - decomposed:.1f} s")
    print("peak RSS after each step: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items())
          + f" (the {args.images} images alone: {images.numel() * 4 / 1e6:.0f} MB as float32)")


if __name__ == "__main__":
    main()
