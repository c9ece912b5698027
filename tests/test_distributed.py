"""Training and scoring on two processes (torchrun's variables, gloo on the CPU) against one process.

One module-scoped fixture starts two ranks once; they train, score and resume in a temporary folder, and each
test checks one thing they left there against what one process does.
"""

import contextlib
import json
import os
import platform
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from agents import checkpoint, distributed, shared_memory
from agents.training import loop, run_state, scoring
from agents.training.config import TrainConfig, make_envs, make_model

WORLD = 2


def small_config(data_dir, **overrides) -> TrainConfig:
    # Centre start on the plain 28x28 task: a training episode depends only on its image and the sampled
    # locations, which are drawn for the global batch, so two ranks can play exactly what one process plays.
    base = dict(
        env_kwargs=dict(start="center"),
        batch_size=16,
        lr=3e-3,
        n_epochs=1,
        train_images=64,
        eval_batch=500,
        data_dir=data_dir,
        device="cpu",
        model=dict(glimpse_hidden=16, location_hidden=16, core_hidden=32),
        tensorboard=False,
    )
    return TrainConfig(**{**base, **overrides})


def eval_setup(data_dir):
    """A fixed model and a val env of 64 envs: 4 sampled rollouts of 16 images a chunk. The wide location policy
    makes the flags depend on the sampled locations."""
    config = small_config(data_dir, model=dict(glimpse_hidden=16, location_hidden=16, core_hidden=32, std=1.0))
    envs = make_envs(config, "val", 64)
    torch.manual_seed(0)
    return make_model(config, envs), envs


