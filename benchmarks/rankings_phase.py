"""The demo's rankings phase (``ranking_study``) with this session's code against the code of a git commit.

Issue 20. The reference (default ``09c6735``) differs in three places, each
loaded from the repository's history or rebuilt as it was there:
``conductance_ranking`` (Captum's ``internal_batch_size`` of two steps, which
for conductance evaluates every chunk's last path point again: 16 points for
9), the held-out scores of the localizers (one scikit-learn call per
classifier and metric) and the thread pools (one started per call of the
sweep, the pixel pass, the energy pointing game's sort and the Shapley walk).
Both run on the same fitted HINT (the demo's settings, seed 0), in turn,
``--repeats`` times each, timed in wall-clock and in the process's CPU
time (all threads; less moved by other work on a shared machine than the
wall clock); every figure of the rows must be equal (the
conductance rankings to float rounding, so their rows' neurons may differ
only at exact ties, checked).

    .venv/bin/python benchmarks/rankings_phase.py [--commit 09c6735] [--repeats 2]

With ``--whole`` the reference is instead the whole package at the commit,
checked out in a temporary git worktree: each run (reference and this
code, in turn) is a child process that loads the same fitted HINT, compiles
the kernels on a small record and then times ``ranking_study``, so both run
under the same conditions and every later change to the phase is measured.

    .venv/bin/python benchmarks/rankings_phase.py --whole --commit c4419ac --repeats 3
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from localization_speed import REPOSITORY, compile_kernels, reference_module
from torch.utils.data import DataLoader

import captum_hint.evaluation.components as components
import captum_hint.evaluation.metrics as metrics
import captum_hint.evaluation.pixels as pixels
import captum_hint.hint.classifiers as classifiers
import captum_hint.hint.experiments as experiments
import captum_hint.hint.shapley as shapley
from captum_hint.app.demo import DEMO_CONCEPTS, DEMO_EVALUATED, DEMO_SCENES, FRACTIONS
from captum_hint.concepts import ConceptHierarchy
from captum_hint.core.allocator import reuse_freed_memory
from captum_hint.core.threads import map_row_ranges, row_ranges
from captum_hint.datasets import StampScenes, collate_samples, load_model
from captum_hint.hint import HINT

THREAD_USERS = (components, metrics, pixels, shapley)


def pool_per_call(work, n_rows, workers=None):
    """The thread pools as they were: one started and joined per call."""
    ranges = row_ranges(n_rows, workers)
    if len(ranges) == 1:
        return [work(*ranges[0])]
    with ThreadPoolExecutor(len(ranges)) as pool:
        return list(pool.map(lambda bounds: work(*bounds), ranges))


def use(reference, old_baselines, old_classifiers):
    """Switch the three parts to the reference (True) or to this code (False)."""
    experiments.conductance_ranking = old_baselines.conductance_ranking if reference else CONDUCTANCE
    classifiers._score_holdout = old_classifiers._score_holdout if reference else SCORE_HOLDOUT
    for module in THREAD_USERS:
        module.map_row_ranges = pool_per_call if reference else map_row_ranges


CONDUCTANCE, SCORE_HOLDOUT = experiments.conductance_ranking, classifiers._score_holdout


def same(new, old):
    """Equal figures, NaN equal to NaN, through lists, tuples, dicts and tensors."""
    if isinstance(new, dict):
        return new.keys() == old.keys() and all(same(new[k], old[k]) for k in new)
    if isinstance(new, (list, tuple)):
        return len(new) == len(old) and all(same(a, b) for a, b in zip(new, old))
    if isinstance(new, torch.Tensor):
        return new.shape == old.shape and torch.equal(new.nan_to_num(-12345.0), old.nan_to_num(-12345.0))
    if isinstance(new, float):
        return new == old or (math.isnan(new) and math.isnan(old))
    return new == old


def compare(new_rows, old_rows):
    """Names of the figures that differ, by method."""
    return sorted({f"{new['method']}: {key}" for new, old in zip(new_rows, old_rows, strict=True)
                   for key in new if not same(new[key], old[key])})


def demo_data():
    """The model, the demo's 384 training and 96 test scenes (seeds 0 and 1)."""
    spec = load_model("efficientnet-lite0")
    train = list(StampScenes("train", 384, objects=(1, 1), seed=0, **DEMO_SCENES))
    test = list(StampScenes("test", 96, objects=(1, 3), seed=1, **DEMO_SCENES))
    return spec, train, test


