"""The run-folder contract (agents/runlog.py) as both kinds of learner write it."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import runlog, sb3
from agents.training import loop
from agents.training.config import TrainConfig

MNIST = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)


def scalar_tags(run_dir: Path) -> set[str]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    ram_dir, sb3_dir = tmp_path_factory.mktemp("ram"), tmp_path_factory.mktemp("sb3")
    config = TrainConfig(batch_size=64, n_epochs=2, train_images=256, eval_batch=250, data_dir=data_dir, device="cpu")
    loop.train(config, ram_dir)
    sb3.train("ppo", {**MNIST, "data_dir": data_dir}, sb3_dir, 1024, n_envs=2, eval_episodes=50, progress_bar=False)
    return ram_dir, sb3_dir


def test_ram_and_sb3_runs_write_the_same_tensorboard_tags(runs):
    ram_tags, sb3_tags = (scalar_tags(run) for run in runs)
    shared = {"val/error", "train/accuracy", "perf/samples_per_second"}
    assert shared <= ram_tags and shared <= sb3_tags, (ram_tags, sb3_tags)
    # Every tag but the glimpses, which only an agent that decides when to answer writes.
    assert set(runlog.TAGS.values()) - {"train/glimpses"} <= ram_tags
    assert "train/glimpses" not in ram_tags


def test_ram_and_sb3_metrics_have_the_same_columns_in_percent(runs):
    for run in runs:
        metrics = runlog.read_metrics(run)
        assert tuple(metrics) == runlog.METRICS
        assert all(0 <= v <= 100 for v in metrics["val_error"] + metrics["train_accuracy"])
        assert metrics["env_steps"] == sorted(metrics["env_steps"]) and metrics["env_steps"][0] > 0
