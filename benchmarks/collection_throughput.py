"""HINT's region collection against the hardware floor, the per-pair path and a batch-1 loop.

Real model and data: EfficientNet-Lite0 at ``_blocks.10``, stamp scenes of the
demo (the demo's concept set: every image falls under several concepts),
2 CPU threads, seed 0. All timings are taken side by side in this one run.

* floor: a batched forward pass and one backward pass to the layer (one
  target per image), images/s;
* shared pass (this library): ``stream_regions`` per saliency method, for
  concept targets (one saliency map per image and concept) and leaf
  targets; ratio = floor time x (noise samples or path points) / its time.
  The floor and the method are timed in turn, ``--repeats`` times (5), each
  ratio from a floor run and a method run next to each other, so that a
  change in the machine's speed during the run moves both; the median ratio
  is reported with the lowest and highest;
* per-pair path (the library before the shared pass): every (image,
  concept) pair re-forwards its image through the Captum-based class;
* batch-1 loop, as reference code runs: per image and concept, hooks on the
  layer, a forward and a backward pass;
* peak memory (fresh process each, RSS growth over the loaded model) at
  batch 16 and 64, one concept vs all, and SmoothGrad with 4 and 8 samples;
* several layers in one pass (``fit_layers``'s collection) vs one pass per layer.

    .venv/bin/python benchmarks/collection_throughput.py [--images 48] [--repeats 5] [--parts speed memory]
"""

import argparse
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.data import DataLoader

from captum_hint.app.demo import DEMO_CONCEPTS, DEMO_SCENES
from captum_hint.attr import LayerGradient, LayerSmoothGrad
from captum_hint.concepts import ConceptHierarchy
from captum_hint.datasets import StampScenes, collate_samples, load_model
from captum_hint.hint import HINT
from captum_hint.hint.collection import stream_regions

METHODS = {"gradient": {}, "gradient_x_input": {}, "guided_backprop": {}, "integrated_gradients": {"n_steps": 8},
           "smoothgrad": {"n_samples": 8}}


class PerPairGradient(LayerGradient):
    """LayerGradient under another name: HINT then takes its per-pair path (one call per pair batch)."""


class PerPairSmoothGrad(LayerSmoothGrad):
    """LayerSmoothGrad (Captum's NoiseTunnel) on HINT's per-pair path."""


def setup(n_images):
    torch.set_num_threads(2)
    spec = load_model("efficientnet-lite0")
    hierarchy = ConceptHierarchy.imagenet()
    scenes = StampScenes("train", n_images, objects=(1, 1), seed=0, **DEMO_SCENES)
    samples = [scenes[i] for i in range(len(scenes))]
    labels = torch.tensor([s["label"] for s in samples])
    concepts = [c for c in DEMO_CONCEPTS if torch.isin(labels, torch.tensor(hierarchy.leaves_under(c))).any()]
    return spec, hierarchy, samples, concepts


def timed(function, repeats=1):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def floor_run(model, layer, images, batch_size=16):
    """A batched forward pass and one backward pass to the layer, over all images."""
    def run():
        for start in range(0, len(images), batch_size):
            captured = {}
            handle = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("z", o))
            logits = model(images[start : start + batch_size])
            handle.remove()
            torch.autograd.grad(logits[:, 0].sum(), captured["z"])
    return run


def interleaved_ratios(floor, run, work, repeats):
    """Ratios floor time x work / method time, each from a floor run and a method run timed in turn."""
    floor(), run()  # warm-up
    ratios, seconds = [], []
    for _ in range(repeats):
        floor_s, method_s = timed(floor), timed(run)
        ratios.append(floor_s * work / method_s)
        seconds.append(method_s)
    return sorted(ratios), statistics.median(seconds)


def collect(spec, hierarchy, samples, concepts, saliency, kwargs, target="concept", batch_size=16, layers=None):
    loader = DataLoader(samples, batch_size=batch_size, collate_fn=collate_samples)
    hints = [HINT(spec.model, layer, hierarchy, concepts, saliency=saliency, saliency_kwargs=kwargs,
                  saliency_target=target, batch_size=batch_size, progress=False) for layer in (layers or [spec.layer])]
    return lambda: stream_regions(hints, loader, "given")


def batch1_seconds(spec, hierarchy, samples, concepts):
    """Reference-style loop: per image and concept, hook the layer, forward, backward."""
    from captum_hint.concepts import concept_scores

    membership = hierarchy.membership(concepts)
    layer = spec.model.get_submodule(spec.layer)

    def run():
        for sample in samples:
            for k in membership[:, sample["label"]].nonzero().flatten().tolist():
                captured = {}
                handle = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("z", o))
                logits = spec.model(sample["image"][None])
                handle.remove()
                score = concept_scores(logits, membership[k : k + 1])
                torch.autograd.grad(score.sum(), captured["z"])
    return timed(run)


