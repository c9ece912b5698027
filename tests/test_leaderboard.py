"""``python -m agents.leaderboard``: every learner trained at one budget, scored as evaluate.py scores it."""

import json
import re

import pytest

import evaluate
from agents import leaderboard, study

TINY_RAM = ["--train-images", "512", "--batch-size", "256", "--n-epochs", "1", "--no-gif", "--no-tensorboard"]


@pytest.fixture
def tiny(monkeypatch, data_dir):
    monkeypatch.setenv("RAM_DATA_DIR", data_dir)
    monkeypatch.setitem(leaderboard.TASKS, "MNIST", dict(task=["--no-tensorboard"], ram=TINY_RAM))


def test_entries_are_trained_once_and_tabled_with_evaluates_errors(tiny, tmp_path, capsys):
    argv = ["--only", "ram", "ppo", "--minutes", "0.02", "--jobs", "2", "--out", str(tmp_path)]
    assert leaderboard.main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ram |") or line.startswith("| ppo |")]
    assert len(rows) == 2
    errors = [float(row[1].split("%")[0]) for row in rows]
    assert errors == sorted(errors)  # best first
    for row in rows:
        run = tmp_path / "MNIST" / row[0].strip("| ")
        entry = json.loads((run / "leaderboard.json").read_text())
        assert row[7].strip("` |") == entry["command"]
        assert f"--max-minutes 0.02 --out {run}" in row[7]
        assert row[6] == entry["machine"] == study.cpu_model()  # where it ran, and how fast
        assert entry["steps_per_second"] == pytest.approx(entry["env_steps"] / (60 * entry["minutes"]))
        assert evaluate.main([str(run)]) == 0  # the table's error is the one evaluate.py prints last
        printed = re.findall(r"^test error ([\d.]+)%", capsys.readouterr().out, re.M)
        assert float(row[1].split("%")[0]) == pytest.approx(float(printed[-1]))
    ram = next(row for row in rows if row[0] == "| ram")
    assert ram[2].endswith("%") and rows[0 if rows[0] is not ram else 1][2] == "—"  # M=10: the RAM agent's only
    # A second call finds every entry scored: nothing is trained again.
    logs = {e: (tmp_path / "MNIST" / e / "train.log").stat().st_size for e in ("ram", "ppo")}
    assert leaderboard.main(argv) == 0
    assert "python train_agent.py" not in capsys.readouterr().out.split("| learner")[0]
    assert logs == {e: (tmp_path / "MNIST" / e / "train.log").stat().st_size for e in ("ram", "ppo")}


def test_a_failing_entry_is_one_clear_error_naming_its_log(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(leaderboard.ENTRIES, "ram", ["--algo", "ram", "--lr", "-1"])
    assert leaderboard.main(["--only", "ram", "--minutes", "0.02", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    log = tmp_path / "MNIST" / "ram" / "train.log"
    assert err == [f"python -m agents.leaderboard: error: MNIST/ram failed (exit 2); see {log}"]
    assert "--lr" in log.read_text()


def test_a_steps_budget_gives_library_learners_that_total_and_the_ram_agent_the_whole_epochs_within_it(tmp_path):
    budget = leaderboard.Budget(minutes=None, steps=3_000_000)
    board = tmp_path / "MNIST-3000000-steps"
    # RAM/MNIST-v0: 107 batches of 512 images a 6-step episode each, 328,704 env steps an epoch: 9 fit in 3M.
    assert leaderboard.flags("MNIST", "ram", budget, tmp_path) == [
        *("--algo", "ram", "--n-epochs", "9", "--out", str(board / "ram")),
    ]
    minutes = leaderboard.flags("MNIST", "ppo", leaderboard.Budget(minutes=10, steps=None), tmp_path)
    assert "--total-timesteps" not in minutes and minutes[minutes.index("--max-minutes") + 1] == "10"
    ppo = leaderboard.flags("MNIST", "ppo-graded", budget, tmp_path, seed=2)
    assert ppo[ppo.index("--total-timesteps") + 1] == "3000000" and "--max-minutes" not in ppo
    assert ppo[-4:] == ["--seed", "2", "--out", str(board / "ppo-graded" / "seed2")]
    # The cluttered task's 8-step episodes: 438,272 env steps an epoch, 6 in 3M (its 40-epoch schedule replaced).
    cluttered = leaderboard.flags("ClutteredMNIST60", "ram", leaderboard.Budget(10, 3_000_000), tmp_path)
    assert cluttered.count("--n-epochs") == 1 and cluttered[cluttered.index("--n-epochs") + 1] == "6"
    assert cluttered[-4:-2] == ["--max-minutes", "10"]


def test_a_steps_budget_below_one_ram_epoch_is_refused_in_one_line(tmp_path, capsys):
    assert leaderboard.main(["--only", "ram", "--steps", "1000", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "python -m agents.leaderboard: error: --steps 1000 is less than one epoch of the RAM agent on MNIST "
        "(328,704 env steps)"
    )
    assert list(tmp_path.iterdir()) == []


def test_seeds_are_tabled_as_mean_and_std_with_each_seed_speed_and_machine(tmp_path, capsys):
    board = tmp_path / "MNIST-3000000-steps"
    for entry, errors in (("ram", (2.0, 2.2, 2.4)), ("ppo-graded", (9.0, 10.0, 11.0))):
        for seed, err in zip((1, 2, 3), errors):
            folder = board / entry / f"seed{seed}"
            folder.mkdir(parents=True)
            m10 = [err / 2] * 3 if entry == "ram" else None
            scores = dict(error=[err, err - 0.3, err + 0.3], error_m10=m10, env_steps=3_000_000 + seed, minutes=10.0)
            scores.update(steps_per_second=5000.0 * seed, machine="AMD EPYC, 2 cores", command="python train_agent.py")
            (folder / "leaderboard.json").write_text(json.dumps(scores))
    argv = ["--steps", "3000000", "--seeds", "1", "2", "3", "--only", "ppo-graded", "ram", "--out", str(tmp_path)]
    assert leaderboard.main(argv) == 0  # every seed is scored: nothing is trained
    lines = capsys.readouterr().out.strip().splitlines()
    assert "mean ± std, each seed" in lines[0]
    ram, ppo = (line.split(" | ") for line in lines[2:])
    assert ram[:4] == ["| ram", "2.20% ± 0.20 (2.00, 2.20, 2.40)", "1.10% ± 0.10 (1.00, 1.10, 1.20)", "3,000,002"]
    assert ppo[1:7] == ["10.00% ± 1.00 (9.00, 10.00, 11.00)", "—", "3,000,002", "10.0", "10,000", "AMD EPYC, 2 cores"]
    command = (
        f"python -m agents.leaderboard --task MNIST --steps 3000000 --seeds 1 2 3 --only ppo-graded --out {tmp_path}"
    )
    assert ppo[7] == f"`{command}` |"  # the command that trains and scores every seed of the entry
