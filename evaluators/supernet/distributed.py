"""Supernet training across processes: the torchrun process group, barriers, one Ctrl-C stop for all ranks."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this call created the process group (and destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment; single process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed()
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owned)


class StopFlag:
    """Ctrl-C asks the loop to stop after the step in flight (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C interrupts as usual
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def barrier(dist: Distributed) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def any_stop(requested: bool, dist: Distributed, device: str) -> bool:
    """Whether any process was asked to stop (all must stop at the same step)."""
    if dist.world == 1:
        return requested
    import torch.distributed as tdist

    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
    return bool(flag.item())
