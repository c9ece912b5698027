"""``python -m agents.study``: several seeds of one training command, aggregated from the files they leave."""

import json
import sys

import numpy as np
import pytest

from agents import study

CONFIG = {"learner": "ram", "env_id": "RAM/MNIST-v0", "lr": 0.003, "model": {"std": 0.15}, "world_size": 1}
# A stand-in for train_agent.py: it notes how it was called, writes a run folder's config.json and metrics.csv,
# and, for the seed named in STALL, waits to be stopped as a kill stops torchrun (a traceback, exit 130).
FAKE_TRAINER = """
import json, signal, sys, time
from pathlib import Path
argv = sys.argv[1:]
seed, out = int(argv[argv.index("--seed") + 1]), Path(argv[argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "calls.txt", "a") as f:
    f.write(" ".join(argv) + "\\n")
(out / "config.json").write_text(json.dumps({**CONFIG, "seed": seed}))
if seed == STALL:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(print("Traceback (most recent call last):", flush=True) or 130))
    time.sleep(60)
(out / "metrics.csv").write_text(METRICS)
print("epoch 2 done")
"""
METRICS = "epoch,env_steps,val_error,elapsed_seconds\n1,1000,5.0,30\n2,2000,4.0,60\n"


def hand_made_seed(out, seed: int, m10: float, m1: float, config=CONFIG) -> None:
    """A scored seed's folder, written by hand: what a finished seed leaves."""
    folder = out / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**config, "seed": seed}))
    (folder / "metrics.csv").write_text(METRICS)
    scores = dict(error=[m1, m1 - 0.2, m1 + 0.2], error_m10=[m10, m10 - 0.1, m10 + 0.1], machine="AMD EPYC, 2 cores")
    (folder / "scores.json").write_text(json.dumps(scores))


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    script = tmp_path / "fake_train.py"
    stall = -1
    script.write_text(f"CONFIG = {CONFIG!r}\nMETRICS = {METRICS!r}\nSTALL = {stall}\n" + FAKE_TRAINER)
    monkeypatch.setattr(study, "TRAINER", [sys.executable, str(script)])
    # Scoring a seed reads its checkpoint; the fake runs have none: seed N scores N% (M=10) and 2N% (M=1).
    monkeypatch.setattr(
        study,
        "score_run",
        lambda run: dict(
            error=[2.0 * int(run.name[4:])] * 3, error_m10=[1.0 * int(run.name[4:])] * 3, machine="test machine"
        ),
    )
    return script


def test_scored_seeds_are_aggregated_from_their_files_to_mean_std_and_each_seed(tmp_path, capsys):
    for seed, m10, m1 in ((1, 0.60, 1.50), (2, 0.70, 1.70), (3, 0.80, 1.60)):
        hand_made_seed(tmp_path, seed, m10, m1)
    argv = ["--seeds", "1", "2", "3", "--out", str(tmp_path), "--", "--preset", "exp1"]
    assert study.main(argv) == 0  # every seed is scored: nothing is trained (no trainer could run here)
    out = capsys.readouterr().out
    assert "seed 2: test error M=10 0.70%  M=1 1.70%  (2 epochs, best 2, 2,000 env steps, 1.0 min, 33 steps/s" in out
    row = out.strip().splitlines()[-1].split(" | ")
    assert row[0] == "| 3 (1, 2, 3)"
    assert row[1] == f"0.70% ± {np.std([0.6, 0.7, 0.8], ddof=1):.2f} (0.60, 0.70, 0.80)"
    assert row[2] == "1.60% ± 0.10 (1.50, 1.70, 1.60)"
    assert row[5] == "AMD EPYC, 2 cores"
    assert row[6] == "`python -m agents.study --seeds 1 2 3 --out " + str(tmp_path) + " -- --preset exp1` |"


def test_a_partial_study_resumes_the_started_seed_starts_the_missing_one_and_keeps_the_scored(
    tmp_path, fake_trainer, capsys
):
    hand_made_seed(tmp_path, 1, 1.0, 2.0)
    (tmp_path / "seed2").mkdir()  # an interrupted seed: a run folder without scores
    (tmp_path / "seed2" / "config.json").write_text(json.dumps({**CONFIG, "seed": 2}))
    assert study.main(["--seeds", "1", "2", "3", "--out", str(tmp_path), "--", "--lr", "3e-3"]) == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == [
        f"--lr 3e-3 --seed 2 --out {tmp_path / 'seed2'} --resume",
        f"--lr 3e-3 --seed 3 --out {tmp_path / 'seed3'}",
    ]
    out = capsys.readouterr().out
    assert "seed 3 | epoch 2 done" in out  # the run's progress, shown as it trains
    assert "epoch 2 done" in (tmp_path / "seed3" / "train.log").read_text()
    assert out.strip().splitlines()[-1].startswith("| 3 (1, 2, 3) | 2.00% ± 1.00 (1.00, 2.00, 3.00) | 4.00% ± 2.00")


