"""PyTorch DDP plumbing for runs launched with ``torchrun`` (env WORLD_SIZE / RANK / LOCAL_RANK).

Nothing home-made: the process group, ``DistributedDataParallel`` and the collectives are
PyTorch's. gloo on CPU, nccl on CUDA. Only rank 0 writes files; every rank trains on its
own shard of the data. ``GENEDGE_DDP_DEBUG_DIR`` makes each rank write a hash of its
parameters at the end (``rank{R}.sha256``) so a test can check the replicas agree.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genedge.errors import IncompatibleEnvironmentError

DEBUG_DIR_ENV = "GENEDGE_DDP_DEBUG_DIR"


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistContext:
    """Join the process group when launched by torchrun; a plain single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        check_cuda(dev)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world
        )
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def check_cuda(dev: torch.device) -> None:
    """Refuse (exit 3) a CUDA device this torch cannot use, before any training starts."""
    if not torch.cuda.is_available():
        raise IncompatibleEnvironmentError(
            f"--device {dev}: this torch ({torch.__version__}) has no usable CUDA GPU.",
            hint="Train with --device cpu, or install a CUDA build of torch on a machine with a GPU.",
        )
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise IncompatibleEnvironmentError(
            f"--device {dev}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"numbered from 0.",
            hint="Pass --device cuda or cuda:N with N below the GPU count.",
        )


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, the model itself otherwise."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def any_rank_says_stop(stop: bool, ctx: DistContext) -> bool:
    """Agree on stopping (a wall-clock budget ends at slightly different times per rank)."""
    if not ctx.distributed:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def parameter_sha256(model: nn.Module) -> str:
    """Hash of every parameter's bytes, in name order (buffers excluded: BN stats are per rank)."""
    h = hashlib.sha256()
    for name, p in sorted(unwrap(model).named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dump_parameter_hash(model: nn.Module, ctx: DistContext) -> None:
    folder = os.environ.get(DEBUG_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"rank{ctx.rank}.sha256").write_text(parameter_sha256(model) + "\n")
