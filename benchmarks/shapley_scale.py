"""Neuron-concept Shapley at HINT's size: time and peak memory against R, and antithetic orders.

Part 1 (``scale``): 1280 neurons x 10 concepts x 200 permutations at R = 2,000
and 20,000 regions, each in a fresh process so its peak RSS is its own; prints
seconds, regions/s and peak memory, and the ratio 20k/2k of each.

Part 2 (``antithetic``): error against the exact value (12 neurons, 3
concepts, 32 regions, 40 seeds) of plain and antithetic permutations at equal
time: the plain sampler gets the permutations that fit in the antithetic
sampler's time.

Part 3 (``passes``): where one region block's time goes at that size (200
permutations x 1280 neurons x 10 concepts), step by step, for the fast path
before issue 20 (argsort-drawn orders; gather, cumsum, cat, sigmoid, diff and
scatter each on a new P x R x K x C tensor; sums over the permutations), the
tensor path (one buffer updated in place, the baseline's logit folded into the
cumulative sum; the squares summed over regions too; what a GPU runs) and the
compiled walk a CPU runs (each order drawn with the compiled Fisher-Yates as
the walk goes, each gain added to its neuron's sum and square: no P x R x C x
K tensor at all), alone and per block of a group of blocks whose walks the
threads share out (what ``attribute`` runs at this size). numpy's
``Generator.permuted``, which drew the orders before, is timed beside it.

    .venv/bin/python benchmarks/shapley_scale.py [scale|antithetic|passes|all] [--regions 2000 20000]
"""

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from captum_hint.hint.classifiers import ConceptClassifier
from captum_hint.hint.shapley import NeuronConceptShapley, _shuffled_orders, exact_shapley


def classifiers(n_neurons, n_concepts, generator, scale=1.0):
    made = []
    for _ in range(n_concepts):
        c = ConceptClassifier()
        c.coef_ = scale * torch.randn(n_neurons, generator=generator) / n_neurons ** 0.5
        c.intercept_ = torch.tensor(-0.5)
        made.append(c)
    return made


