"""Score a trained agent on every image of a split exactly once; watch or record its episodes.

    python evaluate.py runs/MNIST-ram-seed1                      # test error of best.pt, with a 95% interval
    python evaluate.py runs/MNIST-ram-seed1/last.pt --split val --test_rollouts 10
    python evaluate.py runs/MNIST-ram-seed1 --render human        # watch test episodes in a window
    python evaluate.py runs/MNIST-ram-seed1 --gif episodes.gif    # a 5x5 grid of test episodes
    python evaluate.py runs/MNIST-ram-seed1 --video videos/       # MP4s (needs: pip install -e '.[video]')

Works on RAM agent checkpoints (``*.pt`` or a run folder) and Stable-Baselines3 runs (``--algo ppo|a2c|recurrent_ppo``
run folders or their ``*.zip``); the checkpoint's config is all it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.checkpoint import CheckpointError
from agents.reinforce import error_with_interval
from ram_env.datasets import DatasetError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a run folder (uses best.pt / best.zip) or a checkpoint file")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="default test")
    p.add_argument(
        "--test_rollouts", type=int, help="episodes per image, class probabilities averaged (default: the run's)"
    )
    p.add_argument("--limit", type=int, help="score only the first N images of the split")
    p.add_argument(
        "--data-dir", help="folder holding <data>/raw/ (default: the run's, else $RAM_DATA_DIR, else ./data)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto (default cpu)")
    p.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's, one per core; pass 1 on a busy machine)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the sampled locations when --test_rollouts > 1 (default 0)"
    )
    show = p.add_argument_group("watch or record episodes (instead of scoring)")
    show.add_argument("--render", choices=["human"], help="play episodes in a pygame window")
    show.add_argument("--gif", type=Path, metavar="PATH", help="write an animated GIF of --episodes episodes, tiled")
    show.add_argument(
        "--video", type=Path, metavar="DIR", help="record --episodes episodes as MP4 files (Gymnasium's RecordVideo)"
    )
    show.add_argument(
        "--episodes", type=int, default=25, help="episodes to watch or record: the first images of --split (default 25)"
    )
    return p


def load_agent(args: argparse.Namespace):
    """The agent's task keywords (for GlimpseEnv) and its policy over batches of observations."""
    if is_sb3(args.checkpoint):
        from agents import sb3

        model, config = sb3.load(args.checkpoint)
        kwargs = {k: v for k, v in config["env"].items() if k != "split"}
        if args.data_dir:
            kwargs["data_dir"] = args.data_dir
        policy = sb3.policy_of(model, config["algo"], kwargs)
    else:
        from agents import reinforce
        from agents.ram import BatchPolicy

        model, config = reinforce.load_model(args.checkpoint)
        kwargs = {**gym.spec(config.env_id).kwargs, **config.env_kwargs, "data_dir": config.data_dir}
        policy = BatchPolicy(model)
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    kwargs["split"] = args.split
    return kwargs, policy


def show(args: argparse.Namespace) -> str:
    """Watch or record episodes of the first ``--episodes`` images of the split."""
    from ram_env import GlimpseEnv, GlimpseVectorEnv, recording

    kwargs, policy = load_agent(args)
    indices = np.arange(args.episodes)
    if args.gif:
        envs = GlimpseVectorEnv(args.episodes, render_mode="rgb_array", **kwargs)
        recording.record_gif(envs, policy, args.gif, indices, max_side=800)
        return f"wrote {args.gif}"
    if args.video:
        paths = recording.record_video(GlimpseEnv(render_mode="rgb_array", **kwargs), policy, args.video, indices=indices)
        return f"wrote {len(paths)} videos to {args.video}"
    env = GlimpseEnv(render_mode="human", **kwargs)
    results = recording.watch(env, policy, indices=indices)
    env.close()
    return f"{sum(results)} of {len(results)} episodes right"


def is_sb3(path: Path) -> bool:
    """Stable-Baselines3 runs are a .zip, or a folder whose config.json names an SB3 algorithm."""
    if path.suffix == ".zip":
        return True
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        try:
            return json.loads(config.read_text()).get("algo", "ram") != "ram"
        except (json.JSONDecodeError, AttributeError):
            return False
    return False


def score(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """Correct flags for each scored image, and a description of what was scored."""
    if is_sb3(args.checkpoint):
        from agents import sb3

        correct, config = sb3.evaluate(args.checkpoint, args.split, args.data_dir, limit=args.limit)
        return correct, f"{config['algo']} on {config.get('env', {}).get('dataset', '?')}"

    from agents import reinforce

    device = reinforce.resolve_device(args.device)
    model, config = reinforce.load_model(args.checkpoint, device)
    if args.data_dir:
        config.data_dir = args.data_dir
    rollouts = args.test_rollouts or config.test_rollouts
    if rollouts < 1:
        raise ValueError(f"--test_rollouts must be >= 1, got {rollouts}")
    correct = reinforce.evaluate_split(
        model, config, args.split, rollouts, device, limit=args.limit, seed=args.seed, progress=True
    )
    return correct, f"RAM agent on {config.env_id}, {rollouts} rollout(s)"


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser().error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.episodes < 1:
        parser().error(f"--episodes must be >= 1, got {args.episodes}")
    start = time.perf_counter()
    try:
        if args.render or args.gif or args.video:
            print(show(args))
            return 0
        correct, what = score(args)
    except (CheckpointError, DatasetError, FileNotFoundError, ValueError, gym.error.DependencyNotInstalled) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    err, low, high = error_with_interval(correct)
    print(
        f"{args.split} error {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(correct)} images — {what} ({time.perf_counter() - start:.0f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
