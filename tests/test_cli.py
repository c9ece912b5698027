"""train_agent.py and evaluate.py as a user runs them: training, scoring, flag spellings and defaults."""

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest

import evaluate
import train_agent
from agents.ram import RAMConfig
from agents.runlog import read_metrics
from agents.training.config import TrainConfig
from ram_env import TaskConfig

TINY = (
    "--n-epochs 1 --train-images 512 --batch-size 64 --glimpse-hidden 16 --location-hidden 16 --core-hidden 32 "
    "--test-rollouts 1"
).split()

# The reference implementation's four command lines (its README), verbatim; its script was train.py.
REFERENCE = {
    "exp1": "python train.py --data MNIST --n_glimpses 6 --patch_size 8 --n_patches 1 --scale 2 --std 0.15 --seed 1",
    "exp2": "python train.py --data MNIST --translated_size 60 --n_glimpses 8 --patch_size 12 --n_patches 3 "
    "--scale 2 --std 0.25 --seed 1",
    "exp3": "python train.py --data MNIST --translated_size 60 --n_clutter 4 --clutter_size 8 --n_glimpses 8 "
    "--patch_size 12 --n_patches 3 --scale 2 --std 0.25 --seed 1",
    "exp4": "python train.py --data MNIST --translated_size 100 --n_clutter 4 --clutter_size 8 --n_glimpses 8 "
    "--patch_size 12 --n_patches 4 --scale 2 --std 0.25 --seed 1",
}
TASK_IDS = {
    "exp1": "RAM/MNIST-v0",
    "exp2": "RAM/TranslatedMNIST60-v0",
    "exp3": "RAM/ClutteredMNIST60-v0",
    "exp4": "RAM/ClutteredMNIST100-v0",
}


