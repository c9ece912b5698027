"""Score a trained agent on every image of a split exactly once; watch or record its episodes.

    python evaluate.py runs/MNIST-v0-ram-seed1                        # test error of best.pt, with a 95% interval
    python evaluate.py runs/MNIST-v0-ram-seed1/last.pt --split val --test-rollouts 10
    python evaluate.py runs/MNIST-v0-ram-seed1 --per-step               # the error after 1, 2, ... glimpses
    python evaluate.py results/exp2 --digit-size 14,20,28,36,42       # the error at other digit sizes
    python evaluate.py runs/MNIST-v0-ram-seed1 --render human         # watch test episodes in a window
    python evaluate.py runs/MNIST-v0-ram-seed1 --gif episodes.gif     # a 5x5 grid of test episodes
    python evaluate.py runs/MNIST-v0-ram-seed1 --video videos/        # MP4s (needs: pip install -e '.[video]')

Works on RAM agent checkpoints (``*.pt`` or a run folder), Stable-Baselines3 runs (``--algo ppo|a2c|recurrent_ppo``
run folders or their ``*.zip``) and RLlib runs (``--algo rllib_ppo`` run folders, scored without a Ray cluster);
the checkpoint's config is all it needs.

A RAM agent is scored under two protocols: the class probabilities of ``--test-rollouts`` episodes averaged (with
one, the policy's mean locations), and one episode with sampled locations. An agent that answers when it stops
(``answer=any_step``) also reports the glimpses it used; ``--per-step`` scores a fixed-budget agent's answer
after each glimpse.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents import cli, run_scores
from agents.checkpoint import CheckpointError
from agents.cli import UsageError, flag, natural_int, positive_int
from agents.training.scoring import error_with_interval
from ram_env import DatasetError, TaskConfig, sources

PROG = "evaluate.py"
EPISODES = 25  # episodes watched or recorded when --episodes is not given
DEVICE = "cpu"  # evaluation runs alone: the CPU unless asked
# Bad input, a missing optional package: one line, no traceback.
EXPECTED_ERRORS = (
    UsageError,
    CheckpointError,
    DatasetError,
    OSError,
    ValueError,
    ImportError,
    gym.error.DependencyNotInstalled,
)


def parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a run folder (uses best.pt / best.zip) or a checkpoint file")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="default test")
    flag(p, "test_rollouts", "episodes per image, class probabilities averaged (default: the run's)", type=positive_int)
    flag(p, "limit", "score only the first N images of the split (default: all)", type=positive_int)
    flag(p, "data_dir", "folder holding <data>/raw/ (default: the run's, else $RAM_DATA_DIR, else ./data)")
    flag(p, "device", f"cpu, cuda, cuda:1, auto (default {DEVICE})")
    flag(p, "threads", "CPU threads for torch (default: one per core; pass 1 on a busy machine)", type=positive_int)
    flag(p, "seed", "random seed of the sampled locations (default 0)", type=natural_int)
    flag(p, "per_step", "also score the answer after each glimpse (a fixed-budget RAM agent)", action="store_true")
    size_help = "score a RAM agent with digits of these sides instead of its task's (14,20,28,36,42): a line each"
    flag(p, "digit_size", size_help, type=sides)
    show = p.add_argument_group("watch or record episodes (instead of scoring)")
    one = show.add_mutually_exclusive_group()
    one.add_argument("--render", choices=["human"], help="play episodes in a pygame window")
    one.add_argument("--gif", type=Path, metavar="PATH", help="write an animated GIF of --episodes episodes, tiled")
    one.add_argument(
        "--video", type=Path, metavar="DIR", help="record --episodes episodes as MP4 files (Gymnasium's RecordVideo)"
    )
    flag(
        show,
        "episodes",
        f"episodes to watch or record: the first images of --split (default {EPISODES})",
        type=positive_int,
    )
    return p


def sides(text: str) -> list[int]:
    """An argparse type: digit sides in px, comma-separated."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be digit sides in px, comma-separated (14,28,42), got {text!r}")
    return values


