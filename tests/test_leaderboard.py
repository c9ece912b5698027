"""``python -m agents.leaderboard``: every learner trained at one budget, scored as evaluate.py scores it."""

import json
import re

import pytest

import evaluate
from agents import leaderboard

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
        assert row[5].strip("` |") == json.loads((run / "leaderboard.json").read_text())["command"]
        assert f"--max-minutes 0.02 --out {run}" in row[5]
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