def test_train_then_evaluate(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_agent.main(TINY + ["--out", str(run)]) == 0
    for name in ("config.json", "metrics.csv", "best.pt", "last.pt", "best.gif"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "RAM/MNIST-v0" and config["model"]["core_hidden"] == 32
    trained = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test error of best.pt")]
    # Training ends by scoring test in both protocols; evaluate.py gives the same two errors.
    assert len(trained) == 2 and "1 sampled rollout" in trained[1]
    assert evaluate.main([str(run)]) == 0
    scored = capsys.readouterr().out.splitlines()
    assert [t.split()[4] for t in trained] == [line.split()[2] for line in scored[:2]]
    assert evaluate.main([str(run), "--limit", "200", "--split", "val"]) == 0
    out = capsys.readouterr().out.splitlines()
    # Both protocols: the run's test rollouts (one: the mean locations) and one rollout with sampled locations.
    assert "val error" in out[0] and "on 200 images" in out[0] and "1 rollout(s), mean locations" in out[0]
    assert "val error" in out[1] and "1 rollout, sampled locations" in out[1]
    assert evaluate.main([str(run), "--limit", "50", "--test-rollouts", "3", "--per-step"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "3 rollout(s)" in out[0] and "1 rollout, sampled locations" in out[1]
    assert [line.split(":")[0].strip() for line in out[2:]] == [f"after {t} glimpse(s)" for t in range(1, 7)]
    assert out[-1].split("error ")[1] == out[0].split("error ")[1].split(" ")[0]  # after 6 glimpses: the answer
    assert evaluate.main([str(run), "--gif", str(tmp_path / "e.gif"), "--episodes", "4"]) == 0
    assert (tmp_path / "e.gif").stat().st_size > 0


def test_train_and_evaluate_an_agent_that_answers_early(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = TINY + ["--answer", "any_step", "--glimpse-cost", "0.05", "--n-glimpses", "4", "--stop-entropy", "0.02"]
    assert train_agent.main(argv + ["--no-gif", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["env_kwargs"]["answer"] == "any_step" and config["env_kwargs"]["glimpse_cost"] == 0.05
    assert config["stop_entropy"] == 0.02
    assert "glimpses on average" in capsys.readouterr().out
    assert evaluate.main([str(run), "--limit", "100", "--test-rollouts", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "2 rollout(s)" in out[0] and "1 rollout, sampled locations" in out[1]
    for line, protocol in zip(out[2:], ("all rollouts", "1 sampled rollout")):
        mean, shares = re.fullmatch(rf"  glimpses used \({protocol}\): mean ([\d.]+)  \((.*)\)", line).groups()
        assert 1 <= float(mean) <= 4
        assert [share.split(":")[0] for share in shares.split("  ")] == ["1", "2", "3", "4"]
        assert sum(float(share.split(": ")[1][:-1]) for share in shares.split("  ")) == pytest.approx(100, abs=0.2)
    assert len(out) == 4


@pytest.mark.parametrize("experiment", sorted(REFERENCE))
def test_reference_command_lines_give_the_papers_experiments(experiment):
    argv = shlex.split(REFERENCE[experiment])[2:]
    s = train_agent.settings(train_agent.parser().parse_args(argv), train_agent.defaults())
    preset = train_agent.settings(train_agent.parser().parse_args(["--preset", experiment]), train_agent.defaults())
    paper = ("data", *train_agent.TASK_KEYS, "std", "seed")
    assert {k: s[k] for k in paper} == {k: preset[k] for k in paper} and s["seed"] == 1
    env_id, kwargs = train_agent.task_of(s)
    assert env_id == TASK_IDS[experiment]
    assert kwargs["n_glimpses"] == int(argv[argv.index("--n_glimpses") + 1])
    assert s["std"] == float(argv[argv.index("--std") + 1])


def readme_commands() -> list[tuple[str, list[str]]]:
    """Every ``python train_agent.py ...`` / ``python evaluate.py ...`` command line in README.md."""
    text = (Path(__file__).parent.parent / "README.md").read_text().replace("\\\n", " ")
    found = re.findall(r"(?:python|torchrun[^\n]*?) (train_agent|evaluate)\.py((?: +[^\s`|#]+)*)", text)
    return [(script, shlex.split(args)) for script, args in found if args.split() != ["--help"]]


def test_readme_command_lines_parse_and_check():
    commands = readme_commands()
    assert sum(script == "train_agent" for script, _ in commands) >= 8
    assert sum(script == "evaluate" for script, _ in commands) >= 8
    for script, argv in commands:
        if script == "train_agent":
            args = train_agent.parser().parse_args(argv)
            s = train_agent.settings(args, train_agent.defaults())
            train_agent.check_flags_apply(args, s)
            train_agent.check_task(s)
            if s["algo"] == "ram":
                train_agent.ram_config(args, s)
        else:
            args = evaluate.parser().parse_args(argv)
            evaluate.check_flags(args, sb3="ppo" in argv[0])


def test_underscore_spellings_are_hidden_aliases(capsys):
    hyphens = train_agent.parser().parse_args(["--n-glimpses", "3", "--max-minutes", "2", "--data-dir", "d"])
    underscores = train_agent.parser().parse_args(["--n_glimpses", "3", "--max_minutes", "2", "--data_dir", "d"])
    assert vars(hyphens) == vars(underscores)
    with pytest.raises(SystemExit):
        train_agent.parser().parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--n-glimpses" in help_text and "--n_glimpses" not in help_text and "--test_rollouts" not in help_text


def test_help_shows_each_default_once_from_the_dataclasses(capsys):
    with pytest.raises(SystemExit):
        train_agent.parser().parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    train, model, task = TrainConfig(), RAMConfig(), TaskConfig()
    for flag, value in [
        ("--batch-size", train.batch_size),
        ("--lr", train.lr),
        ("--test-rollouts", train.test_rollouts),
        ("--core-hidden", model.core_hidden),
        ("--std", model.std),
        ("--n-glimpses", task.n_glimpses),
        ("--patch-size", task.patch_size),
    ]:
        entry = help_text.split(f" {flag} ")[1].split(" --")[0]
        assert entry.count("default") == 1 and f"(default {value})" in entry, (flag, entry)


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3", "exp4"])
def test_preset_alone_trains_the_shipped_row_that_beats_its_target(experiment):
    args = train_agent.parser().parse_args(["--preset", experiment])
    config = asdict(train_agent.ram_config(args, train_agent.settings(args, train_agent.defaults())))
    row = Path(__file__).parents[1] / "results" / experiment
    shipped = json.loads((row / "config.json").read_text())
    assert shipped.pop("learner") == "ram" and shipped.pop("world_size") == 2  # the row's torchrun command
    if shipped["max_minutes"] is not None:  # a cap the run never reached: it ended with its schedule
        assert int(read_metrics(row)["epoch"][-1]) == shipped["n_epochs"]
        shipped["max_minutes"] = None
    assert {k: config[k] for k in shipped} == shipped
    # settings added since, which a fixed-glimpse hybrid run does not read, or whose default is what the row ran;
    # the data record is filled in by training
    assert set(config) - set(shipped) <= {"label_entropy", "stop_entropy", "precision", "data"}
    assert config["precision"] == "fp32"


def test_presets_take_flags_over_them():
    s = train_agent.settings(
        train_agent.parser().parse_args(["--preset", "exp4", "--std", "0.2", "--glimpse-net", "conv"]),
        train_agent.defaults(),
    )
    assert s["translated_size"] == 100 and s["n_patches"] == 4 and s["std"] == 0.2 and s["glimpse_net"] == "conv"
    assert train_agent.task_of(s)[0] == "RAM/ClutteredMNIST100-v0"


def test_learning_curves_from_a_run(data_dir, tmp_path):
    from agents import curves

    run = tmp_path / "run"
    assert train_agent.main(TINY + ["--n-epochs", "2", "--no-gif", "--out", str(run)]) == 0
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
    # --resume of a folder with no model yet is a fresh start.
    ppo = ["--algo", "ppo", "--total-timesteps", "1024", "--n-envs", "2", "--eval-every", "4096", "--out", str(run)]
    assert train_agent.main(ppo + ["--resume"]) == 0
    assert "test error of best.zip" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert (run / "best.zip").is_file() and config["algo"] == "ppo" and config["eval_every"] == 4096
    assert evaluate.main([str(run), "--limit", "20"]) == 0
    assert "ppo on MNIST" in capsys.readouterr().out


def test_glimpse_policy_with_graded_reward_trains_from_the_command_line(data_dir, tmp_path, capsys, monkeypatch):
    from agents import sb3

    full = sb3.evaluate
    monkeypatch.setattr(sb3, "evaluate", lambda *a, **k: full(*a, **{**k, "limit": 100}))
    run = tmp_path / "ppo_glimpse"
    argv = ["--algo", "ppo_glimpse", "--reward", "graded", "--total-timesteps", "512", "--n-envs", "2"]
    assert train_agent.main(argv + ["--out", str(run), "--no-tensorboard"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["algo"], config["reward"]) == ("ppo_glimpse", "graded")
    assert not list(run.rglob("events.out.tfevents*")), "--no-tensorboard still wrote event files"
    capsys.readouterr()
    assert evaluate.main([str(run), "--limit", "20"]) == 0
    assert "ppo_glimpse on MNIST" in capsys.readouterr().out


def test_reward_flag_of_the_sb3_learners_is_refused_for_the_ram_agent(capsys):
    assert train_agent.main(["--reward", "graded"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--reward is a setting of the SB3 algorithms" in err


def test_a_wrong_flag_is_named_before_the_run_folder_is_looked_at(tmp_path, capsys):
    """The default run folder already holds a run (``make train`` made it): the flag's own error comes first."""
    held = tmp_path / "runs" / "MNIST-v0-ram-seed1"
    held.mkdir(parents=True)
    (held / "config.json").write_text("{}")
    (held / "last.pt").write_bytes(b"")
    assert train_agent.main(["--reward", "graded"]) == 2
    err = capsys.readouterr().err
    assert "--reward is a setting of the SB3 algorithms" in err and "already holds" not in err


def test_total_timesteps_may_be_left_out_when_max_minutes_ends_the_run():
    def budget(*argv):
        args = train_agent.parser().parse_args(["--algo", "ppo", *argv])
        return train_agent.step_budget(train_agent.settings(args, train_agent.defaults()))

    assert budget("--max-minutes", "5") is None  # the clock alone ends it: no placeholder step count
    assert budget() == train_agent.SB3_TIMESTEPS
    assert budget("--max-minutes", "5", "--total-timesteps", "1000") == 1000
