"""Distributed data-parallel training under ``torchrun``: one process per device (or CPU worker).

``torchrun --nproc_per_node 2 --standalone -m edge_kd ...`` sets ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK``; :func:`init_distributed` joins the group (gloo on CPU, nccl on CUDA) and the
trainer shards each epoch with ``DistributedSampler`` and lets only rank 0 write files.
Without those variables everything runs as a single process (world size 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, env: DistEnv | None = None) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; under DDP each rank takes ``cuda:LOCAL_RANK``."""
    import torch

    from edge_kd.errors import InputError

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was requested but CUDA is not available on this machine")
        if device == "cuda" and env is not None and env.distributed:
            device = f"cuda:{env.local_rank}"
    return device


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (idempotent); a single process otherwise."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local_rank, backend)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
