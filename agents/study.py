"""One training command over several seeds: each seed's test error, their mean and standard deviation.

    python -m agents.study --seeds 1 2 3 --out runs/study-exp1 -- --preset exp1
    python -m agents.study --seeds 1 2 3 --out runs/study-exp1 --max-minutes 90 -- --preset exp1
    python -m agents.study --seeds 1 2 3 --out runs/study-exp2 --nproc 2 -- --preset exp2   # each seed on torchrun

The flags after ``--`` are train_agent.py's, for any learner (``--seed``, ``--out`` and ``--resume`` are the
study's). Seed N trains into ``<out>/seed<N>/`` (its output in ``train.log`` there and on the screen), one seed at
a time, then is scored on test as evaluate.py scores it, into ``scores.json``: the RAM agent's one sampled rollout
(M=1) and its run's ``--test-rollouts`` averaged (M=10); a library learner's one deterministic episode. The summary
reads only those files and each seed's ``config.json`` and ``metrics.csv``, never a checkpoint.

The same command resumes a study: scored seeds are read, an interrupted one continues with ``--resume``, missing
ones start. ``--max-minutes`` stops the study that long after it started (the seed in training is stopped as
Ctrl-C stops it, losing at most its current epoch), to be continued by the same command. Seeds whose settings
differ in anything but the seed (and what a resume may change) are refused.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from agents import cli, run_scores
from agents.cli import UsageError
from agents.runlog import read_metrics
from agents.training.scoring import error_with_interval

PROG = "python -m agents.study"
SCORES = "scores.json"  # a seed's test errors, written once it has trained to the end
TRAINER = [sys.executable, "-m", "train_agent"]  # the command that trains one seed on one process
OWN_FLAGS = ("--seed", "--out", "--resume")
# Settings of config.json that may differ between the seeds of one study: the seed, and where and how long it ran.
FREE = ("seed", "max_minutes", "data_dir", "device", "env_device", "tensorboard")


def cpu_model() -> str:
    """This machine's CPU, as the README names machines: its model name and core count."""
    name = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def score_run(run: Path) -> dict:
    """The run's test errors as evaluate.py prints them (``[error, low, high]`` in percent, 95% interval), and the
    machine that scored it, which is the one that finished training it."""
    lines = [(what, correct) for what, correct in run_scores.score_run(run) if correct is not None]
    errors = [list(error_with_interval(correct)) for _, correct in lines]
    # The RAM agent: M=10 (its --test-rollouts averaged), then M=1 (one sampled rollout); a library learner: one line.
    return dict(error=errors[-1], error_m10=errors[0] if len(errors) > 1 else None, machine=cpu_model())


def run_facts(run: Path) -> dict:
    """A trained run's epochs, env steps, training minutes and env steps per second, from its ``metrics.csv``."""
    m = read_metrics(run)
    seconds = m["elapsed_seconds"][-1]
    best = int(m["epoch"][int(np.nanargmin(m["val_error"]))])
    return dict(
        epochs=int(m["epoch"][-1]),
        best_epoch=best,
        env_steps=int(m["env_steps"][-1]),
        minutes=seconds / 60,
        steps_per_second=m["env_steps"][-1] / seconds if seconds else math.nan,
    )


def settings_of(run: Path) -> dict:
    """The run's ``config.json`` flattened to ``{"model.std": 0.15, ...}``, without the :data:`FREE` settings."""
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{run} has no readable config.json ({e}); remove the folder or choose another --out")

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if key in FREE:
                continue
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out

    return flat(config)


def check_same_settings(runs: list[Path]) -> None:
    """Refuse, in one line, seeds of one study that were trained with different settings."""
    if not runs:
        return
    first = settings_of(runs[0])
    for run in runs[1:]:
        other = settings_of(run)
        for key in sorted(first.keys() | other.keys()):
            if first.get(key) != other.get(key):
                raise UsageError(
                    f"{runs[0]} and {run} were trained with different settings ({key}: {first.get(key)} against "
                    f"{other.get(key)}); a study's seeds differ only in --seed: remove one or choose another --out"
                )


def seed_folder(out: Path, seed: int) -> Path:
    return out / f"seed{seed}"


def started(out: Path, seeds: list[int]) -> list[Path]:
    """The seeds' folders that hold a run (scored, or trained for at least the start)."""
    return [seed_folder(out, s) for s in seeds if (seed_folder(out, s) / "config.json").is_file()]


