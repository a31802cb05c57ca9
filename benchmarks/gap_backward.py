"""gAP's backward passes: one per decision slot (``propagate_between``) against one batched over the slots.

``propagate_between`` takes the gradients of S decisions per image (a
channel at a position of the upper layer) with respect to a lower layer's
output. It runs one backward pass per decision slot over the kept graph,
each for all N images; the alternative is one pass batched over the slots
with ``torch.autograd.grad(..., is_grads_batched=True)`` (torch's legacy
vmap), as the code did up to ``c07270b``. Both run here on the same graph,
in turn, at the four level pairs ``HierarchicalDecomposition`` walks down
on EfficientNet-Lite0 (its stages' last layers), with S as in a
``top_k=3`` tree (3, 9, 27, 64 decisions), after one warm-up call of each;
the gradients must be equal (to 1e-5).

    .venv/bin/python benchmarks/gap_backward.py [--images 4] [--repeats 3]
"""

import argparse
import statistics
import time

import torch

from captum_hint.attr.activation_propagation import forward_between, layer_output, propagate_between
from captum_hint.datasets import StampScenes, load_model
from captum_hint.gap import HierarchicalDecomposition

LEVELS_SLOTS = (3, 9, 27, 64)  # a top_k=3 tree's decisions per image, from the head down (capped at max_decisions)


def batched_gradients(model, images, lower, upper, selectors):
    """The gradients from one backward pass batched over the decision slots (the code up to c07270b)."""
    features, higher = forward_between(model, images, lower, upper)
    n, s = selectors.shape[:2]
    channel, row, col = selectors.unbind(-1)
    batch = torch.arange(n)[:, None].expand(n, s)
    picks = torch.zeros(s, *higher.shape)
    picks[torch.arange(s)[None].expand(n, s), batch, channel, row, col] = 1.0
    (gradients,) = torch.autograd.grad(higher, features, picks, is_grads_batched=True)
    return gradients.transpose(0, 1)


def main(n_images, repeats):
    spec = load_model("efficientnet-lite0")
    model = spec.model
    scenes = StampScenes("test", n_images, objects=(1, 1), categories=("animals/birds", "animals/mammals"), seed=5)
    images = torch.stack([scenes[i]["image"] for i in range(n_images)])
    layers = HierarchicalDecomposition(model).layers
    modules = dict(model.named_modules())
    generator = torch.Generator().manual_seed(0)
    print(f"{spec.name}, {n_images} demo scenes, {torch.get_num_threads()} threads, layers {layers}")
    for level, slots in zip(range(len(layers) - 1, 0, -1), LEVELS_SLOTS):
        lower, upper = modules[layers[level - 1]], modules[layers[level]]
        shapes = {name: layer_output(model, module, images[:1]).shape
                  for name, module in (("lower", lower), ("upper", upper))}
        k, h, w = shapes["upper"][1:]
        selectors = torch.stack([torch.randint(0, size, (n_images, slots), generator=generator) for size in (k, h, w)], -1)
        propagate_between(model, images, lower, upper, selectors)  # warm-up: the first backward's one-time costs
        batched_gradients(model, images, lower, upper, selectors)
        times = {"per slot": [], "batched": []}
        for _ in range(repeats):
            started = time.perf_counter()
            per_slot = propagate_between(model, images, lower, upper, selectors)[0]
            times["per slot"].append(time.perf_counter() - started)
            started = time.perf_counter()
            batched = batched_gradients(model, images, lower, upper, selectors)
            times["batched"].append(time.perf_counter() - started)
        equal = torch.allclose(per_slot, batched, rtol=1e-5, atol=1e-7)
        ratios = [b / p for b, p in zip(times["batched"], times["per slot"])]
        print(f"{layers[level]} -> {layers[level - 1]} {tuple(shapes['lower'][1:])}, {slots} slots: per slot "
              f"{statistics.median(times['per slot']):.2f} s, batched {statistics.median(times['batched']):.2f} s, "
              f"x{statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}] over {repeats} pairs; "
              f"gradients equal (1e-5): {equal}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.images, args.repeats)