def check_flags(args, sb3: bool) -> None:
    """A flag that would be silently ignored is named instead."""
    watching = args.render or args.gif or args.video
    keys = ("test_rollouts", "limit", "seed", "per_step", "device", "episodes", "digit_size")
    given = [k for k in keys if getattr(args, k) is not None and getattr(args, k) is not False]  # --seed 0 counts
    for key in given:
        name = "--" + key.replace("_", "-")
        if watching and key in ("test_rollouts", "limit", "seed", "per_step", "digit_size"):
            raise UsageError(f"{name} applies to scoring; --render, --gif and --video show --episodes episodes")
        if not watching and key == "episodes":
            raise UsageError(f"{name} applies to --render, --gif and --video; to score fewer images use --limit")
        if sb3 and key in ("test_rollouts", "seed", "per_step", "device", "digit_size"):
            raise UsageError(
                f"{name} applies to RAM agent checkpoints; an SB3 or RLlib run plays one deterministic episode"
            )


def load_agent(args, sb3: bool):
    """The agent's task keywords (for GlimpseEnv) and its policy over batches of observations."""
    if sb3:
        runs = run_scores.library(args.checkpoint)
        model, config = runs.load(args.checkpoint)
        kwargs = {k: v for k, v in config["env"].items() if k != "split"}
        policy = runs.policy_of(model, config["algo"], kwargs)
    else:
        from agents.training.config import resolve_device
        from agents.training.policy import BatchPolicy
        from agents.training.run_state import load_model

        device = resolve_device(args.device or DEVICE)
        model, config = load_model(args.checkpoint, device)
        kwargs = {**gym.spec(config.env_id).kwargs, **config.env_kwargs, "data_dir": config.data_dir}
        policy = BatchPolicy(model, device)
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    kwargs["split"] = args.split
    return kwargs, policy


def show(args, sb3: bool) -> str:
    """Watch or record episodes of the first ``--episodes`` images of the split."""
    from ram_env import GlimpseEnv, GlimpseVectorEnv, recording

    kwargs, policy = load_agent(args, sb3)
    indices = np.arange(args.episodes or EPISODES)
    n_images = len(sources.of_config(TaskConfig.from_kwargs(kwargs)))
    if len(indices) > n_images:
        raise UsageError(f"--episodes {len(indices)}: the {args.split} split has {n_images} images")
    if args.gif:
        envs = GlimpseVectorEnv(len(indices), render_mode="rgb_array", **kwargs)
        recording.record_gif(envs, policy, args.gif, indices, max_side=800)
        return f"wrote {args.gif}"
    if args.video:
        paths = recording.record_video(
            GlimpseEnv(render_mode="rgb_array", **kwargs), policy, args.video, indices=indices
        )
        return f"wrote {len(paths)} videos to {args.video}"
    env = GlimpseEnv(render_mode="human", **kwargs)
    results = recording.watch(env, policy, indices=indices)
    env.close()
    return f"{sum(results)} of {len(results)} episodes right"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        if not args.checkpoint.exists():
            raise UsageError(f"{args.checkpoint}: no such checkpoint file or run folder")
        sb3 = run_scores.is_sb3(args.checkpoint)
        check_flags(args, sb3)
        cli.check_device(args.device or DEVICE)
        if sb3:
            run_scores.check_sb3_task(args.checkpoint)
        if args.render or args.gif or args.video:
            print(show(args, sb3))
            return 0
        lines = []
        for size in args.digit_size or [None]:
            lines += run_scores.score_run(
                args.checkpoint,
                args.split,
                args.data_dir,
                args.limit,
                args.test_rollouts,
                args.seed or 0,
                args.per_step,
                args.device or DEVICE,
                size,
            )
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as e:
        return cli.fail(PROG, e)
    seconds = time.perf_counter() - start
    took = f" ({seconds:.0f}s)"  # on the first line, as before the second protocol was added
    for what, correct in lines:
        if correct is None:
            print(what)
            continue
        err, low, high = error_with_interval(correct)
        interval = f"(95% CI {low:.2f}-{high:.2f}%)"
        print(f"{args.split} error {err:.2f}% {interval} on {len(correct)} images — {what}{took}")
        took = ""
    return 0


if __name__ == "__main__":
    sys.exit(main())
