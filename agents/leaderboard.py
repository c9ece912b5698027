"""The leaderboard: every learner on one task at the same budget, scored on the fixed test episodes.

python -m agents.leaderboard --task MNIST --minutes 10 --jobs 2 --out runs/leaderboard
python -m agents.leaderboard --task MNIST --steps 3000000 --seeds 1 2 3 --only ram ppo-graded --jobs 2

The budget is wall-clock minutes (``--minutes``, default 10), env steps (``--steps``: the library learners'
``--total-timesteps``, the RAM agent's whole epochs that fit in it), or both (whichever comes first). Each entry of
:data:`ENTRIES` is a ``train_agent.py`` command line run into ``<out>/<task>/<entry>/`` (a steps budget:
``<out>/<task>-<steps>-steps/<entry>/``; ``--seeds``: ``.../<entry>/seed<N>/`` per seed), ``--jobs 2``: two at a
time, each on one torch thread. An entry that has been scored is not run again; one that was interrupted continues
with ``--resume``. Every run is then scored as ``evaluate.py`` scores it, with the env steps per second it reached
and the machine (CPU model) it ran on, and the table printed in markdown: test error with its 95% interval (over
seeds: mean ± standard deviation and each seed) for one episode per image (the RAM agent: one rollout with sampled
locations, M=1; a library learner: its deterministic episode) and, for the RAM agent, the 10-rollout average
(M=10); env steps and training minutes from ``metrics.csv``; the command.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents import cli, study
from agents.cli import UsageError

PROG = "python -m agents.leaderboard"
# The task's flags for each learner; the RAM agent's schedule is sized to end within about 10 minutes. On the
# cluttered task it trains the paper's network with the default settings: exp3's preset recipe (an LSTM and a
# convolutional glimpse network, 240 epochs) is sized for two hours, not ten minutes.
PAPER_NETWORK = ["--core", "rnn", "--glimpse-net", "mlp", "--batch-size", "512", "--lr", "3e-3", "--val-rollouts", "1"]
TASKS = {
    "MNIST": dict(task=[], ram=[]),
    "ClutteredMNIST60": dict(task=["--preset", "exp3"], ram=["--preset", "exp3", *PAPER_NETWORK, "--n-epochs", "40"]),
}
# The library learners stop on the time budget (no step budget, so their progress bars count minutes), or at
# --steps (their --total-timesteps); they are scored on val (best.zip) every 50,000 env steps.
STEPS = ["--eval-every", "50000"]
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


@dataclass(frozen=True)
class Budget:
    """Each learner's budget: training minutes, env steps, or both (whichever comes first)."""

    minutes: float | None = 10.0
    steps: int | None = None

    def folder(self, out: Path, task: str) -> Path:
        """Where the entries of this task and budget live: a steps budget has its own board."""
        return out / task if self.steps is None else out / f"{task}-{self.steps}-steps"

    def flags(self) -> list[str]:
        return [] if self.minutes is None else ["--max-minutes", f"{self.minutes:g}"]


def with_value(argv: list[str], name: str, value: object) -> list[str]:
    """``argv`` with flag ``name`` set to ``value``: replaced where it is given, else appended."""
    if name not in argv:
        return [*argv, name, str(value)]
    i = argv.index(name)
    return [*argv[: i + 1], str(value), *argv[i + 2 :]]


def ram_epochs(task: str, ram_flags: list[str], steps: int) -> int:
    """The RAM agent's whole epochs that fit in ``steps`` env steps: each plays every training image once (whole
    batches), for ``n_glimpses`` steps an episode."""
    import gymnasium as gym

    import ram_env  # noqa: F401  (registers the tasks)
    from agents.training.config import TrainConfig
    from ram_env.datasets import N_VAL

    batch = (
        int(ram_flags[ram_flags.index("--batch-size") + 1]) if "--batch-size" in ram_flags else TrainConfig.batch_size
    )
    train_images = 60_000 - N_VAL  # every dataset of the MNIST family has 60,000 training images
    per_epoch = train_images // batch * batch * gym.spec(f"RAM/{task}-v0").kwargs["n_glimpses"]
    if steps < per_epoch:
        raise UsageError(f"--steps {steps} is less than one epoch of the RAM agent on {task} ({per_epoch:,} env steps)")
    return steps // per_epoch


