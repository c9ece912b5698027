"""Ray RLlib's PPO on the RAM tasks (agents/rllib.py): short local runs, their run folders, scoring, bad input.

The runs share one local Ray instance of two CPUs; the adapter's tests skip where the extra is not installed
(``pip install -e '.[rllib]'``, which ``make test`` does). The command-line errors need no Ray.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train_agent
from agents import sb3
from agents.runlog import METRICS, read_metrics

ROOT = Path(__file__).parent.parent
TASK = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)
BATCH = 96  # env steps per training iteration: 4 envs x 24 steps, 16 episodes
SMALL = dict(train_batch_size_per_learner=BATCH, minibatch_size=48, num_epochs=1)
RUN = dict(n_envs=4, eval_episodes=50, eval_every=BATCH, hyperparameters=SMALL, tensorboard=False)


@pytest.fixture(scope="module")
def rllib():
    pytest.importorskip("ray.rllib", reason="the RLlib extra is not installed: pip install -e '.[rllib]'")
    import ray

    from agents import rllib

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    yield rllib
    ray.shutdown()


@pytest.fixture(scope="module")
def run(rllib, tmp_path_factory, data_dir):
    """Three iterations of 96 env steps, sampled by one env runner in its own process; a round after each."""
    run_dir = tmp_path_factory.mktemp("rllib") / "run"
    rllib.train(dict(TASK, data_dir=data_dir), run_dir, 3 * BATCH, num_env_runners=1, **RUN)
    return run_dir


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_follows_the_runlog_contract(run):
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv", "best", "last"}
    assert not list(run.glob(".*tmp*"))
    config = json.loads((run / "config.json").read_text())
    assert config["learner"] == "rllib" and config["algo"] == "rllib_ppo" and config["num_env_runners"] == 1
    assert config["wrappers"] == ["GlimpseHistoryWrapper", "FlatActionWrapper"]
    table = rows(run)
    assert tuple(table[0]) == METRICS
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert [int(r["env_steps"]) for r in table] == [BATCH, 2 * BATCH, 3 * BATCH]
    m = read_metrics(run)
    assert all(0 <= v <= 100 for v in m["val_error"] + m["train_accuracy"])  # percents
    assert all(b >= a > 0 for a, b in zip(m["elapsed_seconds"], m["elapsed_seconds"][1:]))


def test_curves_draws_the_run_under_its_learner(run):
    from agents import curves

    by_steps, by_time = curves.figure([run]).axes
    np.testing.assert_allclose(by_steps.get_lines()[0].get_xdata(), [BATCH, 2 * BATCH, 3 * BATCH])
    assert [t.get_text() for t in by_time.get_legend().get_texts()] == ["run (RLlib rllib_ppo)"]


def test_best_is_the_module_with_the_lowest_val_error_in_percent(rllib, run, data_dir):
    correct, _ = rllib.evaluate(run, split="val", data_dir=data_dir, limit=50)
    assert 100.0 * (1.0 - correct.mean()) == pytest.approx(min(read_metrics(run)["val_error"]))


def test_batched_scoring_equals_the_module_on_sb3s_ppo_env(rllib, run, data_dir):
    """The vector env's scores are those of the module acting on the single env that SB3's ppo trains on."""
    correct, config = rllib.evaluate(run, split="test", data_dir=data_dir, limit=40, batch_size=16)
    module, _ = rllib.load(run)
    predictor = rllib.ModulePredictor(module)
    env = sb3.make_env("ppo", config["env"], "test", data_dir)
    single = []
    for i in range(40):
        obs, _ = env.reset(seed=0, options={"index": i})
        terminated = False
        while not terminated:
            action, _ = predictor.predict(obs[None])
            obs, _, terminated, _, info = env.step(action[0])
        single.append(info["correct"])
    assert correct.tolist() == single


def test_evaluate_py_scores_the_run_without_starting_ray(rllib, run, data_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), str(run), "--limit", "100", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"test error \d+\.\d\d% \(95% CI \d+\.\d\d-\d+\.\d\d%\) on 100 images — rllib_ppo on MNIST \(\d+s\)\n",
        result.stdout,
    ), result.stdout
    assert "Ray instance" not in result.stderr  # "Started a local Ray instance" when ray.init runs


def test_resume_continues_the_rows_of_the_last_checkpoint(rllib, run, tmp_path, data_dir):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = rows(copy)
    rllib.train(dict(TASK, data_dir=data_dir), copy, 4 * BATCH, resume=True, num_env_runners=0, n_envs=4)
    after = rows(copy)
    assert after[:3] == before and [int(r["epoch"]) for r in after] == [1, 2, 3, 4]
    assert int(after[-1]["env_steps"]) == 4 * BATCH
    assert json.loads((copy / "last" / "ram_round.json").read_text()) == {"epoch": 4}


def test_max_minutes_stops_after_the_first_round_and_the_bar_counts_minutes(rllib, tmp_path, data_dir, capsys):
    """No step budget (``None``): the clock alone ends the run, and the progress bar counts its minutes."""
    rllib.train(dict(TASK, data_dir=data_dir), tmp_path / "run", None, num_env_runners=0, max_minutes=1e-9, **RUN)
    assert [int(r["env_steps"]) for r in rows(tmp_path / "run")] == [BATCH]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["total_timesteps"] is None
    assert re.search(r"min \[00:\d\d, 96 env steps\]", capsys.readouterr().err.split("\r")[-1])
    # Resumed with its budget spent, it learns nothing more and writes no row.
    task, run = dict(TASK, data_dir=data_dir), tmp_path / "run"
    rllib.train(task, run, 100 * BATCH, resume=True, num_env_runners=0, max_minutes=1e-9)
    assert [int(r["env_steps"]) for r in rows(tmp_path / "run")] == [BATCH]


def test_graded_run_trains_on_the_graded_reward_and_counts_right_answers(rllib, tmp_path, data_dir):
    run_dir = tmp_path / "run"
    summary = rllib.train(dict(TASK, data_dir=data_dir), run_dir, BATCH, num_env_runners=0, reward="graded", **RUN)
    assert summary["best_val_error"] == min(read_metrics(run_dir)["val_error"])
    assert (summary["best"], summary["last"]) == (str(run_dir / "best"), str(run_dir / "last"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["wrappers"][-1] == "GradedRewardWrapper" and config["hyperparameters"]["lambda_"] == 0.5
    accuracy = read_metrics(run_dir)["train_accuracy"][0]
    assert 0 <= accuracy <= 100 and accuracy == 100 * round(accuracy / 100 * 16) / 16  # right answers of 16


def test_env_creator_builds_sb3_ppos_env_with_the_graded_reward(rllib, data_dir):
    env = rllib.make_env({"env": dict(TASK, data_dir=data_dir), "reward": "graded"})
    ppo = sb3.make_env("ppo", dict(TASK, data_dir=data_dir), "train", reward="graded")
    assert env.observation_space == ppo.observation_space and env.action_space == ppo.action_space
    assert type(env).__name__ == "GradedRewardWrapper"
    obs, _ = env.reset(seed=0)
    _, reward, _, _, _ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert reward == pytest.approx(-np.log(10))  # equal scores: the true class has probability 1/10


def test_more_env_runners_than_cpus_is_refused_before_the_run_folder(rllib, tmp_path, data_dir):
    with pytest.raises(ValueError, match="--num-env-runners 3 needs a CPU each; the Ray cluster has 2"):
        rllib.train(dict(TASK, data_dir=data_dir), tmp_path / "run", BATCH, num_env_runners=3, **RUN)
    assert not (tmp_path / "run").exists()


def test_train_agent_trains_rllib_ppo_and_reports_the_test_error(rllib, capsys, tmp_path, data_dir):
    argv = ["--algo", "rllib_ppo", "--total-timesteps", "2048", "--num-env-runners", "0", "--no-tensorboard"]
    assert train_agent.main([*argv, "--data-dir", data_dir, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"test error of best/: \d+\.\d\d% \(95% CI .*\) on 10000 images", out), out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["num_env_runners"] == 0
    code, err = call(["--out", tmp_path / "run", "--resume", "--reward", "graded"], capsys)
    assert code == 2 and "holds a run with --reward binary, not graded" in err, err


def call(argv, capsys) -> tuple[int, str]:
    try:
        code = train_agent.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--algo", "ppo", "--num-env-runners", "2"], "--num-env-runners is a setting of RLlib (--algo rllib_ppo)"),
        (["--ray-address", "auto"], "--ray-address is a setting of RLlib (--algo rllib_ppo), not of --algo ram"),
        (["--algo", "rllib_ppo", "--num-env-runners", "-1"], "--num-env-runners: must be an integer >= 0, got -1"),
        (["--algo", "rllib_ppo", "--n-envs", "0"], "--n-envs: must be a positive integer, got 0"),
        (
            ["--algo", "rllib_ppo", "--lr", "0.1"],
            "--lr is a setting of the RAM agent (--algo ram), not of --algo rllib",
        ),
        (["--algo", "a2c", "--ray-address", "x:1"], "--ray-address is a setting of RLlib (--algo rllib_ppo), not of"),
        (["--algo", "rllib_ppo", "--device", "cuda"], "rllib_ppo's learner runs on the CPU"),
    ],
)
def test_train_agent_names_a_bad_rllib_flag_in_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # --device cuda passes the device check
    code, err = call([*argv, "--out", tmp_path / "run"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("train_agent.py: error: ") and needle in err, err
    assert not (tmp_path / "run").exists()


def test_rllib_ppo_without_ray_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    import agents

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    monkeypatch.delitem(sys.modules, "agents.rllib", raising=False)
    monkeypatch.delattr(agents, "rllib", raising=False)
    code, err = call(["--algo", "rllib_ppo", "--out", tmp_path / "run"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("train_agent.py: error: --algo rllib_ppo needs Ray RLlib")
    assert "install it with pip install -e '.[rllib]'" in err
    assert not (tmp_path / "run").exists()
