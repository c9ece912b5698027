"""train_agent.py and evaluate.py as a user runs them."""

import json

import pytest

import evaluate
import train_agent

TINY = [
    "--n_epochs",
    "1",
    "--train-images",
    "256",
    "--batch_size",
    "32",
    "--glimpse_hidden",
    "16",
    "--location_hidden",
    "16",
    "--core_hidden",
    "32",
]


def test_train_then_evaluate(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_agent.main(TINY + ["--out", str(run)]) == 0
    for name in ("config.json", "metrics.csv", "best.pt", "last.pt", "best.gif"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "RAM/MNIST-v0" and config["model"]["core_hidden"] == 32
    assert "test error of best.pt" in capsys.readouterr().out
    assert evaluate.main([str(run), "--limit", "200", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "val error" in out and "on 200 images" in out
    assert evaluate.main([str(run), "--gif", str(tmp_path / "e.gif"), "--episodes", "4"]) == 0
    assert (tmp_path / "e.gif").stat().st_size > 0
    # A finished run refuses to be overwritten, and resumes only with --resume.
    with pytest.raises(SystemExit):
        train_agent.main(TINY + ["--out", str(run)])
    assert "already holds a run" in capsys.readouterr().err


def test_seed_command_lines_and_presets_parse():
    # The seed's exp3 command line, unchanged.
    args = train_agent.parser().parse_args(
        "--data MNIST --translated_size 60 --n_clutter 4 --clutter_size 8 --n_glimpses 8 --patch_size 12 --n_patches 3 --scale 2 --std 0.25 --seed 1".split()
    )
    env_id, kwargs = train_agent.task_of(train_agent.settings(args))
    assert env_id == "RAM/ClutteredMNIST60-v0" and kwargs["n_clutter"] == 4 and kwargs["patch_size"] == 12
    s = train_agent.settings(
        train_agent.parser().parse_args(["--preset", "exp4", "--std", "0.2", "--glimpse_net", "conv"])
    )
    assert s["translated_size"] == 100 and s["n_patches"] == 4 and s["std"] == 0.2 and s["glimpse_net"] == "conv"
    assert train_agent.task_of(s)[0] == "RAM/ClutteredMNIST100-v0"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch_size", "0"], "must be a positive integer"),
        (["--lr", "-1"], "must be positive"),
        (["--data", "CIFAR"], "invalid choice"),
        (["--preset", "exp9"], "invalid choice"),
        (["--resume", "--out", "/nonexistent/run"], "holds no run to continue"),
        (["--n_clutter", "4"], "clutter needs a translated canvas"),
    ],
)
def test_bad_flags_are_named(argv, message, capsys, data_dir, tmp_path):
    try:
        code = train_agent.main(argv + ([] if "--out" in argv else ["--out", str(tmp_path / "run")]))
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_evaluate_reports_bad_checkpoints(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "nothing.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("junk")
    assert evaluate.main([str(tmp_path / "junk.pt")]) == 2
    assert "truncated or not a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        evaluate.main([str(tmp_path / "junk.pt"), "--threads", "0"])
    assert exit_.value.code == 2 and "--threads must be >= 1, got 0" in capsys.readouterr().err


def test_learning_curves_from_a_run(data_dir, tmp_path):
    from agents import curves

    run = tmp_path / "run"
    assert train_agent.main(TINY + ["--n_epochs", "2", "--no-gif", "--out", str(run)]) == 0
    assert curves.read_metrics(run)["epoch"] == [1.0, 2.0]
    png = curves.plot([run], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path / "no-run")])


def test_sb3_algorithms_run_from_the_command_line(data_dir, tmp_path, capsys, monkeypatch):
    from agents import sb3

    # Score 100 test images instead of 10,000 to keep the test fast; the full split is tested in test_sb3.py.
    full = sb3.evaluate
    monkeypatch.setattr(sb3, "evaluate", lambda *a, **k: full(*a, **{**k, "limit": 100}))
    run = tmp_path / "ppo"
    assert train_agent.main(["--algo", "ppo", "--total-timesteps", "1024", "--n-envs", "2", "--out", str(run)]) == 0
    assert "test error of best.zip" in capsys.readouterr().out
    assert (run / "best.zip").is_file() and json.loads((run / "config.json").read_text())["algo"] == "ppo"
    assert evaluate.main([str(run), "--limit", "20"]) == 0
    assert "ppo on MNIST" in capsys.readouterr().out
