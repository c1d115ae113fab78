"""torch.distributed for `speck-mtt train` launched by torchrun (one process per GPU or CPU slot).

Gradients are all-reduced explicitly once per optimizer step, after all M MTT draws have been
backpropagated: one collective per step (instead of DDP's one per backward) and no buffer
broadcasting, so per-sample neuron states (sinabs v_mem, shaped by the batch) never cross ranks.
Rank 0 alone writes checkpoints and metrics; metrics are all-reduced sums.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .errors import SpeckMttError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | None) -> torch.device:
    """None: CUDA when present, else CPU. Asking for CUDA without it is a one-line error."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpeckMttError("--device cuda: no CUDA device visible to torch; use --device cpu")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise SpeckMttError(f"--device must be cpu or cuda, got {device!r}")
    return torch.device(device)


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group when torchrun set WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return DistInfo(rank, world, local), device


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_model(model: nn.Module, info: DistInfo) -> None:
    """Start every rank from rank 0's parameters and buffers."""
    if info.enabled:
        for t in list(model.parameters()) + [b for n, b in model.named_buffers() if not n.endswith("v_mem")]:
            dist.broadcast(t.data, src=0)


def allreduce_gradients(model: nn.Module, info: DistInfo) -> None:
    """Average gradients over ranks (each rank holds its M-draw sum for its shard)."""
    if not info.enabled:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world_size)


def allreduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of a metric tensor over ranks (the input is left untouched)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shard(n: int, info: DistInfo) -> list[int]:
    """Every index exactly once over all ranks (evaluation needs exact counts, no padding)."""
    return list(range(info.rank, n, info.world_size))
