"""Fast (cumulative-logit) vs naive (re-evaluate every coalition) Shapley paths.

Both run on the same draws (same seed) in one process; the script checks they
agree and prints the time of each and their ratio.

    .venv/bin/python benchmarks/shapley_fast_vs_naive.py
"""

import time

import torch

from captum_hint.hint.classifiers import ConceptClassifier
from captum_hint.hint.shapley import NeuronConceptShapley


def classifier(coef):
    c = ConceptClassifier()
    c.coef_, c.intercept_ = coef, torch.tensor(0.1)
    return c


def timed(function, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


if __name__ == "__main__":
    torch.manual_seed(0)
    print(f"{'neurons':>8} {'regions':>8} {'perms':>6} {'concepts':>9} {'fast s':>9} {'naive s':>9} {'naive/fast':>11} {'max |diff|':>11}")
    for n_neurons, n_regions, n_perm, n_concepts in [(32, 64, 16, 3), (128, 64, 8, 3), (256, 32, 4, 3), (512, 16, 2, 3), (1280, 4, 2, 3)]:
        regions = torch.randn(n_regions, n_neurons)
        shapley = NeuronConceptShapley([classifier(torch.randn(n_neurons)) for _ in range(n_concepts)])
        kwargs = dict(n_permutations=n_perm, seed=0, absolute=False)
        fast_s, fast = timed(lambda: shapley.attribute(regions, fast=True, **kwargs))
        naive_s, naive = timed(lambda: shapley.attribute(regions, fast=False, **kwargs))
        diff = (fast - naive).abs().max().item()
        print(f"{n_neurons:>8} {n_regions:>8} {n_perm:>6} {n_concepts:>9} {fast_s:>9.4f} {naive_s:>9.4f} {naive_s / fast_s:>11.1f} {diff:>11.2e}")