def _status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_run(batch_size, n_concepts, saliency, n_samples, n_images):
    spec, hierarchy, samples, concepts = setup(n_images)
    kwargs = {"n_samples": n_samples} if saliency == "smoothgrad" else {}
    run = collect(spec, hierarchy, samples, concepts[:n_concepts], saliency, kwargs, batch_size=batch_size)
    with open("/proc/self/clear_refs", "w") as handle:  # Linux: reset the peak RSS (VmHWM) to the current RSS
        handle.write("5")
    before = _status_mb("VmRSS")
    run()
    print(_status_mb("VmHWM") - before)


def main(n_images, parts, repeats, methods):
    spec, hierarchy, samples, concepts = setup(n_images)
    images = torch.stack([s["image"] for s in samples])
    membership = hierarchy.membership(concepts)
    n_pairs = int(membership[:, torch.tensor([s["label"] for s in samples])].sum())
    print(f"{spec.name} at {spec.layer}, {len(samples)} stamp scenes, {len(concepts)} concepts, {n_pairs} "
          f"image-concept pairs, {torch.get_num_threads()} threads, torch {torch.__version__}")
    floor = floor_run(spec.model, spec.model.get_submodule(spec.layer), images)
    floor()  # warm-up
    print(f"floor (batched forward + 1 backward to the layer): {len(images) / timed(floor, 2):.1f} images/s")
    if "speed" in parts:
        speed(spec, hierarchy, samples, concepts, images, floor, repeats, methods)
    if "memory" in parts:
        memory(concepts, n_images)


def speed(spec, hierarchy, samples, concepts, images, floor, repeats, methods):
    print(f"{'method':<22} {'target':<8} {'images/s':>9} {'x floor: median':>16} {'[min, max]':>14}   "
          f"({repeats} interleaved repeats; target >= 0.8)")
    for method in methods:
        kwargs = METHODS[method]
        for target in ("concept", "leaf"):
            run = collect(spec, hierarchy, samples, concepts, method, kwargs, target)
            work = kwargs.get("n_samples", kwargs.get("n_steps", 1))
            ratios, seconds = interleaved_ratios(floor, run, work, repeats)
            print(f"{method:<22} {target:<8} {len(images) / seconds:>9.1f} {statistics.median(ratios):>16.2f} "
                  f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]")
    if list(methods) != list(METHODS):
        return  # the comparisons below are of all methods' run
    shared = timed(collect(spec, hierarchy, samples, concepts, "gradient", {}), 2)
    per_pair = timed(collect(spec, hierarchy, samples, concepts, PerPairGradient, {}))
    batch1 = batch1_seconds(spec, hierarchy, samples, concepts)
    print(f"gradient, concept targets: shared pass {shared:.2f} s, per-pair path {per_pair:.2f} s "
          f"(x{per_pair / shared:.2f}), batch-1 loop {batch1:.2f} s (x{batch1 / shared:.2f}; target >= 5)")
    smooth = timed(collect(spec, hierarchy, samples, concepts, "smoothgrad", {"n_samples": 8}))
    smooth_pairs = timed(collect(spec, hierarchy, samples, concepts, PerPairSmoothGrad, {"n_samples": 8}))
    print(f"smoothgrad n=8, concept targets: shared pass {smooth:.2f} s, per-pair path (NoiseTunnel) "
          f"{smooth_pairs:.2f} s (x{smooth_pairs / smooth:.2f})")
    layers = list(spec.layers)
    together = timed(collect(spec, hierarchy, samples, concepts, "gradient", {}, "leaf", layers=layers))
    apart = sum(timed(collect(spec, hierarchy, samples, concepts, "gradient", {}, "leaf", layers=[layer]))
                for layer in layers)
    print(f"{len(layers)} layers {layers}: one pass {together:.2f} s, one pass per layer {apart:.2f} s "
          f"(x{apart / together:.2f})")


def memory(concepts, n_images):
    print(f"{'peak RSS growth MB':<20} {'batch':>6} {'concepts':>9} {'saliency':>18}")
    for batch_size, n_concepts, saliency, n_samples in [(16, 1, "gradient", 0), (16, len(concepts), "gradient", 0),
                                                        (64, 1, "gradient", 0), (64, len(concepts), "gradient", 0),
                                                        (16, 1, "smoothgrad", 4), (16, len(concepts), "smoothgrad", 4),
                                                        (16, 1, "smoothgrad", 8), (16, len(concepts), "smoothgrad", 8)]:
        out = subprocess.run([sys.executable, __file__, "_memory", str(batch_size), str(n_concepts), saliency,
                              str(n_samples), str(n_images)], capture_output=True, text=True, check=True).stdout
        label = saliency + (f" n={n_samples}" if n_samples else "")
        print(f"{float(out.split()[-1]):<20.0f} {batch_size:>6} {n_concepts:>9} {label:>18}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_memory"]:
        memory_run(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        sys.exit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--parts", nargs="+", default=["speed", "memory"], choices=["speed", "memory"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved floor/method timings per ratio")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                        help="saliency methods to time against the floor (default: all, then the other comparisons)")
    args = parser.parse_args()
    main(args.images, args.parts, args.repeats, args.methods)