def flags(task: str, entry: str, budget: Budget, out: Path, seed: int | None = None) -> list[str]:
    """The ``train_agent.py`` flags of an entry (of one of its seeds)."""
    ram = ENTRIES[entry][1] == "ram"
    argv = [*ENTRIES[entry], *TASKS[task]["ram" if ram else "task"]]
    if budget.steps is not None and ram:
        argv = with_value(argv, "--n-epochs", ram_epochs(task, argv, budget.steps))
    elif budget.steps is not None:
        argv = with_value(argv, "--total-timesteps", budget.steps)
    argv += [*budget.flags(), *([] if seed is None else ["--seed", str(seed)])]
    return [*argv, "--out", str(run_folder(budget.folder(out, task), entry, seed))]


def run_folder(board: Path, entry: str, seed: int | None) -> Path:
    return board / entry if seed is None else board / entry / f"seed{seed}"


def run_entries(task: str, entries: list[str], budget: Budget, out: Path, jobs: int, seeds: list[int] | None) -> None:
    """Train the entries (each seed of each) not yet scored, ``jobs`` at a time, and score each one as it ends."""
    board = budget.folder(out, task)
    runs = [(e, s) for e in entries for s in (seeds or [None])]
    todo = [(e, s) for e, s in runs if not (run_folder(board, e, s) / "leaderboard.json").is_file()]
    running: dict[tuple[str, int | None], subprocess.Popen] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                run = todo.pop(0)
                running[run] = start(task, *run, budget, out)
            time.sleep(1)
            for run in [r for r, proc in running.items() if proc.poll() is not None]:
                code = running.pop(run).returncode
                folder = run_folder(board, *run)
                if code != 0:
                    raise UsageError(f"{folder.relative_to(out)} failed (exit {code}); see {folder / 'train.log'}")
                finish(task, *run, budget, out)
    except KeyboardInterrupt:  # the runs got the Ctrl-C too: let them save their last epoch
        for proc in running.values():
            proc.wait()
        raise
    finally:
        for proc in running.values():
            proc.terminate()