def check_flags(out: Path, flags: list[str]) -> None:
    """The flags are the ones the study in ``out`` was started with (kept in ``study.json``), else refused."""
    given = [f for f in OWN_FLAGS if f in flags]
    if given:
        raise UsageError(f"{given[0]} after -- is the study's to set: drop it (seeds go in --seeds, the folder --out)")
    path = out / "study.json"
    if path.is_file():
        saved = json.loads(path.read_text())["flags"]
        if saved != flags:
            raise UsageError(
                f"{out} is a study of `{shlex.join(saved)}`, not `{shlex.join(flags)}`: give the same flags after -- "
                "or choose another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"flags": flags}, indent=2) + "\n")


def trainer(nproc: int) -> tuple[list[str], str]:
    """The command that trains one seed, and how to show it: train_agent.py, under torchrun for several processes
    (``--standalone``: a free port of its own)."""
    if nproc == 1:
        return TRAINER, "python train_agent.py"
    launch = ["--standalone", "--nproc_per_node", str(nproc)]
    command = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "train_agent"]
    return command, "torchrun " + shlex.join([*launch, "train_agent.py"])


def train_seed(flags: list[str], seed: int, folder: Path, deadline: float | None, nproc: int = 1, place="") -> bool:
    """Train one seed to its end (``--resume`` if its folder exists), its output on the screen and in
    ``train.log``; False if ``deadline`` (a ``time.monotonic()``) came first and the run was stopped, resumable."""
    command, shown = trainer(nproc)
    ours = [*flags, "--seed", str(seed), "--out", str(folder), *(["--resume"] if folder.is_dir() else [])]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}{place}: {shown} {shlex.join(ours)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its progress lines as they come
    with open(folder / "train.log", "a") as log:
        proc = subprocess.Popen([*command, *ours], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            stopped = relay(proc, log, f"seed {seed} | ", deadline)
        except KeyboardInterrupt:  # Ctrl-C reached the run too; a kill of the study alone is passed on
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            raise
    if stopped:
        return False
    if proc.returncode != 0:
        raise UsageError(f"seed {seed} failed (exit {proc.returncode}); see {folder / 'train.log'}")
    return True


def relay(proc: subprocess.Popen, log, prefix: str, deadline: float | None) -> bool:
    """Copy the run's output to ``log`` and the screen until it ends; at ``deadline`` stop it as a kill does
    (SIGTERM: it keeps its last finished epoch). True if it was stopped.

    What the run prints once stopped goes to ``log`` only: torchrun reports the SIGTERM it was sent with its own
    traceback, and the study's one line says how to continue."""
    stopped, stopping = False, []

    def stop(*_):
        stopping.append(True)
        proc.send_signal(signal.SIGTERM)

    if deadline is not None:
        timer = max(0.0, deadline - time.monotonic())
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, timer or 0.001)
    try:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if not stopping:
                print(prefix + line, end="", flush=True)
        proc.wait()
    finally:
        if deadline is not None:
            stopped = signal.getitimer(signal.ITIMER_REAL)[0] == 0 and proc.returncode != 0
            signal.setitimer(signal.ITIMER_REAL, 0)
    return stopped


def seed_results(out: Path, seeds: list[int]) -> list[dict]:
    """Each scored seed's ``scores.json`` and run facts, in ``seeds``' order."""
    done = [s for s in seeds if (seed_folder(out, s) / SCORES).is_file()]
    check_same_settings([seed_folder(out, s) for s in done])
    return [
        {"seed": s, **json.loads((seed_folder(out, s) / SCORES).read_text()), **run_facts(seed_folder(out, s))}
        for s in done
    ]


def spread(values: list[float]) -> str:
    """``mean ± std`` (the sample standard deviation, n - 1) and each value, in percent."""
    each = ", ".join(f"{v:.2f}" for v in values)
    if len(values) == 1:
        return f"{values[0]:.2f}% (one seed)"
    return f"{np.mean(values):.2f}% ± {np.std(values, ddof=1):.2f} ({each})"


def summary_row(results: list[dict], command: str) -> str:
    """The markdown table (header and one row) of a study's scored seeds."""
    m1 = spread([r["error"][0] for r in results])
    m10 = spread([r["error_m10"][0] for r in results]) if all(r["error_m10"] for r in results) else "—"
    machines = sorted({r["machine"] for r in results})
    minutes = np.mean([r["minutes"] for r in results])
    seeds = ", ".join(str(r["seed"]) for r in results)
    return "\n".join(
        [
            "| seeds | test error, M=10: mean ± std (each seed) | M=1 (a library learner: one episode) | "
            "training minutes, mean | env steps/s, mean | machine | command |",
            "|---|---|---|---|---|---|---|",
            f"| {len(results)} ({seeds}) | {m10} | {m1} | {minutes:.1f} | "
            f"{np.mean([r['steps_per_second'] for r in results]):,.0f} | {'; '.join(machines)} | `{command}` |",
        ]
    )


def print_seeds(results: list[dict]) -> None:
    for r in results:
        m10 = f"M=10 {r['error_m10'][0]:.2f}%  " if r["error_m10"] else ""
        print(
            f"seed {r['seed']}: test error {m10}M=1 {r['error'][0]:.2f}%  ({r['epochs']} epochs, best {r['best_epoch']}"
            f", {r['env_steps']:,} env steps, {r['minutes']:.1f} min, {r['steps_per_second']:,.0f} steps/s, "
            f"{r['machine']})"
        )


def run_study(out: Path, seeds: list[int], flags: list[str], max_minutes: float | None, nproc: int = 1) -> bool:
    """Train and score every seed not yet scored; False if ``max_minutes`` ran out first."""
    check_flags(out, flags)
    check_same_settings(started(out, seeds))
    todo = [s for s in seeds if not (seed_folder(out, s) / SCORES).is_file()]
    if not todo:
        return True
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    with hold(out):
        for seed in todo:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            folder = seed_folder(out, seed)
            if not train_seed(flags, seed, folder, deadline, nproc, f" ({seeds.index(seed) + 1} of {len(seeds)})"):
                return False
            check_same_settings(started(out, seeds))
            (folder / SCORES).write_text(json.dumps(score_run(folder), indent=2) + "\n")
    return True


def hold(out: Path):
    """The study folder's lock, held while it trains: a second study there would train the same seed twice."""
    handle = open(out / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another study is training in {out}; let it end (or stop it), then run this command again")
    return handle


def parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s --seeds N [N ...] --out DIR [--max-minutes X] [--nproc N] -- TRAIN_AGENT_FLAGS",
    )
    p.add_argument("--seeds", type=cli.natural_int, nargs="+", required=True, metavar="N", help="the seeds to train")
    p.add_argument("--out", type=Path, required=True, help="the study's folder: <out>/seed<N>/ per seed")
    budget = "stop after this many minutes (the same command continues), default: when every seed is scored"
    p.add_argument("--max-minutes", type=cli.positive_float, metavar="X", help=budget)
    nproc = "train each seed on N processes (torchrun --nproc_per_node N); default 1"
    p.add_argument("--nproc", type=cli.positive_int, default=1, metavar="N", help=nproc)
    return p


def main(argv: list[str] | None = None) -> int:
    import torch

    argv = sys.argv[1:] if argv is None else argv
    ours, flags = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser().parse_args(ours)
    if len(set(args.seeds)) < len(args.seeds):
        return cli.fail(PROG, f"--seeds {' '.join(map(str, args.seeds))} names a seed twice")
    torch.set_num_threads(1)  # scoring beside other work: never slow on a busy machine
    signal.signal(signal.SIGTERM, interrupt)
    command = shlex.join(["python", "-m", "agents.study", *argv])
    try:
        finished = run_study(args.out, args.seeds, flags, args.max_minutes, args.nproc)
        results = seed_results(args.out, args.seeds)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; continue with: {command}", file=sys.stderr)
        return 130
    except (UsageError, OSError, ValueError) as e:
        return cli.fail(PROG, e)
    print_seeds(results)
    if not finished:
        print(
            f"--max-minutes {args.max_minutes:g} reached: {len(results)} of {len(args.seeds)} seeds scored; "
            f"continue with: {command}"
        )
    if results:
        print(summary_row(results, shlex.join(["python", "-m", "agents.study", *argv_without_budget(argv)])))
    return 0


def interrupt(signum, frame):
    """A kill (SIGTERM) stops the study as Ctrl-C does: the seed in training keeps its last epoch."""
    raise KeyboardInterrupt


def argv_without_budget(argv: list[str]) -> list[str]:
    """The study's command line as the README quotes it: without this session's ``--max-minutes``."""
    if "--max-minutes" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        i = argv.index("--max-minutes")
        return argv[:i] + argv[i + 2 :]
    return argv


if __name__ == "__main__":
    sys.exit(main())