def rank_main(rank: int, port: int, tmp: Path, data_dir: str) -> None:
    """One rank, as torchrun would start it: everything the tests below look at."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    config = small_config(data_dir)
    with open(tmp / f"stdout{rank}.txt", "w") as out, contextlib.redirect_stdout(out):
        distributed.setup("cpu")
        averaged_gradients(rank, tmp)
        try:
            loop.train(replace(config, batch_size=15), tmp / "odd")
        except ValueError as e:
            (tmp / f"odd_batch{rank}.txt").write_text(str(e))
        loop.train(config, tmp / f"run{rank}")  # each rank names its own folder: only rank 0's may appear
        model, envs = eval_setup(data_dir)
        played, reset = [], envs.reset
        envs.reset = lambda **kwargs: played.append(kwargs["options"]["indices"]) or reset(**kwargs)
        scoring.evaluate(model, envs, rollouts=4, limit=37)
        first_call = np.concatenate(played)
        correct = scoring.evaluate(model, envs, rollouts=4, limit=1000)
        np.savez(tmp / f"eval{rank}.npz", correct=correct, played=first_call)
        config = replace(config, n_epochs=2)
        loop.train(config, tmp / "straight")
        loop.train(replace(config, max_minutes=1e-9), tmp / "stopped")  # stops after its first epoch
        loop.train(config, tmp / "stopped", resume=True)
        distributed.finish()
        (tmp / f"finished{rank}.txt").write_text(str(torch.distributed.is_initialized()))


def averaged_gradients(rank: int, tmp: Path) -> None:
    """The gradients DDP averages over the ranks, by gloo and through shared memory, in several buckets a backward
    (from the second on; of 0.1 MB here, or one large weight); each rank's input is its own, and three backwards
    take turns over the shared rows."""
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(rank))
    grads, backwards = {}, 3
    for way in ("gloo", "shared"):
        torch.manual_seed(0)
        layers = [torch.nn.Linear(8, 600), torch.nn.ReLU(), torch.nn.Linear(600, 600), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(600, 3))
        parallel = torch.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.1)
        state = shared_memory.SharedMemoryAverage.attach(parallel, distributed.TIMEOUT) if way == "shared" else None
        for _ in range(backwards):
            calls = state.calls if state else 0
            net.zero_grad()
            parallel(x).square().sum().backward()
        grads[way] = torch.cat([p.grad.flatten() for p in net.parameters()]).numpy()
    buckets = state.calls - calls  # in the last backward, after DDP has rebuilt its buckets
    used = shared_memory.applies(torch.device("cpu"), WORLD)  # what training with distributed.wrap does here
    np.savez(tmp / f"grads{rank}.npz", **grads, buckets=buckets, used=used)


@pytest.fixture(scope="module")
def ranks(data_dir, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ranks")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(port, tmp, data_dir), nprocs=WORLD, join=True)
    return tmp


def weights(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run, "last.pt")["model"]


def test_two_ranks_reach_the_weights_of_one_process(ranks, data_dir, tmp_path):
    config = small_config(data_dir)
    loop.train(config, tmp_path / "one")  # 4 updates of the same 16-image global batches
    one, two = weights(tmp_path / "one"), weights(ranks / "run0")
    assert list(one) == list(two)  # the bare network's names, no "module." prefix
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6)
    torch.manual_seed(config.seed)
    start = make_model(config, make_envs(config, "train", 1)).state_dict()
    assert all(not torch.equal(one[name], start[name]) for name in one)  # the updates moved every weight


def test_shared_memory_averages_every_bucket_to_the_same_bits_on_every_rank_as_gloo_does(ranks):
    results = [np.load(ranks / f"grads{rank}.npz") for rank in range(WORLD)]
    assert results[0]["buckets"] > 1
    np.testing.assert_array_equal(results[1]["shared"], results[0]["shared"])
    np.testing.assert_allclose(results[0]["shared"], results[0]["gloo"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(results[0]["gloo"], 0)
    if platform.machine() == "x86_64":
        assert results[0]["used"]  # so the two ranks' training above averaged through shared memory


def test_only_rank_0_writes_and_prints(ranks):
    assert not (ranks / "run1").exists()
    assert sorted(p.name for p in (ranks / "run0").iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]
    assert json.loads((ranks / "run0" / "config.json").read_text())["world_size"] == WORLD
    assert "epoch   1" in (ranks / "stdout0.txt").read_text()
    assert (ranks / "stdout1.txt").read_text() == ""


def test_a_checkpoint_of_two_ranks_loads_and_scores_without_torchrun(ranks, data_dir):
    model, config = run_state.load_model(ranks / "run0")
    val_error = scoring.score_val(model, make_envs(config, "val", 500), config, "cpu")
    with open(ranks / "run0" / "metrics.csv") as f:
        assert float(f.read().splitlines()[-1].split(",")[4]) == pytest.approx(val_error, abs=1e-4)


def test_scoring_splits_the_images_across_ranks_once_each_and_matches_one_process(ranks, data_dir):
    model, envs = eval_setup(data_dir)
    alone = scoring.evaluate(model, envs, rollouts=4, limit=1000)  # sampled locations, 16 images a chunk
    results = [np.load(ranks / f"eval{rank}.npz") for rank in range(WORLD)]
    for result in results:
        np.testing.assert_array_equal(result["correct"], alone)
    # Of 37 images, rank 0 played chunks 0 and 2 (images 0-15, 32-36 padded with themselves), rank 1 chunk 1.
    mine = [set(result["played"].tolist()) for result in results]
    assert mine == [set(range(16)) | set(range(32, 37)), set(range(16, 32))]


def test_resume_under_two_ranks_ends_where_an_uninterrupted_run_does(ranks, data_dir):
    assert checkpoint.load(ranks / "stopped", "last.pt")["epoch"] == 2
    straight, resumed = weights(ranks / "straight"), weights(ranks / "stopped")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
    config = replace(small_config(data_dir), n_epochs=3)
    with pytest.raises(checkpoint.CheckpointError, match="trained on 2 process.*torchrun --nproc_per_node 2"):
        loop.train(config, ranks / "stopped", resume=True)


def test_finish_leaves_the_process_group_on_every_rank(ranks):
    # mp.spawn raises if a rank aborts on its way out, as gloo can when a process group outlives the work
    assert [(ranks / f"finished{r}.txt").read_text() for r in range(WORLD)] == ["False"] * WORLD


def test_a_global_batch_that_does_not_split_over_the_ranks_stops_before_training(ranks):
    for rank in range(WORLD):
        assert (ranks / f"odd_batch{rank}.txt").read_text() == (
            "batch_size 15 is split over 2 processes: make it a multiple of 2"
        )
    assert not (ranks / "odd").exists()
