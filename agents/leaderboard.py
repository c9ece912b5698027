"""The leaderboard: every learner on one task at the same wall-clock budget, scored on the fixed test episodes.

python -m agents.leaderboard --task MNIST --minutes 10 --jobs 2 --out runs/leaderboard

Each entry of :data:`ENTRIES` is a ``train_agent.py`` command line with ``--max-minutes``, run into
``<out>/<task>/<entry>/`` (``--jobs 2``: two at a time, each on one torch thread). An entry that has been scored
is not run again; one that was interrupted continues with ``--resume``. Every run is then scored as
``evaluate.py`` scores it and the table printed in markdown: test error with its 95% interval for one episode per
image (the RAM agent: one rollout with sampled locations, M=1; a library learner: its deterministic episode) and,
for the RAM agent, the 10-rollout average (M=10); env steps and training minutes from ``metrics.csv``; the command.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from agents import cli
from agents.cli import UsageError
from agents.reinforce import error_with_interval
from agents.runlog import read_metrics

PROG = "python -m agents.leaderboard"
# The task's flags for each learner; the RAM agent's schedule is sized to end within about 10 minutes. On the
# cluttered task it trains the paper's network with the default settings: exp3's preset recipe (an LSTM and a
# convolutional glimpse network, 240 epochs) is sized for two hours, not ten minutes.
PAPER_NETWORK = ["--core", "rnn", "--glimpse-net", "mlp", "--batch-size", "512", "--lr", "3e-3", "--val-rollouts", "1"]
TASKS = {
    "MNIST": dict(task=[], ram=[]),
    "ClutteredMNIST60": dict(task=["--preset", "exp3"], ram=["--preset", "exp3", *PAPER_NETWORK, "--n-epochs", "40"]),
}
# The library learners stop on the time budget; they are scored on val (best.zip) every 50,000 env steps.
STEPS = ["--total-timesteps", "1000000000", "--eval-every", "50000"]
ENTRIES = {
    "ram": ["--algo", "ram"],
    "ram-pure-rl": ["--algo", "ram", "--classifier-loss", "reinforce"],
    "ppo": ["--algo", "ppo_glimpse", *STEPS],
    "ppo-graded": ["--algo", "ppo_glimpse", "--reward", "graded", *STEPS],
    "a2c": ["--algo", "a2c_glimpse", *STEPS],
    "a2c-graded": ["--algo", "a2c_glimpse", "--reward", "graded", *STEPS],
    "recurrent-ppo": ["--algo", "recurrent_ppo_glimpse", *STEPS],
    "recurrent-ppo-graded": ["--algo", "recurrent_ppo_glimpse", "--reward", "graded", *STEPS],
    # Sampling in the learner's process: one process per learner, like the others.
    "rllib-ppo": ["--algo", "rllib_ppo", "--num-env-runners", "0", *STEPS],
    "rllib-ppo-graded": ["--algo", "rllib_ppo", "--num-env-runners", "0", "--reward", "graded", *STEPS],
}


def flags(task: str, entry: str, minutes: float, out: Path) -> list[str]:
    """The ``train_agent.py`` flags of an entry."""
    task_flags = TASKS[task]["ram" if ENTRIES[entry][1] == "ram" else "task"]
    return [*ENTRIES[entry], *task_flags, "--max-minutes", f"{minutes:g}", "--out", str(out / task / entry)]


def score(run: Path) -> dict:
    """The run's test errors as evaluate.py prints them, with its env steps and training minutes."""
    import evaluate

    args = evaluate.parser().parse_args([str(run)])
    lines = [(what, correct) for what, correct in evaluate.score(args, evaluate.is_sb3(run)) if correct is not None]
    metrics = read_metrics(run)
    errors = [error_with_interval(correct) for _, correct in lines]
    one = errors[-1]  # the RAM agent: M=10, then M=1 (sampled); a library learner: one line
    return dict(
        error=one,
        error_m10=errors[0] if len(errors) > 1 else None,
        env_steps=int(metrics["env_steps"][-1]),
        minutes=metrics["elapsed_seconds"][-1] / 60,
    )


def run_entries(task: str, entries: list[str], minutes: float, out: Path, jobs: int) -> None:
    """Train the entries not yet scored, ``jobs`` at a time, and score each one as it ends."""
    todo = [e for e in entries if not (out / task / e / "leaderboard.json").is_file()]
    running: dict[str, subprocess.Popen] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                entry = todo.pop(0)
                running[entry] = start(task, entry, minutes, out)
            time.sleep(1)
            for entry in [e for e, proc in running.items() if proc.poll() is not None]:
                code = running.pop(entry).returncode
                if code != 0:
                    raise UsageError(f"{task}/{entry} failed (exit {code}); see {out / task / entry / 'train.log'}")
                finish(task, entry, minutes, out)
    except KeyboardInterrupt:  # the runs got the Ctrl-C too: let them save their last epoch
        for proc in running.values():
            proc.wait()
        raise
    finally:
        for proc in running.values():
            proc.terminate()


def start(task: str, entry: str, minutes: float, out: Path) -> subprocess.Popen:
    """Launch an entry's training (continuing it if its folder exists), its output to ``train.log``."""
    folder = out / task / entry
    argv = flags(task, entry, minutes, out) + (["--resume"] if folder.is_dir() else [])
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{task}/{entry}: python train_agent.py {shlex.join(argv)}", flush=True)
    with open(folder / "train.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "train_agent", *argv], stdout=log, stderr=subprocess.STDOUT)


def finish(task: str, entry: str, minutes: float, out: Path) -> None:
    """Score a trained entry and keep the result in its ``leaderboard.json``."""
    command = "python train_agent.py " + shlex.join(flags(task, entry, minutes, out))
    result = dict(score(out / task / entry), command=command)
    (out / task / entry / "leaderboard.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{task}/{entry}: test error {result['error'][0]:.2f}%", flush=True)


def table(task: str, entries: list[str], out: Path) -> str:
    """The markdown table of the scored entries, best first."""
    rows = [json.loads((out / task / e / "leaderboard.json").read_text()) | {"entry": e} for e in entries]
    lines = [
        "| learner | test error, one episode per image (95% CI) | RAM agent, M=10 | env steps | minutes | command |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["error"][0]):
        err, low, high = r["error"]
        m10 = f"{r['error_m10'][0]:.2f}%" if r["error_m10"] else "—"
        lines.append(
            f"| {r['entry']} | {err:.2f}% ({low:.2f}–{high:.2f}) | {m10} | {r['env_steps']:,} | {r['minutes']:.1f} | "
            f"`{r['command']}` |"
        )
    return "\n".join(lines)


def parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="MNIST", help="RAM/<task>-v0 (default MNIST)")
    p.add_argument("--minutes", type=cli.positive_float, default=10.0, help="training budget per learner (default 10)")
    p.add_argument("--jobs", type=cli.positive_int, default=1, help="learners trained side by side (default 1)")
    p.add_argument(
        "--only", nargs="+", choices=list(ENTRIES), metavar="ENTRY", help=f"these entries of {', '.join(ENTRIES)}"
    )
    p.add_argument("--out", type=Path, default=Path("runs/leaderboard"), help="default runs/leaderboard")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    entries = args.only or list(ENTRIES)
    try:
        run_entries(args.task, entries, args.minutes, args.out, args.jobs)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; the same command continues", file=sys.stderr)
        return 130
    except (UsageError, OSError, ValueError) as e:
        return cli.fail(PROG, e)
    print(table(args.task, entries, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
