"""Training on several processes (``torchrun``) with one model: the process group and the few collectives it needs.

    torchrun --nproc_per_node 2 train_agent.py --preset exp1

``torchrun`` starts one process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
address; :func:`setup` joins the group (gloo on the CPU, nccl on CUDA, one GPU per rank from ``LOCAL_RANK``).
Without ``torchrun`` every helper here is the one-process identity: rank 0 of a world of 1, nothing to gather.

How a run is split: every rank draws the same permutation of the epoch's images (the same seed) and plays its
own slice of each global batch (:func:`shard`) in its own vector env; DistributedDataParallel averages the
gradients, so an update sees the whole global batch. Noise that must not depend on the number of ranks is drawn
for the global batch on every rank and sliced the same way.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os
import signal
import threading

import numpy as np
import torch
import torch.distributed as dist

from agents import shared_memory

# A rank that dies leaves the others waiting in a collective; torchrun ends them, the timeout is a backstop.
TIMEOUT = datetime.timedelta(minutes=10)


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or anything else that sets its variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's rank (0 without torchrun); known before :func:`setup`, from torchrun's variables."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0)) if launched() else 0


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1)) if launched() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes the run folder and prints."""
    return rank() == 0


def device(name: str = "auto") -> torch.device:
    """This process's torch device for ``--device name``: under torchrun, CUDA means the GPU of ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(name)
    if chosen.type != "cuda" or not launched() or world_size() == 1:
        return chosen
    local, local_world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    if chosen.index is not None:
        raise ValueError(f"--device {name}: under torchrun each process takes the GPU of its LOCAL_RANK; pass cuda")
    if torch.cuda.device_count() < local_world:
        raise ValueError(
            f"--device {name}: {local_world} processes on this machine need a GPU each, but "
            f"{torch.cuda.device_count()} are visible; start fewer (torchrun --nproc_per_node) or train on --device cpu"
        )
    return torch.device("cuda", local)


def interrupt_once() -> None:
    """Turn the first stop request into one KeyboardInterrupt and ignore the rest, so that its handler (the message
    that says how to continue) runs to the end: SIGTERM always (``kill``, a cluster's scheduler, torchrun stopping
    its workers), and under torchrun Ctrl-C too, since the terminal signals every process and torchrun signals its
    workers again."""

    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (and receives the signals)
    if launched():
        signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def setup(name: str = "auto") -> torch.device:
    """This process's device; under torchrun also joins the process group (once; left at exit)."""
    chosen = device(name)
    if launched() and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen.index or 0)  # plain "cuda" (one rank): some torch versions want an index
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        atexit.register(teardown)
    return chosen


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """Leave the process group at the end of the work, once the models wrapped in DistributedDataParallel are
    dropped. A process group that a wrapper still holds lives on to interpreter exit, whose clean-up stops gloo's
    threads mid-wait and aborts the process ("terminate called without an active exception") after all went well.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # a dropped wrapper's reference cycles, which hold the process group
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    """Whether there are other ranks to talk to."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap(model: torch.nn.Module, on: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are other ranks (it averages the gradients), else itself.
    On the CPU with every rank on this machine the gradients go through shared memory (:mod:`agents.shared_memory`),
    several times faster than gloo's all-reduce; elsewhere through the process group."""
    if not active():
        return model
    ids = [on.index] if on.type == "cuda" else None
    parallel = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if shared_memory.applies(on, world_size()):
        shared_memory.SharedMemoryAverage.attach(parallel, TIMEOUT)
    return parallel


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (what a checkpoint stores), or ``model`` itself."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def shard(rows):
    """This rank's equal, contiguous slice of ``rows`` (a global batch); ``len(rows)`` must divide by the world."""
    n = len(rows) // world_size()
    return rows[rank() * n : (rank() + 1) * n]


def rank_seed(seed: int) -> int:
    """A seed of this rank's own random stream; rank 0 keeps ``seed``, so a one-process run is unchanged."""
    return seed if rank() == 0 else int(np.random.SeedSequence((seed, rank())).generate_state(1)[0])


def _tensor_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_arrays(array: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``array`` over the ranks (every rank gets it)."""
    if not active():
        return array
    total = torch.as_tensor(np.asarray(array, dtype=np.float64), device=_tensor_device())
    dist.all_reduce(total)
    return total.cpu().numpy()


def maximum(value: float) -> float:
    """The largest ``value`` of any rank (every rank gets it): for decisions every rank must take alike."""
    if not active():
        return value
    top = torch.tensor([value], dtype=torch.float64, device=_tensor_device())
    dist.all_reduce(top, op=dist.ReduceOp.MAX)
    return float(top.item())


def gather(obj) -> list | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; ``None`` on the others."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if active():
        dist.barrier()
