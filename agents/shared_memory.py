"""Gradient averaging through shared memory, for DistributedDataParallel ranks that all run on one machine.

gloo sends each bucket of gradients over the loopback network and wakes its own threads to do it. On a small
machine that costs an exp1 update of two ranks about 3 ms, mostly in waking those threads, not in moving the
bytes. Ranks on one machine can instead each write their gradients, divided by the number of ranks, to their own
row of one shared buffer, wait until every rank has written (watching a counter per rank in the same buffer), and
each sum the rows in rank order: every rank gets the same bits, the average one process would compute up to float
rounding. gloo's own sources have since gained the same for CPU tensors on one machine, but not the gloo this torch
ships; this is a DDP communication hook. The process group (gloo) still carries everything else.

:func:`applies` says when it is used: CPU training, every rank on this machine, x86-64 (whose memory order makes
a counter written after the gradients safe to trust), and a ``/dev/shm`` with room for the buffer.
"""

import datetime
import os
import platform
import tempfile
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

SHM_DIR = "/dev/shm"
COUNTER = torch.int64


def applies(device: torch.device, world: int) -> bool:
    """Whether DDP's gradients can be averaged through shared memory here (see the module's docstring)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", -1))
    return device.type == "cpu" and world > 1 and local == world and platform.machine() in ("x86_64", "AMD64")


class SharedMemoryAverage:
    """Two sets of a row of ``n_floats`` gradients per rank, and a counter per rank, in ``buffer`` (bytes that every
    rank maps): the state of the DDP communication hook that :meth:`attach` registers. ``n_floats`` is what one
    backward averages, so any bucket fits."""

    def __init__(self, buffer: torch.Tensor, world: int, rank: int, n_floats: int, timeout: float):
        floats = 2 * world * n_floats  # two sets of rows (see average)
        self.rows = buffer[: 4 * floats].view(torch.float32).view(2, world, n_floats)
        self.counters = buffer[4 * floats :].view(COUNTER)  # buckets each rank has written so far
        self.rank, self.timeout, self.calls = rank, timeout, 0

    @staticmethod
    def nbytes(world: int, n_floats: int) -> int:
        return 4 * 2 * world * n_floats + 8 * world

    @classmethod
    def create(cls, n_floats: int, timeout: datetime.timedelta) -> "SharedMemoryAverage | None":
        """A new shared buffer for ``n_floats`` gradients a backward, or None if this machine's shared memory has no
        room for it. Every rank must call it (it is a collective)."""
        world, rank, nbytes = dist.get_world_size(), dist.get_rank(), cls.nbytes(dist.get_world_size(), n_floats)
        path = [create_file(nbytes) if rank == 0 else None]
        dist.broadcast_object_list(path, src=0)
        if path[0] is None:
            return None
        buffer = torch.from_file(path[0], shared=True, size=nbytes, dtype=torch.uint8)
        dist.barrier()  # every rank has it mapped: the name can go, so that nothing is left behind however we end
        if rank == 0:
            os.unlink(path[0])
        return cls(buffer, world, rank, n_floats, timeout.total_seconds())

    @classmethod
    def attach(cls, model: DistributedDataParallel, timeout: datetime.timedelta) -> "SharedMemoryAverage | None":
        """Average ``model``'s gradients through shared memory from now on; None (and gloo goes on doing it) if
        there is no room. Every rank must call it."""
        state = cls.create(sum(p.numel() for p in model.module.parameters() if p.requires_grad), timeout)
        if state is not None:
            model.register_comm_hook(state, _hook)
        return state

    def average(self, flat: torch.Tensor) -> torch.Tensor:
        """Replace this rank's ``flat`` bucket of gradients by the ranks' average, once every rank has written.

        Buckets take the two sets of rows in turn. A rank writes a set again only after every rank has written the
        bucket in between, which each does after reading its sum of the set: so no rank overwrites rows still read.
        """
        if flat.dtype != torch.float32:
            raise TypeError(f"shared-memory averaging takes float32 gradients, got {flat.dtype}")
        rows = self.rows[self.calls % 2, :, : flat.numel()]
        self.calls += 1
        torch.div(flat, len(rows), out=rows[self.rank])  # divided first, as DDP's own all-reduce hook does
        self.counters[self.rank] = self.calls
        self._wait(self.calls)
        return torch.sum(rows, 0, out=flat)

    def _wait(self, calls: int) -> None:
        """Until every rank has written ``calls`` buckets; yielding the core, for machines with fewer cores than
        ranks. A rank that stops is ended by torchrun (its signal interrupts this loop); the timeout is a backstop."""
        start = time.monotonic()
        while int(self.counters.min()) < calls:
            os.sched_yield()
            if time.monotonic() - start > self.timeout:
                raise RuntimeError(
                    f"rank {self.rank} waited {self.timeout:g} s for the other ranks' gradients: one has stopped"
                )


def _hook(state: SharedMemoryAverage, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    done = torch.futures.Future()
    done.set_result(state.average(bucket.buffer()))
    return done


def create_file(nbytes: int) -> str | None:
    """A new file of ``nbytes`` in shared memory (its space reserved now, not on first touch), or None where there
    is no shared memory this process may write or no room in it."""
    try:
        fd, path = tempfile.mkstemp(prefix="ram-gym-gradients-", dir=SHM_DIR)
    except OSError:  # no /dev/shm, or not ours to write
        return None
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError:
        os.unlink(path)
        return None
    finally:
        os.close(fd)
    return path
