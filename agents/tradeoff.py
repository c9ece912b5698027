"""Test error against the glimpses spent, from RAM run folders: stop agents beside fixed-budget agents.

python -m agents.tradeoff runs/anytime/exp1-* --paper exp1 --out results/anytime/exp1.png

Every run's ``best.pt`` is scored on the test split in both protocols (as ``evaluate.py`` prints them): M=10, the
class probabilities of the run's ``--test-rollouts`` sampled rollouts averaged, and M=1, one sampled rollout.
A stop agent (``answer=any_step``) is placed at the mean number of glimpses its episodes took, a fixed-budget
agent at its ``n_glimpses``. The command prints the table it plotted (markdown) and writes the figure;
``--paper`` adds the paper's errors for its fixed budgets as points.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym

from agents import cli
from agents.checkpoint import CheckpointError
from agents.cli import UsageError
from ram_env import DatasetError

PROG = "python -m agents.tradeoff"
# Mnih et al. (2014), NIPS version, Tables 1 and 2: test error (%) of RAM models trained for each number of
# glimpses (exp1: 28x28 MNIST, 8x8, 1 scale; exp3: 60x60 cluttered MNIST, 12x12, 3 scales).
PAPER = {
    "exp1": {2: 3.79, 3: 1.51, 4: 1.54, 5: 1.34, 6: 1.12, 7: 1.07},
    "exp3": {4: 4.96, 6: 4.08, 8: 4.04},
}


@dataclass
class Point:
    """One run's place on the plot: its glimpses and test errors (percent) in both protocols."""

    run: str
    kind: str  # "stop" (answers when it decides) or "fixed" (answers after n_glimpses)
    glimpse_cost: float
    rollouts: int
    glimpses: float  # mean glimpses over the M=10 protocol's episodes
    error: float  # M=10
    glimpses_m1: float
    error_m1: float


def score_run(run: Path, device: str = "cpu", limit: int | None = None) -> Point:
    """Score a run folder's ``best.pt`` on test in both protocols."""
    from agents.training import run_state, scoring

    path = run / "best.pt" if run.is_dir() else run
    model, config = run_state.load_model(path, device)
    scores = {
        m: scoring.evaluate_split(model, config, "test", m, device, limit=limit, sample=True)
        for m in (config.test_rollouts, 1)
    }
    averaged, single = scores[config.test_rollouts], scores[1]
    task = {**gym.spec(config.env_id).kwargs, **config.env_kwargs}
    return Point(
        run=str(run),
        kind="stop" if model.config.halting else "fixed",
        glimpse_cost=float(task.get("glimpse_cost", 0.0)),
        rollouts=config.test_rollouts,
        glimpses=float(averaged.glimpses.mean()),
        error=100 * (1 - float(averaged.correct.mean())),
        glimpses_m1=float(single.glimpses.mean()),
        error_m1=100 * (1 - float(single.correct.mean())),
    )


def table(points: list[Point]) -> str:
    """The scores as a markdown table, fixed budgets first, then stop agents by glimpse cost."""
    lines = [
        "| run | agent | mean glimpses (M=10) | test error, M=10 | mean glimpses (M=1) | test error, M=1 |",
        "|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p.kind == "stop", p.glimpse_cost, p.glimpses)):
        what = f"stop, cost {p.glimpse_cost:g}" if p.kind == "stop" else f"fixed, {p.glimpses:.0f} glimpses"
        lines.append(
            f"| {Path(p.run).name} | {what} | {p.glimpses:.2f} | {p.error:.2f}% | {p.glimpses_m1:.2f} | "
            f"{p.error_m1:.2f}% |"
        )
    return "\n".join(lines)


def by_setting(points: list[Point]) -> dict[tuple, list[Point]]:
    """The runs grouped by agent and budget: seeds of one setting share a key, ``(kind, cost or glimpses)``."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.kind, p.glimpse_cost if p.kind == "stop" else round(p.glimpses)), []).append(p)
    return groups


def _spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0


def figure(points: list[Point], paper: dict[int, float] | None, title: str):
    """Error against mean glimpses: one line per kind of agent and protocol, the paper's budgets as crosses.

    Seeds of one setting (the same agent and budget) are one point at their mean, with bars of one standard
    deviation, so that a line joins settings, never seeds.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    groups = by_setting(points)
    for kind, color in (("fixed", "tab:blue"), ("stop", "tab:orange")):
        settings = [(key, g) for key, g in groups.items() if key[0] == kind]
        settings.sort(key=lambda item: _spread([p.glimpses for p in item[1]])[0])  # a line left to right
        if not settings:
            continue
        name = "fixed budget" if kind == "fixed" else "learned stop"
        for fields, style, label in (("glimpses error", "o-", "M=10"), ("glimpses_m1 error_m1", "o--", "M=1")):
            x, y = zip(*([_spread([getattr(p, f) for p in g]) for f in fields.split()] for _, g in settings))
            face = dict(mfc="none") if label == "M=1" else {}
            ax.errorbar(
                [m for m, _ in x],
                [m for m, _ in y],
                xerr=[s for _, s in x],
                yerr=[s for _, s in y],
                fmt=style,
                color=color,
                capsize=2,
                label=f"{name}, {label}",
                **face,
            )
            if kind == "stop" and label == "M=10":
                for ((_, cost), _), (gx, _), (gy, _) in zip(settings, x, y):
                    ax.annotate(f"{cost:g}", (gx, gy), textcoords="offset points", xytext=(4, 4))
    if paper:
        ax.plot(list(paper), list(paper.values()), "kx", ms=8, label="paper (fixed budget)")
    ax.set_xlabel("glimpses per image (mean)")
    ax.set_ylabel("test error (%)")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 1.5, 2, 3, 4, 5, 7)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    return fig


def parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="RAM run folders (each scores its best.pt) or checkpoints")
    p.add_argument("--paper", choices=sorted(PAPER), help="add the paper's errors for this experiment's budgets")
    p.add_argument("--out", type=Path, default=Path("tradeoff.png"), help="the figure (default tradeoff.png)")
    p.add_argument("--title", default="test error against glimpses", help="the figure's title")
    p.add_argument("--limit", type=cli.positive_int, help="score only the first N test images (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        for run in args.runs:
            if not (run / "best.pt" if run.is_dir() else run).is_file():
                raise UsageError(f"{run}: no best.pt there; give RAM run folders or their .pt checkpoints")
        points = []
        for k, run in enumerate(args.runs):
            print(f"scoring {run} ({k + 1}/{len(args.runs)})", file=sys.stderr, flush=True)
            points.append(score_run(run, limit=args.limit))
        fig = figure(points, PAPER.get(args.paper), args.title)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=120)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, CheckpointError, DatasetError, OSError, ValueError) as e:
        return cli.fail(PROG, e)
    print(table(points))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
