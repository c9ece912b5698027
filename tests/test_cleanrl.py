"""The CleanRL-style single-file PPO (examples/cleanrl_ppo.py) runs as its users run it, over ``gym.make_vec``."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_single_file_ppo_runs_two_updates_and_counts_the_episodes_of_next_step_autoreset(data_dir, tmp_path):
    """4 envs x 12 steps a rollout; an episode is 6 steps and the vector env spends one more starting the next,
    so each env ends 1 episode in steps 0-11 (at step 5) and 2 in steps 12-23 (at 12 and 19)."""
    argv = ["--total-timesteps", "96", "--num-envs", "4", "--num-steps", "12", "--data-dir", data_dir]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cleanrl_ppo.py"), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    pattern = r"update (\d)/2  steps (\d+)  episodes (\d+)  accuracy (\d\.\d{3})  loss (-?\d+\.\d{4})  \d+ SPS"
    updates = [re.fullmatch(pattern, line) for line in lines]
    assert all(updates) and len(updates) == 2, done.stdout
    assert [(m[1], m[2], m[3]) for m in updates] == [("1", "48", "4"), ("2", "96", "8")]
    assert all(0 <= float(m[4]) <= 1 for m in updates)
