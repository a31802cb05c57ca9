"""HINT under torch.distributed: 2 gloo processes launched by torchrun give the single-process fit."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_hint import ConceptHierarchy
from captum_hint.hint.explainer import HINT
from nets import SmallNet

WORKER = Path(__file__).with_name("distributed_worker.py")


def dataset():
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(24, 3, 8, 8, generator=generator), torch.arange(24) % 6)


def make_hint():
    hierarchy = ConceptHierarchy.from_paths(["animal/mammal/dog", "animal/mammal/cat", "animal/bird",
                                             "thing/car", "thing/cup", "thing/boat"])
    # Capacities above what 24 images give: no reservoir drops a row, so the merged bank is the full one.
    return HINT(SmallNet().eval(), "features.2", hierarchy, concepts=["animal", "mammal", "thing"],
                saliency="gradient", max_regions_per_concept=10_000, max_background=10_000,
                shapley_kwargs={"n_permutations": 8}, progress=False)


def test_two_gloo_processes_equal_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
               str(tmp_path)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    single = make_hint().fit(DataLoader(dataset(), batch_size=4))
    expected = single.bank_.state_dict()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert int(got["n_images"]) == 24
        for key in ("buckets", "under", "images", "seen"):
            assert torch.equal(got[f"bank.{key}"], expected[key]), key
        torch.testing.assert_close(got["bank.vectors"], expected["vectors"])
        # classifiers and Shapley ran on rank 0 on the same bank and were broadcast
        torch.testing.assert_close(got["coef"], torch.stack([c.coef_ for c in single.classifiers_]))
        torch.testing.assert_close(got["scores"], single.scores_)
