"""The run folder that every learner writes, so that one command reads, plots and scores any of them.

A run folder holds ``config.json`` (the whole run's settings, with ``"learner"`` naming who wrote it),
``metrics.csv`` (one row per evaluation, the columns of :data:`METRICS`), the best checkpoint chosen on
val, and TensorBoard event files (``tensorboard --logdir runs``) with the same numbers under :data:`TAGS`.

Units, the same for every learner: ``train_accuracy`` and ``val_error`` are percents; ``env_steps`` counts
env steps summed over all envs (an episode of the RAM tasks is ``n_glimpses`` steps); times are seconds.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

METRICS = (
    "epoch",  # evaluation round: the RAM agent's epoch, a library learner's n-th evaluation
    "env_steps",
    "train_loss",
    "train_accuracy",  # percent of training episodes answered right since the last row
    "val_error",  # percent of val images misclassified
    "lr",
    "samples_per_second",  # training episodes per second of this round
    "epoch_seconds",
    "elapsed_seconds",
    "glimpses",  # mean glimpses per training episode, where the agent decides when to answer (else empty)
)
# TensorBoard tag of each column; the step of every scalar is env_steps.
TAGS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_error": "val/error",
    "lr": "train/lr",
    "samples_per_second": "perf/samples_per_second",
    "glimpses": "train/glimpses",
}


class RunLog:
    """Appends rows to ``run_dir/metrics.csv`` and, unless ``tensorboard=False``, to TensorBoard events.

    ``resume_after=k`` continues a run whose checkpoint holds ``k`` finished rounds: rows after round ``k``
    (written by a round that was interrupted before its checkpoint) are dropped from the CSV and purged
    from TensorBoard. ``resume_after=None`` starts a new ``metrics.csv``.
    """

    def __init__(self, run_dir: Path, resume_after: int | None = None, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.csv"
        rows = read_rows(self.path) if resume_after is not None and self.path.is_file() else []
        kept = [r for r in rows if int(float(r["epoch"])) <= (resume_after or 0)]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = int(float(kept[-1]["env_steps"])) + 1 if kept and kept[-1].get("env_steps") else None
            self.writer = SummaryWriter(str(Path(run_dir)), purge_step=purge)

    def write(self, **row: float) -> None:
        """One round's numbers; missing columns are left empty (NaN when read back)."""
        unknown = set(row) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics columns {sorted(unknown)}; the columns are {METRICS}")
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=METRICS).writerow({k: _fmt(row.get(k)) for k in METRICS})
        if self.writer is not None:
            for key, tag in TAGS.items():
                if row.get(key) is not None:
                    self.writer.add_scalar(tag, row[key], int(row["env_steps"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_metrics(run_dir: Path) -> dict[str, list[float]]:
    """The columns of ``run_dir/metrics.csv`` as lists of floats (an empty cell is NaN)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}")
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} holds no finished round yet")
    return {key: [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows] for key in rows[0]}


def summary(algo: str, run_dir: Path, timesteps: int, session_seconds: float, **paths: Path) -> dict:
    """What a library learner's ``train`` returns: its steps and times, last and best val error, last training
    accuracy (percents, from ``metrics.csv``) and the ``paths`` of its checkpoints."""
    m = read_metrics(run_dir)
    return {
        "algo": algo,
        "run_dir": str(run_dir),
        "timesteps": int(timesteps),
        "elapsed_seconds": m["elapsed_seconds"][-1],
        "session_seconds": round(session_seconds, 2),
        "val_error": m["val_error"][-1],
        "best_val_error": min(m["val_error"]),
        "train_accuracy": m["train_accuracy"][-1],
        **{name: str(path) for name, path in paths.items()},
    }


def read_config(path: Path, learner: str, needs: tuple[str, ...]) -> dict:
    """A run folder's ``config.json`` with the keys ``needs``; a clear error where it is missing or not one.

    FileNotFoundError where there is no file, ValueError (naming ``learner``'s run config) where it is not JSON or
    lacks a key.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not set(needs) <= set(config):
        names = ", ".join(f"'{key}'" for key in needs[:-1]) + f" and '{needs[-1]}'"
        raise ValueError(f"{path} is not {learner} run config (needs {names})")
    return config
