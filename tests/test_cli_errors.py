"""Every expected failure of train_agent.py and evaluate.py is one line naming the flag or file, exit status 2.

Most cases call ``main(argv)`` in the test process (an uncaught exception would fail the test, as a traceback
would fail the user); a few run the scripts as a user does, in a subprocess.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

import evaluate
import train_agent
from agents import checkpoint
from agents.ram import RAMConfig, RecurrentAttentionModel
from agents.training.config import TrainConfig

ROOT = Path(__file__).parent.parent
TINY = (
    "--n-epochs 1 --train-images 512 --batch-size 64 --glimpse-hidden 16 --location-hidden 16 --core-hidden 32 "
    "--test-rollouts 1 --no-gif"
).split()
SIZES = dict(glimpse_hidden=16, location_hidden=16, core_hidden=32)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def script(name: str, *argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / name), *map(str, argv)], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--batch_size", "0"], ["--batch-size", "must be a positive integer"]),
        (["--lr", "-1"], ["--lr", "must be a positive number"]),
        (["--data", "CIFAR"], ["--data", "invalid choice"]),
        (["--preset", "exp9"], ["--preset", "invalid choice"]),
        (["--n-glimpse", "3"], ["unrecognized arguments: --n-glimpse"]),
        (["--n_clutter", "4"], ["clutter needs a translated canvas"]),
        (["--device", "gpu0"], ["--device gpu0 is not a device"]),
        (["--env-device", "gpu7"], ["--env-device gpu7 is not a device; use auto, numpy, cpu"]),
        (["--batch-size", "600", "--train-images", "512"], ["--batch-size 600 is larger than --train-images 512"]),
        (["--algo", "ppo", "--lr", "0.1"], ["--lr is a setting of the RAM agent"]),
        (["--total-timesteps", "100"], ["--total-timesteps is a setting of the SB3 algorithms"]),
        (["--answer", "sometimes"], ["--answer", "invalid choice"]),
        (["--glimpse-cost", "-0.5"], ["--glimpse-cost", "must be a finite number >= 0, got -0.5"]),
        (["--glimpse-cost", "cheap"], ["--glimpse-cost", "must be a number >= 0, got 'cheap'"]),
        (["--glimpse-cost", "0.1"], ["--glimpse-cost 0.1 needs --answer any_step"]),
        (["--stop-entropy", "0.1"], ["--stop-entropy trains the stop policy, which only --answer any_step has"]),
        (["--label-entropy", "0.1"], ["--label-entropy weighs the sampled label of --classifier-loss reinforce"]),
        (["--answer", "any_step", "--stop-entropy", "-1"], ["--stop-entropy", "must be a finite number >= 0, got -1"]),
    ],
)
def test_train_agent_names_a_bad_flag(call_main, argv, needles, tmp_path):
    code, _, err = call_main(train_agent.main, argv + ["--out", tmp_path / "run"])
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run").exists()


def test_train_agent_names_an_out_that_is_a_file(call_main, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = call_main(train_agent.main, ["--out", tmp_path / "file"])
    assert_one_line_error(code, err, f"--out {tmp_path / 'file'} is a file")


def test_train_agent_on_a_machine_without_the_device(call_main, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = call_main(train_agent.main, ["--device", "cuda", "--out", tmp_path / "run"])
    assert_one_line_error(code, err, "--device cuda: this machine has no CUDA GPU", "--device cpu")


def test_a_folder_without_a_finished_epoch_starts_afresh_and_resumes(call_main, data_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()  # what Ctrl-C in the first epoch leaves: a config and a metrics header, no checkpoint
    (run / "config.json").write_text("{}")
    (run / "metrics.csv").write_text("epoch\n")
    code, out, _ = call_main(train_agent.main, TINY + ["--out", run, "--resume"])
    assert code == 0 and "starting the run afresh" in out and (run / "last.pt").is_file()
    # Now it holds a run: refused without --resume, and --resume keeps the run's settings for flags not given.
    code, _, err = call_main(train_agent.main, TINY + ["--out", run])
    assert_one_line_error(code, err, "already holds a run", "add --resume")
    code, _, err = call_main(train_agent.main, TINY + ["--out", run, "--resume", "--core-hidden", "64"])
    assert_one_line_error(code, err, "holds a run with --core-hidden 32, not 64")
    code, out, _ = call_main(train_agent.main, ["--out", run, "--resume", "--n-epochs", "2", "--no-gif"])
    assert code == 0 and "resuming" in out
    assert json.loads((run / "config.json").read_text())["model"]["core_hidden"] == 32
    assert (run / "metrics.csv").read_text().splitlines()[-1].startswith("2,")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_prints_the_command_that_continues_the_run(stop, data_dir, tmp_path):
    argv = [*TINY, "--out", "run"]
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "train_agent.py"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # as from a terminal: a test run started in the background (`&`) would hand the child an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stdout.readline().startswith("training the RAM agent")
    p.send_signal(stop)  # during the first epoch, or before it
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err, err
    command = shlex.split(err.split("continue with: ")[1])
    assert command == [sys.executable, str(ROOT / "train_agent.py"), *argv, "--resume"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0 and "test error of best.pt" in done.stdout, done.stderr


def tiny_checkpoint(path: Path, model_config=None, weights=None, **config) -> Path:
    """A checkpoint of an untrained tiny network; ``model_config``/``weights``/``config`` change parts of it."""
    sizes = RAMConfig(glimpse_shape=(1, 1, 8, 8), **SIZES)
    network = RecurrentAttentionModel(RAMConfig(**{**asdict(sizes), **(weights or {})}))
    payload = {
        "config": asdict(TrainConfig(**{"model": dict(SIZES), **config})),
        "model_config": {**asdict(sizes), **(model_config or {})},
        "model": network.state_dict(),
    }
    checkpoint.save(path, payload)
    return path


@pytest.mark.parametrize(
    "damage, needles",
    [
        (dict(weights=dict(core_hidden=64)), ["was saved with core_hidden 32 but its weights are for core_hidden 64"]),
        (dict(weights=dict(core="lstm")), ["was saved with core 'rnn' but its weights are core.weight_ih (128, 32)"]),
        (dict(env_id="RAM/NoSuchTask-v0"), ["trained on task 'RAM/NoSuchTask-v0', which this code does not know"]),
        (dict(env_kwargs=dict(patch_size=12)), ["network for glimpses of shape (1, 1, 8, 8)", "1 patch(es) of 12x12"]),
        (dict(model=dict(SIZES, core_hidden=64)), ["core_hidden 64 in its run config but 32 in its network"]),
        (dict(env_kwargs=dict(n_clutter=3)), ["names a task this code cannot build", "clutter"]),
    ],
)
def test_evaluate_detects_a_checkpoint_that_disagrees_with_itself(call_main, damage, needles, tmp_path):
    path = tiny_checkpoint(tmp_path / "best.pt", **damage)
    code, _, err = call_main(evaluate.main, [path])
    assert_one_line_error(code, err, str(path), *needles)


def test_evaluate_names_a_missing_or_foreign_checkpoint(call_main, tmp_path):
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "text.pt").write_text("junk")
    for argv, needles in [
        ([tmp_path / "nothing.pt"], ["nothing.pt: no such checkpoint file or run folder"]),
        ([tmp_path / "empty-run"], ["empty-run holds no best.pt"]),
        ([tmp_path / "text.pt"], ["text.pt is truncated or not a checkpoint"]),
    ]:
        code, _, err = call_main(evaluate.main, argv)
        assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--test_rollouts", "0"], ["--test-rollouts", "must be a positive integer, got 0"]),
        (["--limit", "0"], ["--limit", "must be a positive integer, got 0"]),
        (["--threads", "0"], ["--threads", "must be a positive integer, got 0"]),
        (["--device", "gpu0"], ["--device gpu0 is not a device"]),
        (["--episodes", "3"], ["--episodes applies to --render, --gif and --video"]),
        (["--gif", "x.gif", "--limit", "3"], ["--limit applies to scoring"]),
        (["--gif", "x.gif", "--render", "human"], ["not allowed with argument --gif"]),
        (["--gif", "x.gif", "--per-step"], ["--per-step applies to scoring"]),
    ],
)
def test_evaluate_names_a_bad_flag(call_main, argv, needles, tmp_path):
    code, _, err = call_main(evaluate.main, [tiny_checkpoint(tmp_path / "best.pt"), *argv])
    assert_one_line_error(code, err, *needles)


def test_evaluate_per_step_needs_a_fixed_budget_agent(call_main, tmp_path):
    halting = dict(halting=True)
    path = tiny_checkpoint(tmp_path / "best.pt", halting, halting, env_kwargs=dict(answer="any_step"))
    code, _, err = call_main(evaluate.main, [path, "--per-step"])
    assert_one_line_error(code, err, "--per-step scores a fixed-budget agent", "answers when it stops")


def test_evaluate_names_an_sb3_run_it_cannot_build_and_flags_that_do_not_apply(call_main, tmp_path):
    run = tmp_path / "ppo"
    run.mkdir()
    (run / "best.zip").write_bytes(b"")
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "env": {"dataset": "MNIST", "n_glimpse": 3}}))
    code, _, err = call_main(evaluate.main, [run])
    assert_one_line_error(code, err, "config.json does not describe a task", "n_glimpse")
    code, _, err = call_main(evaluate.main, [run, "--test-rollouts", "5"])
    assert_one_line_error(code, err, "--test-rollouts applies to RAM agent checkpoints")
    code, _, err = call_main(evaluate.main, [run, "--per-step"])
    assert_one_line_error(code, err, "--per-step applies to RAM agent checkpoints")


def test_command_lines_fail_in_one_line_as_a_user_sees_them(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"")  # an interrupted copy
    for name, argv, needle in [
        ("evaluate.py", ["run"], "run/best.pt is truncated or not a checkpoint (EOFError: empty file)"),
        ("train_agent.py", ["--device", "gpu0"], "--device gpu0 is not a device"),
    ]:
        done = script(name, *argv, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [f"{name}: error: " + done.stderr.split("error: ", 1)[1].strip()]
        assert needle in done.stderr