def start(task: str, entry: str, seed: int | None, budget: Budget, out: Path) -> subprocess.Popen:
    """Launch an entry's training (continuing it if its folder exists), its output to ``train.log``."""
    folder = run_folder(budget.folder(out, task), entry, seed)
    argv = flags(task, entry, budget, out, seed) + (["--resume"] if folder.is_dir() else [])
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{folder.relative_to(out)}: python train_agent.py {shlex.join(argv)}", flush=True)
    with open(folder / "train.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "train_agent", *argv], stdout=log, stderr=subprocess.STDOUT)


def finish(task: str, entry: str, seed: int | None, budget: Budget, out: Path) -> None:
    """Score a trained entry and keep the result in its ``leaderboard.json``, with the speed and the machine."""
    folder = run_folder(budget.folder(out, task), entry, seed)
    command = "python train_agent.py " + shlex.join(flags(task, entry, budget, out, seed))
    result = dict(study.score_run(folder), **study.run_facts(folder), command=command)
    (folder / "leaderboard.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{folder.relative_to(out)}: test error {result['error'][0]:.2f}%", flush=True)


HEADER = (
    "| learner | test error, one episode per image ({}) | RAM agent, M=10 | env steps | minutes | env steps/s | "
    "machine | command |"
)


def table(task: str, entries: list[str], budget: Budget, out: Path, seeds: list[int] | None = None) -> str:
    """The markdown table of the scored entries, best first; over ``seeds``, each cell's mean ± std."""
    board = budget.folder(out, task)
    rows = []
    for e in entries:
        found = [run_folder(board, e, s) / "leaderboard.json" for s in (seeds or [None])]
        scored = [json.loads(path.read_text()) for path in found if path.is_file()]
        if scored:
            rows.append(row(e, scored, seeds and leaderboard_command(task, e, budget, out, seeds)))
    lines = [HEADER.format("mean ± std, each seed" if seeds else "95% CI"), "|---|---|---|---|---|---|---|---|"]
    return "\n".join(lines + [line for _, line in sorted(rows)])


def row(entry: str, scored: list[dict], command: str | None) -> tuple[float, str]:
    """One learner's table line (and its mean error, for sorting) from its seeds' ``leaderboard.json``; one run
    without ``command`` is shown with its 95% interval and its own command."""
    if command is None:
        (r,) = scored
        err, low, high = r["error"]
        error, command = f"{err:.2f}% ({low:.2f}–{high:.2f})", r["command"]
        m10 = f"{r['error_m10'][0]:.2f}%" if r["error_m10"] else "—"
    else:
        error = study.spread([r["error"][0] for r in scored])
        m10 = study.spread([r["error_m10"][0] for r in scored]) if all(r["error_m10"] for r in scored) else "—"
    steps, minutes = np.mean([r["env_steps"] for r in scored]), np.mean([r["minutes"] for r in scored])
    # Entries scored before speed and machine were recorded: the speed from their steps and minutes.
    speed = np.mean([r.get("steps_per_second") or r["env_steps"] / (60 * r["minutes"]) for r in scored])
    machine = "; ".join(sorted({r.get("machine", "—") for r in scored}))
    cells = [entry, error, m10, f"{steps:,.0f}", f"{minutes:.1f}", f"{speed:,.0f}", machine, f"`{command}`"]
    return float(np.mean([r["error"][0] for r in scored])), "| " + " | ".join(cells) + " |"


def leaderboard_command(task: str, entry: str, budget: Budget, out: Path, seeds: list[int]) -> str:
    """The command that trains and scores every seed of one entry."""
    argv = ["--task", task, *(["--minutes", f"{budget.minutes:g}"] if budget.minutes is not None else [])]
    argv += [*(["--steps", str(budget.steps)] if budget.steps is not None else []), "--seeds", *map(str, seeds)]
    return shlex.join(["python", "-m", "agents.leaderboard", *argv, "--only", entry, "--out", str(out)])


def parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="MNIST", help="RAM/<task>-v0 (default MNIST)")
    minutes = "training minutes per learner (default 10 unless --steps is given)"
    p.add_argument("--minutes", type=cli.positive_float, metavar="X", help=minutes)
    steps = "env steps per learner (the RAM agent: the whole epochs that fit), e.g. 3000000"
    p.add_argument("--steps", type=cli.positive_int, metavar="N", help=steps)
    p.add_argument("--seeds", type=cli.natural_int, nargs="+", metavar="N", help="train each entry with these seeds")
    p.add_argument("--jobs", type=cli.positive_int, default=1, help="learners trained side by side (default 1)")
    p.add_argument(
        "--only", nargs="+", choices=list(ENTRIES), metavar="ENTRY", help=f"these entries of {', '.join(ENTRIES)}"
    )
    p.add_argument("--out", type=Path, default=Path("runs/leaderboard"), help="default runs/leaderboard")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    entries = args.only or list(ENTRIES)
    budget = Budget(args.minutes if args.minutes or args.steps else 10.0, args.steps)
    seeds = args.seeds and list(dict.fromkeys(args.seeds))
    try:
        run_entries(args.task, entries, budget, args.out, args.jobs, seeds)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; the same command continues", file=sys.stderr)
        return 130
    except (UsageError, OSError, ValueError) as e:
        return cli.fail(PROG, e)
    print(table(args.task, entries, budget, args.out, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
