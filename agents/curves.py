"""Learning curves from run folders: val error against epoch and against training time.

python -m agents.curves runs/MNIST-v0-ram-seed1 [more runs...] --out results/curves.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_metrics(run: Path) -> dict[str, list[float]]:
    """The columns of ``run/metrics.csv`` as lists of floats."""
    path = Path(run) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {run}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no finished epoch yet")
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def label_of(run: Path) -> str:
    config = json.loads((Path(run) / "config.json").read_text())
    return f"{Path(run).name} ({config.get('env_id', config.get('algo', '?'))})"


def plot(runs: list[Path], out: Path) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for run in runs:
        m = read_metrics(run)
        by_epoch.plot(m["epoch"], m["val_error"], label=label_of(run))
        by_time.plot([s / 60 for s in m["elapsed_seconds"]], m["val_error"], label=label_of(run))
    by_epoch.set(xlabel="epoch", ylabel="val error (%)", yscale="log")
    by_time.set(xlabel="training time (minutes)")
    for ax in (by_epoch, by_time):
        ax.grid(True, which="both", alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    by_epoch.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders holding metrics.csv and config.json")
    p.add_argument("--out", type=Path, default=Path("curves.png"))
    args = p.parse_args(argv)
    try:
        print(f"wrote {plot(args.runs, args.out)}")
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
