"""HINT across processes and machines with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with ``torchrun``; each rank streams its shard of the data (a
``DistributedSampler``), the region banks are merged into one with per-concept
caps (:meth:`RegionBank.merge`, which keeps the sample uniform), and the
classifiers and Shapley values are computed on rank 0 and broadcast, so every
rank returns the same fitted HINT. Nothing here runs unless a process group
is initialized with more than one process.

Tensors travel with ``all_gather``/``broadcast`` (no pickled objects).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from .regions import RegionBank

__all__ = ["broadcast_from_rank0", "merge_banks_across_ranks", "rank_and_world", "sum_across_ranks"]


def rank_and_world() -> Tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device() -> torch.device:
    """Where collective tensors must live: the current CUDA device for NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_across_ranks(tensor: Tensor, op=dist.ReduceOp.SUM) -> Tensor:
    """``tensor`` summed (or reduced by another ``op``) over ranks, as a new tensor on the CPU."""
    total = tensor.to(_device()).clone()
    dist.all_reduce(total, op=op)
    return total.cpu()


def _gather_rows(tensor: Tensor) -> List[Tensor]:
    """Every rank's ``tensor`` (same trailing shape, any number of rows), in rank order."""
    device = _device()
    rows = torch.tensor([len(tensor)], device=device)
    counts = [torch.zeros_like(rows) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, rows)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: len(tensor)] = tensor.to(device)
    gathered = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return [g[: int(c.item())].cpu() for g, c in zip(gathered, counts)]


def merge_banks_across_ranks(bank: RegionBank, seed: int) -> RegionBank:
    """The union of every rank's bank, as :meth:`RegionBank.merge` builds it; the same on every rank."""
    counts = bank.counts()
    width = torch.tensor([0 if bank._vectors[b] is None else bank._vectors[b].shape[1] for b in range(len(counts))])
    width = int(sum_across_ranks(width.amax()[None], dist.ReduceOp.MAX).item())  # ranks without rows report 0
    if int(counts.sum()):
        vectors, buckets, under, images = bank.rows()
    else:
        vectors, buckets = torch.zeros(0, 0, dtype=bank.dtype), torch.zeros(0, dtype=torch.long)
        under, images = torch.zeros(0, bank.n_concepts, dtype=torch.bool), buckets
    if vectors.shape[1] != width:
        vectors = vectors.new_zeros((len(vectors), width))
    state_parts = zip(
        _gather_rows(vectors.float()), _gather_rows(buckets), _gather_rows(under.to(torch.uint8)), _gather_rows(images),
        _gather_rows(torch.tensor(bank.seen)[None]),
    )
    banks = []
    for vectors, buckets, under, images, seen in state_parts:
        state = {"vectors": vectors.to(bank.dtype), "buckets": buckets, "under": under.bool(), "images": images,
                 "seen": seen[0], "capacity": torch.tensor(bank.capacity)}
        banks.append(RegionBank.from_state_dict(state, seed))
    return RegionBank.merge(banks, seed)


def broadcast_from_rank0(tensors: Sequence[Tensor]) -> List[Tensor]:
    """Rank 0's ``tensors``; other ranks pass placeholders of the same shapes and dtypes."""
    device = _device()
    shared = [t.to(device).contiguous() for t in tensors]
    for tensor in shared:
        dist.broadcast(tensor, src=0)
    return [t.cpu() for t in shared]
