"""Averaging gradients through shared memory (``agents/shared_memory.py``) within one process: ranks played by
threads over one buffer. The two-rank DDP checks are in ``test_distributed.py``."""

import os
import threading
from pathlib import Path

import pytest
import torch

from agents import shared_memory
from agents.shared_memory import SharedMemoryAverage

CPU = torch.device("cpu")


def test_applies_only_on_the_cpu_with_every_rank_on_this_machine_of_x86(monkeypatch):
    monkeypatch.setattr(shared_memory.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert shared_memory.applies(CPU, 2)
    assert not shared_memory.applies(torch.device("cuda", 0), 2)
    assert not shared_memory.applies(CPU, 4)  # two machines of two ranks each
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert not shared_memory.applies(CPU, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(shared_memory.platform, "machine", lambda: "aarch64")  # a weaker memory order
    assert not shared_memory.applies(CPU, 2)


def test_ranks_get_the_same_average_of_every_bucket_over_repeated_backwards():
    world, sizes, n_floats = 3, [5, 3, 2], 10  # three buckets a backward, covering the 10 gradients
    buffer = torch.zeros(SharedMemoryAverage.nbytes(world, n_floats), dtype=torch.uint8)
    data = torch.randn(4, world, n_floats)  # four backwards; each rank's own gradients
    results = torch.zeros(4, world, n_floats)

    def rank(r: int) -> None:
        state = SharedMemoryAverage(buffer, world, r, n_floats, timeout=60)
        for k in range(len(data)):
            start = 0
            for n in sizes:
                flat = data[k, r, start : start + n].clone()
                results[k, r, start : start + n] = state.average(flat)
                start += n

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    for r in range(world):
        assert torch.equal(results[:, r], results[:, 0])  # the same bits on every rank
    torch.testing.assert_close(results[:, 0], data.mean(1))


def test_a_rank_that_never_writes_ends_the_wait_with_an_error_that_says_so():
    buffer = torch.zeros(SharedMemoryAverage.nbytes(2, 4), dtype=torch.uint8)
    state = SharedMemoryAverage(buffer, world=2, rank=0, n_floats=4, timeout=0.05)
    with pytest.raises(RuntimeError, match="rank 0 waited 0.05 s for the other ranks' gradients: one has stopped"):
        state.average(torch.ones(4))


def test_no_room_in_shared_memory_gives_no_buffer_and_leaves_no_file(monkeypatch):
    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    before = set(Path(shared_memory.SHM_DIR).glob("ram-gym-gradients-*"))
    monkeypatch.setattr(os, "posix_fallocate", full)
    assert shared_memory.create_file(1 << 20) is None
    assert set(Path(shared_memory.SHM_DIR).glob("ram-gym-gradients-*")) == before


def test_no_shared_memory_folder_gives_no_buffer(monkeypatch, tmp_path):
    monkeypatch.setattr(shared_memory, "SHM_DIR", str(tmp_path / "missing"))
    assert shared_memory.create_file(1 << 20) is None
