"""Learning curves: a RAM run and a Stable-Baselines3 run read through one contract and drawn on one figure."""

import json

import numpy as np
import pytest

from agents import curves, sb3
from agents.runlog import RunLog

TASK = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)


def _fake_ram_run(run_dir):
    """A RAM agent's run folder as the agent writes it: config.json and metrics.csv through RunLog."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"learner": "ram", "env_id": "RAM/MNIST-v0"}))
    log = RunLog(run_dir, tensorboard=False)
    for epoch in (1, 2, 3):
        log.write(epoch=epoch, env_steps=epoch * 330_000, val_error=40.0 / epoch, elapsed_seconds=epoch * 12.0)
    log.close()
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("curves")
    ram = _fake_ram_run(root / "ram")
    sb3.train(
        "ppo",
        dict(TASK, data_dir=data_dir),
        root / "ppo",
        512,
        n_envs=4,
        eval_episodes=32,
        eval_every=256,
        hyperparameters=dict(n_steps=64, batch_size=128, n_epochs=1),
        progress_bar=False,
        tensorboard=False,
    )
    return ram, root / "ppo"


def test_ram_and_sb3_runs_share_env_steps_and_minutes(runs):
    ram, ppo = runs
    fig = curves.figure([ram, ppo])
    by_steps, by_time = fig.axes
    assert by_steps.get_xlabel().startswith("env steps") and by_time.get_xlabel().startswith("training time")
    for ax, key, scale in ((by_steps, "env_steps", 1.0), (by_time, "elapsed_seconds", 1 / 60)):
        lines = ax.get_lines()
        assert len(lines) == 2
        for line, run in zip(lines, (ram, ppo)):
            m = curves.read_metrics(run)
            np.testing.assert_allclose(line.get_xdata(), np.array(m[key]) * scale)
            np.testing.assert_allclose(line.get_ydata(), m["val_error"])
    assert curves.read_metrics(ppo)["env_steps"] == [256.0, 512.0]
    labels = [t.get_text() for t in by_time.get_legend().get_texts()]
    assert labels == ["ram (RAM, RAM/MNIST-v0)", "ppo (SB3 ppo)"]


def test_plot_writes_a_png(runs, tmp_path):
    out = curves.plot(list(runs), tmp_path / "sub" / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_without_env_steps_fall_back_to_epochs(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.csv").write_text("epoch,val_error,elapsed_seconds\n1,30,10\n2,20,20\n")
    by_epoch, _ = curves.figure([old]).axes
    assert by_epoch.get_xlabel() == "epoch"
    np.testing.assert_allclose(by_epoch.get_lines()[0].get_xdata(), [1, 2])


def test_missing_run_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path / "no-run"), "--out", str(tmp_path / "c.png")])
    assert "no metrics.csv in" in capsys.readouterr().err


def test_reach_prints_the_first_epoch_at_or_below_the_error_and_its_minutes_and_draws_nothing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    ram = _fake_ram_run(tmp_path / "ram")  # val error 40, 20, 13.3 after 12, 24, 36 s
    assert curves.time_to(ram, 20.0) == (2, 20.0, 0.4)
    assert curves.time_to(ram, 13.0) is None
    assert curves.main([str(ram), "--reach", "25"]) == 0
    assert capsys.readouterr().out == f"{ram}: val error <= 25% first at epoch 2 (20%), after 0.4 min of training\n"
    assert curves.main([str(ram), "--reach", "10"]) == 0
    assert capsys.readouterr().out == f"{ram}: val error never <= 10% (best 13.3333%)\n"
    assert list(tmp_path.iterdir()) == [ram]  # no curves.png