def one_scale_run(n_regions):
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    shapley = NeuronConceptShapley(classifiers(1280, 10, generator, scale=4.0))
    regions = torch.randn(n_regions, 1280, generator=generator).relu_()
    pool = torch.randn(4096, 1280, generator=generator).relu_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    shapley.attribute(regions, pool=pool, n_permutations=200, seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{seconds:.2f} {peak / 1024:.0f} {(peak - before) / 1024:.0f}")


def scale(regions_list):
    print(f"{'regions':>8} {'seconds':>9} {'regions/s':>10} {'peak RSS MB':>12} {'growth MB':>10}")
    rows = {}
    for n_regions in regions_list:
        out = subprocess.run([sys.executable, __file__, "_one", str(n_regions)], capture_output=True, text=True,
                             check=True).stdout.split()
        seconds, peak, growth = float(out[0]), float(out[1]), float(out[2])
        rows[n_regions] = (seconds, peak)
        print(f"{n_regions:>8} {seconds:>9.1f} {n_regions / seconds:>10.1f} {peak:>12.0f} {growth:>10.0f}")
    if len(rows) > 1:
        (r0, (s0, p0)), (r1, (s1, p1)) = list(rows.items())[0], list(rows.items())[-1]
        print(f"R {r0} -> {r1}: time x{s1 / s0:.2f} (regions x{r1 / r0:.0f}), peak memory x{p1 / p0:.2f} (target <= 1.2)")


def passes(repeats=5):
    """Milliseconds per step of one region block, the old fast path and the current one, side by side."""
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    n_neurons, n_concepts, n_perm = 1280, 10, 200
    made = classifiers(n_neurons, n_concepts, generator, scale=4.0)
    shapley = NeuronConceptShapley(made)
    coef, intercept = torch.stack([c.coef_ for c in made]), torch.stack([c.intercept_ for c in made])
    region = torch.randn(1, n_neurons, generator=generator).relu_()
    pool = torch.randn(4096, n_neurons, generator=generator).relu_()
    seeds, rows = shapley._draw(n_perm, 1, len(pool), generator)
    baselines = pool[rows]
    times = {}

    def step(name, function):
        function()
        start = time.perf_counter()
        for _ in range(repeats):
            out = function()
        times[name] = 1e3 * (time.perf_counter() - start) / repeats
        return out

    # before: argsort of random keys, then a new tensor per step (shapley.py at f7421ce)
    orders = step("old: draw (rand + argsort)", lambda: torch.rand((n_perm, 1, n_neurons), generator=generator).argsort(-1))
    steps = step("old: moves x coef", lambda: (region - baselines)[:, :, None, :] * coef[None, None])
    index = orders[:, :, None, :].expand_as(steps)
    start = baselines @ coef.T + intercept
    gathered = step("old: gather", lambda: steps.gather(-1, index))
    summed = step("old: cumsum", lambda: gathered.cumsum(-1))
    prefix = step("old: add start + cat", lambda: torch.cat([start[..., None], start[..., None] + summed], -1))
    values = step("old: sigmoid", lambda: torch.sigmoid(prefix))
    gains = step("old: diff", lambda: values.diff(dim=-1))
    scattered = step("old: scatter to neuron order", lambda: torch.empty_like(gains).scatter_(-1, index, gains))
    step("old: sum + squares over permutations", lambda: (scattered.sum(0), scattered.square().sum(0)))
    # the draw of the tensor path until the compiled walk: numpy's Generator.permuted over the last axis
    shuffler = np.random.Generator(np.random.PCG64(0))
    step("numpy draw (Generator.permuted)", lambda: shuffler.permuted(np.broadcast_to(np.arange(n_neurons), (n_perm, 1, n_neurons)), axis=-1))
    # tensors: NeuronConceptShapley's draw and tensor fast path (the GPU's; the CPU's until the compiled walk)
    orders = torch.from_numpy(step("tensors: draw (compiled Fisher-Yates)", lambda: _shuffled_orders(seeds, 1, n_neurons)))
    gains = step("tensors: contributions, in place", lambda: shapley._contributions_fast(region, baselines, orders))
    index = orders[..., None].expand_as(gains)
    neuron_order = step("tensors: scatter to neuron order", lambda: torch.empty_like(gains).scatter_(2, index, gains))
    step("tensors: sum + squares over permutations", lambda: (neuron_order.sum(0), neuron_order.square().sum((0, 1))))
    # compiled: one walk that draws each order as it goes and sums each gain and its square
    logits = pool @ coef.T + intercept
    step("compiled: draw, walk, sums and squares", lambda: shapley._gain_sums_compiled(
        region, [1], pool, logits, seeds[None], rows, False))
    # a group of one-region blocks, as attribute() passes them at this size: the threads share out the blocks
    group = 16
    group_regions = torch.randn(group, n_neurons, generator=generator).relu_()
    group_seeds = np.stack([shapley._draw(n_perm, 1, 0, generator)[0] for _ in range(group)])
    group_rows = torch.randint(len(pool), (n_perm, group), generator=generator)
    step(f"group of {group} blocks: per block", lambda: shapley._gain_sums_compiled(
        group_regions, [1] * group, pool, logits, group_seeds, group_rows, False))
    times[f"group of {group} blocks: per block"] /= group
    totals = {variant: sum(v for k, v in times.items() if k.startswith(variant))
              for variant in ("old", "tensors", "compiled", "group")}
    # the tensor path as it was before the compiled draw
    totals["tensors, numpy draw"] = (totals["tensors"] - times["tensors: draw (compiled Fisher-Yates)"]
                                     + times["numpy draw (Generator.permuted)"])
    for name, ms in times.items():
        print(f"{name:<40} {ms:8.2f} ms")
    print(f"one block (1 region x {n_perm} permutations x {n_concepts} concepts x {n_neurons} neurons): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in totals.items())
          + "; x compiled: " + ", ".join(f"{k} x{v / totals['compiled']:.2f}" for k, v in totals.items()))


def antithetic():
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    made = classifiers(12, 3, generator, scale=4.0)
    regions = 1.5 * torch.randn(32, 12, generator=generator)
    baseline = torch.zeros(12)
    exact = exact_shapley(made, regions, baseline, absolute=False)
    shapley = NeuronConceptShapley(made)

    def run(n_perm, anti, seeds=range(40)):
        start = time.perf_counter()
        errors = [((shapley.attribute(regions, baseline=baseline, n_permutations=n_perm, absolute=False, seed=s,
                                      antithetic=anti) - exact) ** 2).mean() for s in seeds]
        return (time.perf_counter() - start) / len(seeds), torch.stack(errors).mean().sqrt().item()

    print(f"{'permutations':>12} {'plain s':>9} {'plain RMSE':>11} {'anti s':>9} {'anti RMSE':>10} {'RMSE ratio':>11}")
    for n_perm in (8, 32, 128):
        run(n_perm, False, range(3)), run(n_perm, True, range(3))  # warm-up
        plain_s, plain_e = run(n_perm, False)
        anti_s, anti_e = run(n_perm, True)
        # equal time: give the plain sampler the permutations that fit in the antithetic time
        equal = max(1, round(n_perm * anti_s / plain_s))
        eq_s, eq_e = run(equal, False)
        print(f"{n_perm:>12} {plain_s:>9.4f} {plain_e:>11.5f} {anti_s:>9.4f} {anti_e:>10.5f} {anti_e / plain_e:>11.2f}"
              f"   plain at equal time ({equal} perms, {eq_s:.4f} s): RMSE {eq_e:.5f}, anti/plain {anti_e / eq_e:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_one"]:
        one_scale_run(int(sys.argv[2]))
        sys.exit()
    parser = argparse.ArgumentParser()
    parser.add_argument("part", nargs="?", default="all", choices=["scale", "antithetic", "passes", "all"])
    parser.add_argument("--regions", type=int, nargs="+", default=[2000, 20000])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available, 2 used")
    if args.part in ("passes", "all"):
        passes()
    if args.part in ("antithetic", "all"):
        antithetic()
    if args.part in ("scale", "all"):
        scale(args.regions)
