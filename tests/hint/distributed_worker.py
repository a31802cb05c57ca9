"""One rank of the 2-process HINT fit in test_distributed.py (launched by torchrun).

Usage: torchrun --standalone --nproc_per_node=2 distributed_worker.py OUT_DIR
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nets, the test

from captum_hint.hint.explainer import HINT  # noqa: E402
from test_distributed import dataset, make_hint  # noqa: E402

if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = Path(sys.argv[1])
    data = dataset()
    loader = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, shuffle=False))
    hint = make_hint().fit(loader)
    rank = dist.get_rank()
    torch.save({"scores": hint.scores_, "coef": torch.stack([c.coef_ for c in hint.classifiers_]),
                "n_images": torch.tensor(hint.n_images_), **{f"bank.{k}": v for k, v in hint.bank_.state_dict().items()}},
               out / f"rank{rank}.pt")
    assert isinstance(hint, HINT)
    dist.destroy_process_group()