def test_the_budget_stops_a_seed_as_a_kill_does_and_prints_the_command_that_continues_without_its_traceback(
    tmp_path, fake_trainer, capsys
):
    fake_trainer.write_text(fake_trainer.read_text().replace("STALL = -1", "STALL = 2"))
    argv = ["--seeds", "1", "2", "--out", str(tmp_path), "--max-minutes", "0.02", "--", "--lr", "3e-3"]
    assert study.main(argv) == 0
    out = capsys.readouterr().out
    assert f"1 of 2 seeds scored; continue with: python -m agents.study {' '.join(argv)}" in out
    assert (tmp_path / "seed1" / "scores.json").is_file() and not (tmp_path / "seed2" / "scores.json").exists()
    assert out.strip().splitlines()[-1].startswith("| 1 (1) | 1.00% (one seed) | 2.00% (one seed)")
    # what the stopped run printed (torchrun's traceback of the SIGTERM) is kept in its log, off the screen
    assert "Traceback" not in out and "Traceback" in (tmp_path / "seed2" / "train.log").read_text()


def test_seeds_trained_with_different_settings_are_refused_in_one_line(tmp_path, capsys):
    hand_made_seed(tmp_path, 1, 0.6, 1.5)
    hand_made_seed(tmp_path, 2, 0.7, 1.6, config={**CONFIG, "model": {"std": 0.25}})
    assert study.main(["--seeds", "1", "2", "--out", str(tmp_path), "--", "--preset", "exp1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"python -m agents.study: error: {tmp_path / 'seed1'} and {tmp_path / 'seed2'} were trained with different "
        "settings (model.std: 0.15 against 0.25); a study's seeds differ only in --seed: remove one or choose "
        "another --out"
    ]


def test_other_flags_than_the_studys_are_refused_before_any_training(tmp_path, fake_trainer, capsys):
    assert study.main(["--seeds", "1", "--out", str(tmp_path), "--", "--lr", "3e-3"]) == 0
    capsys.readouterr()
    assert study.main(["--seeds", "1", "2", "--out", str(tmp_path), "--", "--lr", "1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"python -m agents.study: error: {tmp_path} is a study of `--lr 3e-3`, not `--lr 1e-3`: give the same flags "
        "after -- or choose another --out"
    )
    assert not (tmp_path / "seed2").exists()
    assert study.main(["--seeds", "1", "--out", str(tmp_path / "b"), "--", "--seed", "4"]) == 2
    assert "--seed after -- is the study's to set" in capsys.readouterr().err


def test_nproc_trains_each_seed_under_torchrun_on_a_free_port():
    command, shown = study.trainer(2)
    assert command[1:] == [*"-m torch.distributed.run --standalone --nproc_per_node 2 -m train_agent".split()]
    assert shown == "torchrun --standalone --nproc_per_node 2 train_agent.py"
    assert study.trainer(1) == (study.TRAINER, "python train_agent.py")


def test_readme_study_and_leaderboard_commands_parse():
    import re
    import shlex
    from pathlib import Path

    import train_agent
    from agents import leaderboard

    text = (Path(__file__).parent.parent / "README.md").read_text()
    found = [
        (m, args) for m, args in re.findall(r"python -m agents\.(study|leaderboard)((?: +[^\s`|#]+)*)", text) if args
    ]
    assert sum(module == "study" for module, _ in found) >= 6
    for module, args in found:
        argv = shlex.split(args)
        if module == "leaderboard":
            leaderboard.parser().parse_args(argv)
            continue
        ours, flags = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
        study.parser().parse_args(ours)
        train_agent.parser().parse_args(flags)


def test_a_second_study_training_in_the_same_folder_is_refused_in_one_line(tmp_path, fake_trainer, capsys):
    argv = ["--seeds", "1", "--out", str(tmp_path), "--", "--lr", "3e-3"]
    tmp_path.mkdir(exist_ok=True)
    with study.hold(tmp_path):  # as a study that is training there holds it
        assert study.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"python -m agents.study: error: another study is training in {tmp_path}; let it end (or stop it), then run "
        "this command again"
    )
    assert not (tmp_path / "seed1").exists()
    assert study.main(argv) == 0  # once it is released
