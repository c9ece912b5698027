"""Learning curves from run folders of any learner: val error against env steps and against training time.

python -m agents.curves runs/MNIST-v0-ram-seed1 runs/MNIST-v0-ppo-seed1 --out results/curves.png

Every learner writes the same ``metrics.csv`` (:mod:`agents.runlog`), so a RAM run and a
Stable-Baselines3 run share both axes: ``env_steps`` (env steps summed over envs: the experience each
learner has used) and ``elapsed_seconds`` (training time). Epochs are not shared, since the RAM agent's
epoch and an SB3 evaluation round cover different numbers of steps; the first panel falls back to them
only when no run records ``env_steps`` (run folders that predate the contract).

``--reach ERROR`` prints, instead of drawing, when each run's val error first fell to ``ERROR`` percent or below
(time to accuracy, e.g. to the reference implementation's test error):

python -m agents.curves results/exp2 --reach 1.87
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from agents.runlog import read_metrics


def label_of(run: Path) -> str:
    """The run's folder name and what trained it (the RAM agent's task, or the SB3 or RLlib algorithm)."""
    path = Path(run) / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    if config.get("learner") == "rllib":
        what = f"RLlib {config.get('algo', '?')}"
    elif config.get("learner") == "sb3" or config.get("algo", "ram") != "ram":
        what = f"SB3 {config.get('algo', '?')}"
    else:
        what = f"RAM, {config.get('env_id', '?')}"
    return f"{Path(run).name} ({what})"


def has_env_steps(metrics: dict[str, list[float]]) -> bool:
    return any(not math.isnan(v) for v in metrics.get("env_steps", []))


def figure(runs: list[Path]):
    """A matplotlib figure of every run's val error on two panels: env steps (or epochs), training minutes."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {run: read_metrics(run) for run in runs}
    by_steps = any(has_env_steps(m) for m in metrics.values())
    fig, (first, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for i, (run, m) in enumerate(metrics.items()):
        label, color = label_of(run), f"C{i % 10}"  # one colour per run on both panels
        if not by_steps:
            first.plot(m["epoch"], m["val_error"], color=color)
        elif has_env_steps(m):
            first.plot(m["env_steps"], m["val_error"], color=color)
        else:
            label += " [no env_steps]"
        by_time.plot([s / 60 for s in m["elapsed_seconds"]], m["val_error"], label=label, color=color)
    if by_steps:
        first.set(xlabel="env steps (all envs)", xscale="log")
    else:
        first.set(xlabel="epoch")
    first.set(ylabel="val error (%)", yscale="log")
    by_time.set(xlabel="training time (minutes)")
    for ax in (first, by_time):
        ax.grid(True, which="both", alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    by_time.legend(fontsize=8)
    fig.tight_layout()
    return fig


def time_to(run: Path, error: float) -> tuple[int, float, float] | None:
    """The first row of ``run``'s metrics whose val error is at most ``error`` percent: (epoch, val error, training
    minutes), or None if none is."""
    m = read_metrics(run)
    for epoch, val, seconds in zip(m["epoch"], m["val_error"], m["elapsed_seconds"]):
        if val <= error:
            return int(epoch), val, seconds / 60
    return None


def reach_line(run: Path, error: float) -> str:
    """One line of ``--reach``: when ``run`` reached ``error``, or its best val error if it never did."""
    found = time_to(run, error)
    if found is None:
        return f"{run}: val error never <= {error:g}% (best {min(read_metrics(run)['val_error']):g}%)"
    epoch, val, minutes = found
    return f"{run}: val error <= {error:g}% first at epoch {epoch} ({val:g}%), after {minutes:.1f} min of training"


def plot(runs: list[Path], out: Path) -> Path:
    """Write :func:`figure` of ``runs`` to ``out``."""
    import matplotlib.pyplot as plt

    fig = figure(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders holding metrics.csv (and config.json)")
    p.add_argument("--out", type=Path, default=Path("curves.png"))
    p.add_argument("--reach", type=float, metavar="ERROR", help="print when each val error first fell to ERROR %%")
    args = p.parse_args(argv)
    try:
        if args.reach is not None:
            print("\n".join(reach_line(run, args.reach) for run in args.runs))
        else:
            print(f"wrote {plot(args.runs, args.out)}")
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