def fitted_hint(spec, train):
    """HINT fitted as the demo fits it."""
    hint = HINT(spec.model, spec.layer, ConceptHierarchy.imagenet(), DEMO_CONCEPTS, saliency="gradient", seed=0,
                progress=False)
    return hint.fit(DataLoader(train, batch_size=16, collate_fn=collate_samples))


def print_ratios(label, times, cpu, repeats):
    for name, measured in (("wall clock", times), ("CPU time", cpu)):
        ratios = [old / new for old, new in zip(measured[True], measured[False])]
        print(f"ranking_study, 384 + 96 demo scenes, {torch.get_num_threads()} threads, {name}: reference {label} "
              f"median {statistics.median(measured[True]):.1f} s, this code {statistics.median(measured[False]):.1f} s, "
              f"x{statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}] over {repeats} interleaved pairs")


def child(hint_path, out):
    """One timed ``ranking_study`` with the package on ``PYTHONPATH``; writes the rows and times to ``out``."""
    reuse_freed_memory()
    spec, train, test = demo_data()
    hint = HINT.load(hint_path, spec.model, progress=False)
    compile_kernels()
    started, started_cpu = time.perf_counter(), time.process_time()
    rows = experiments.ranking_study(hint, train, test, DEMO_EVALUATED, FRACTIONS, gradcam_layer=spec.gradcam_layer)
    torch.save({"rows": rows, "wall": time.perf_counter() - started, "cpu": time.process_time() - started_cpu,
                "package": str(Path(experiments.__file__).parents[1])}, out)


def whole_main(commit, repeats):
    """The package at ``commit`` (a git worktree) against this one, each run in a child process."""
    folder = Path(tempfile.mkdtemp())
    spec, train, _ = demo_data()
    fitted_hint(spec, train).save(folder / "hint")
    reference = folder / "reference"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(reference), commit], cwd=REPOSITORY, check=True)
    times, cpu, rows = {True: [], False: []}, {True: [], False: []}, {}
    try:
        for _ in range(repeats):
            for is_reference, tree in ((True, reference), (False, REPOSITORY)):
                out = folder / "rows.pt"
                subprocess.run([sys.executable, __file__, "--child", str(folder / "hint"), str(out)],
                               env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
                result = torch.load(out, weights_only=True)
                times[is_reference].append(result["wall"])
                cpu[is_reference].append(result["cpu"])
                rows[is_reference] = result["rows"]
                print(f"{'reference' if is_reference else 'this code'} ({result['package']}): {result['wall']:.1f} s, "
                      f"CPU {result['cpu']:.1f} s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(reference)], cwd=REPOSITORY, check=True)
    print(f"rows: {len(rows[False])}, differing figures: {compare(rows[False], rows[True])}")
    print_ratios(f"{commit} (whole package)", times, cpu, repeats)


def main(commit, repeats):
    reuse_freed_memory()
    spec, train, test = demo_data()
    hint = fitted_hint(spec, train)
    old_baselines = reference_module(commit, "captum_hint/evaluation/baselines.py")
    old_classifiers = reference_module(commit, "captum_hint/hint/classifiers.py")
    times, cpu, rows = {True: [], False: []}, {True: [], False: []}, {}
    for _ in range(repeats):
        for reference in (True, False):
            use(reference, old_baselines, old_classifiers)
            hint._localizers = {}  # every run trains its localizers
            started, started_cpu = time.perf_counter(), time.process_time()
            rows[reference] = experiments.ranking_study(hint, train, test, DEMO_EVALUATED, FRACTIONS,
                                                        gradcam_layer=spec.gradcam_layer)
            times[reference].append(time.perf_counter() - started)
            cpu[reference].append(time.process_time() - started_cpu)
            print(f"{'reference' if reference else 'this code'}: {times[reference][-1]:.1f} s, "
                  f"CPU {cpu[reference][-1]:.1f} s", flush=True)
    use(False, old_baselines, old_classifiers)
    print(f"rows: {len(rows[False])}, differing figures: {compare(rows[False], rows[True])}")
    print_ratios(commit, times, cpu, repeats)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commit", default="09c6735")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--whole", action="store_true", help="the reference is the whole package at --commit")
    parser.add_argument("--child", nargs=2, metavar=("HINT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
    elif args.whole:
        whole_main(args.commit, args.repeats)
    else:
        main(args.commit, args.repeats)
