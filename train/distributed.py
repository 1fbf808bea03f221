"""Where a training run executes: its device, and the process group when torchrun starts it.

``colcomb train --device auto|cpu|cuda`` picks the device (``auto``: CUDA when torch sees a GPU).
On CUDA the forward pass runs under bf16 autocast. Under ``torchrun --nproc-per-node N`` (which
sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``) the run joins torch's process group, NCCL on
GPUs and gloo on CPUs, and the model is wrapped in ``DistributedDataParallel``: every rank trains
on its share of each minibatch, gradients are averaged, rank 0 combines columns and broadcasts
the masks, and only rank 0 writes files. Nothing here schedules work of its own: torch's engine
does it all.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from colcomb.core.errors import ColcombError

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class Runtime:
    """The device of this process and its place in the process group (rank 0 of 1 alone)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # this Runtime started the process group and closes it

    @property
    def main(self) -> bool:
        """Whether this process logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self):
        """bf16 autocast on CUDA, nothing elsewhere."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` itself alone, or in ``DistributedDataParallel`` under torchrun."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum of a tensor over the ranks (the tensor itself alone)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        return value

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ColcombError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def setup(device: str = "auto") -> Runtime:
    """The Runtime for ``--device``; joins the process group when torchrun started several ranks."""
    if device not in DEVICES:
        raise ColcombError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ColcombError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
    kind = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ColcombError(f"WORLD_SIZE={world} must be at least 1")
    if world == 1:
        return Runtime(torch.device(kind))
    import torch.distributed as dist

    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if kind == "cuda":
        if local >= torch.cuda.device_count():
            raise ColcombError(
                f"rank {rank} wants GPU {local}, but only {torch.cuda.device_count()} are visible; "
                f"start at most that many processes per node"
            )
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    return Runtime(dev, rank=dist.get_rank(), world=dist.get_world_size(), owns_group=owns)
