"""Colour and data from anywhere through the learners: the RAM agent's command line, its run record, SB3's view."""

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import evaluate
import train_agent
from agents.sb3_envs import make_env, task_env_id

SMALL_NET = "--glimpse-hidden 32 --location-hidden 32 --core-hidden 64 --no-tensorboard --no-gif".split()


def write_colour_folder(root, seed=0, n=60):
    """Three classes told apart only by colour (a red, green or blue square somewhere on black): gray would fail."""
    rng = np.random.default_rng(seed)
    for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(n):
            image = np.zeros((24, 24, 3), np.uint8)
            y, x = rng.integers(0, 14, 2)
            image[y : y + 10, x : x + 10] = colour
            Image.fromarray(image).save(root / f"c{k}" / f"{i:02d}.png")
    return root


def test_the_ram_agent_learns_a_colour_task_far_above_chance_and_records_its_data(tmp_path, capsys):
    folder, run = write_colour_folder(tmp_path / "squares"), tmp_path / "run"
    argv = ["--image-folder", str(folder), "--n-epochs", "4", "--batch-size", "16", "--test-rollouts", "1"]
    assert train_agent.main([*argv, *SMALL_NET, "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "RAM/Images-v0" and config["env_kwargs"]["image_folder"] == str(folder)
    assert config["data"]["name"] == f"folder:{folder.resolve()}" and len(config["data"]["test"]) == 16
    errors = [float(line.split()[4][:-1]) for line in capsys.readouterr().out.splitlines() if "test error of" in line]
    assert errors and max(errors) < 20.0  # chance is 66.7% error on three classes

    # the same folder with other pictures in it: evaluate.py refuses in one line rather than score other data
    for path in folder.rglob("*.png"):
        Image.fromarray(255 - np.asarray(Image.open(path))).save(path)
    assert evaluate.main([str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was trained on folder:" in err[0] and "point --data-dir at the data" in err[0]


def test_train_agent_takes_cifar10_by_name_from_data_dir(tmp_path, capsys):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, 20))}
        (folder / name).write_bytes(pickle.dumps(batch))
    run = tmp_path / "run"
    argv = ["--data", "CIFAR10", "--data-dir", str(tmp_path / "data"), "--n-epochs", "1", "--batch-size", "30"]
    assert train_agent.main([*argv, *SMALL_NET, "--test-rollouts", "1", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["env_kwargs"]["dataset"] == "CIFAR10" and config["data"]["name"] == "CIFAR10"
    assert "on 20 images" in capsys.readouterr().out


def test_train_agent_names_a_missing_cifar10_in_one_line(tmp_path, capsys, monkeypatch):
    from ram_env import sources

    monkeypatch.setattr(sources, "_download", lambda *a: "no network")
    argv = ["--data", "CIFAR10", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "run")]
    assert train_agent.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CIFAR10: missing" in err[0] and "cifar-10-batches-py" in err[0]


@pytest.mark.parametrize("algo", ["ppo", "ppo_glimpse", "recurrent_ppo_glimpse"])
def test_sb3_sees_a_colour_task_that_passes_its_check_env(algo):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env

    rng = np.random.default_rng(0)
    kwargs = dict(images=rng.integers(0, 256, (20, 16, 24, 3)).astype(np.uint8), labels=rng.integers(0, 3, 20))
    assert task_env_id(kwargs) == "RAM/Images-v0"
    env = make_env(algo, kwargs)
    check_env(env)
    assert gym.make("RAM/Images-v0", **kwargs).observation_space["glimpse"].shape[1] == 3


def test_the_sb3_glimpse_encoder_reads_colour_glimpses():
    pytest.importorskip("stable_baselines3")
    import torch

    from agents.sb3_features import GlimpseHistoryExtractor

    rng = np.random.default_rng(0)
    kwargs = dict(images=rng.integers(0, 256, (20, 32, 32, 3)).astype(np.uint8), labels=rng.integers(0, 3, 20))
    env = make_env("ppo_glimpse", kwargs)
    extractor = GlimpseHistoryExtractor(env.observation_space, code=16, hidden=8)
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    assert extractor.encoder.what[0].in_features == 2 * 3 * 8 * 8  # two 8 px patches, three channels
    assert extractor(batch).shape == (1, extractor.features_dim)
