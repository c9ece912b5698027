"""Train an agent on a RAM task: the RAM agent (REINFORCE + learned baseline) or, with --algo, an SB3 algorithm.

The seed's command lines work unchanged, e.g.

    python train_agent.py --data MNIST --n_glimpses 6 --patch_size 8 --n_patches 1 --scale 2 --std 0.15 --seed 1

and so do presets (``--preset exp1`` .. ``exp4``, the paper's four experiments) with any flag overriding them.
Each run writes one folder (``--out``): config.json, metrics.csv, best.pt (chosen on val), last.pt.
Ctrl-C and ``--resume`` lose at most the current epoch; ``--resume`` with a larger ``--n_epochs`` extends a run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import torch

from agents.reinforce import TrainConfig, error_with_interval
from ram_env import task_id

# The paper's four experiments, as the seed ran them.
PRESETS = {
    "exp1": dict(
        data="MNIST", translated_size=None, n_clutter=0, n_glimpses=6, patch_size=8, n_patches=1, scale=2, std=0.15
    ),
    "exp2": dict(
        data="MNIST", translated_size=60, n_clutter=0, n_glimpses=8, patch_size=12, n_patches=3, scale=2, std=0.25
    ),
    "exp3": dict(
        data="MNIST",
        translated_size=60,
        n_clutter=4,
        clutter_size=8,
        n_glimpses=8,
        patch_size=12,
        n_patches=3,
        scale=2,
        std=0.25,
    ),
    "exp4": dict(
        data="MNIST",
        translated_size=100,
        n_clutter=4,
        clutter_size=8,
        n_glimpses=8,
        patch_size=12,
        n_patches=4,
        scale=2,
        std=0.25,
    ),
}
# Defaults of a run with no flags (RAM/MNIST-v0); the learning settings are TrainConfig's (see the README for why).
_T = TrainConfig()
DEFAULTS = dict(
    data="MNIST",
    translated_size=None,
    n_clutter=0,
    clutter_size=8,
    n_glimpses=6,
    patch_size=8,
    n_patches=1,
    scale=2,
    std=0.15,
    start="random",
    glimpse_hidden=128,
    location_hidden=128,
    core_hidden=256,
    core="rnn",
    glimpse_net="mlp",
    algo="ram",
    total_timesteps=200_000,
    n_envs=8,
    **{
        k: getattr(_T, k)
        for k in (
            "seed",
            "batch_size",
            "n_epochs",
            "patience",
            "lr",
            "lr_schedule",
            "train_rollouts",
            "test_rollouts",
            "val_rollouts",
            "classifier_loss",
        )
    },
)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--preset", choices=sorted(PRESETS), help="one of the paper's experiments; other flags override it")
    add("--algo", choices=["ram", "ppo", "a2c", "recurrent_ppo"], help=f"learner (default {DEFAULTS['algo']})")
    task = p.add_argument_group("task (the seed's flags)")
    task.add_argument(
        "--data", choices=["MNIST", "FashionMNIST", "KMNIST"], help=f"dataset (default {DEFAULTS['data']})"
    )
    task.add_argument(
        "--translated_size", type=positive_int, help="canvas side (60, 100); omit for the plain 28x28 digit"
    )
    task.add_argument("--n_clutter", type=int, help="clutter pieces per image (default 0)")
    task.add_argument("--clutter_size", type=positive_int, help="side of a clutter piece (default 8)")
    task.add_argument(
        "--n_glimpses", type=positive_int, help=f"glimpses per episode (default {DEFAULTS['n_glimpses']})"
    )
    task.add_argument("--patch_size", type=positive_int, help=f"patch side (default {DEFAULTS['patch_size']})")
    task.add_argument("--n_patches", type=positive_int, help=f"patches per glimpse (default {DEFAULTS['n_patches']})")
    task.add_argument("--scale", type=positive_int, help=f"zoom between patches (default {DEFAULTS['scale']})")
    task.add_argument("--start", choices=["random", "center"], help="first glimpse location (default random)")
    agent = p.add_argument_group("RAM agent")
    agent.add_argument("--std", type=positive_float, help=f"location policy std (default {DEFAULTS['std']})")
    agent.add_argument("--glimpse_hidden", type=positive_int, help=f"default {DEFAULTS['glimpse_hidden']}")
    agent.add_argument("--location_hidden", type=positive_int, help=f"default {DEFAULTS['location_hidden']}")
    agent.add_argument("--core_hidden", type=positive_int, help=f"default {DEFAULTS['core_hidden']}")
    agent.add_argument("--core", choices=["rnn", "lstm"], help=f"core network (default {DEFAULTS['core']})")
    agent.add_argument(
        "--glimpse_net",
        choices=["mlp", "conv"],
        help=f"glimpse network's what pathway: mlp (the paper's) or conv (default {DEFAULTS['glimpse_net']})",
    )
    agent.add_argument("--batch_size", type=positive_int, help=f"images per update (default {DEFAULTS['batch_size']})")
    agent.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default {DEFAULTS['lr']})")
    agent.add_argument("--lr_schedule", choices=["cosine", "constant"], help=f"default {DEFAULTS['lr_schedule']}")
    agent.add_argument("--n_epochs", type=positive_int, help=f"default {DEFAULTS['n_epochs']}")
    agent.add_argument(
        "--patience",
        type=positive_int,
        help=f"stop after this many epochs without a better val error (default {DEFAULTS['patience']})",
    )
    agent.add_argument("--train_rollouts", type=positive_int, help="episodes per training image (default 1)")
    agent.add_argument(
        "--test_rollouts",
        type=positive_int,
        help=f"episodes per test image, locations sampled, class probabilities averaged (default {DEFAULTS['test_rollouts']})",
    )
    agent.add_argument(
        "--val_rollouts",
        type=positive_int,
        help="episodes per val image when choosing best.pt: 1 (default, mean locations) is fastest; "
        "the --test_rollouts count chooses by the test's own protocol (may change on --resume: best.pt is rescored)",
    )
    agent.add_argument(
        "--classifier_loss", choices=["hybrid", "reinforce"], help="hybrid: cross-entropy; reinforce: pure RL"
    )
    agent.add_argument(
        "--max-minutes", type=positive_float, help="stop after the epoch that passes this much training time"
    )
    agent.add_argument(
        "--train-images", type=positive_int, help="train on the first N training images only (quick trials)"
    )
    sb3 = p.add_argument_group("Stable-Baselines3 (--algo ppo|a2c|recurrent_ppo)")
    sb3.add_argument("--total-timesteps", type=positive_int, help=f"env steps (default {DEFAULTS['total_timesteps']})")
    sb3.add_argument("--n-envs", type=positive_int, help=f"parallel envs (default {DEFAULTS['n_envs']})")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, help="default 1")
    run.add_argument("--data-dir", help="folder holding <data>/raw/ (default $RAM_DATA_DIR, else ./data)")
    run.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ... (default auto)")
    run.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="CPU threads for torch (default 1: never slow on a busy machine)",
    )
    run.add_argument("--out", type=Path, help="run folder (default runs/<task>-<algo>-seed<seed>)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt (a larger --n_epochs extends it)",
    )
    run.add_argument("--no-gif", action="store_true", help="do not write best.gif")
    return p


def settings(args: argparse.Namespace) -> dict:
    """Defaults, then the preset, then every flag given on the command line."""
    merged = dict(DEFAULTS)
    if args.preset:
        merged.update(PRESETS[args.preset])
    merged.update({k: v for k, v in vars(args).items() if v is not None and k in DEFAULTS})
    return merged


def task_of(s: dict) -> tuple[str, dict]:
    """The registered id matching the settings, and the task keywords (all given explicitly)."""
    size = s["translated_size"] if s["translated_size"] not in (None, 28) else None
    pattern = "{D}" if size is None else (f"Cluttered{{D}}{size}" if s["n_clutter"] else f"Translated{{D}}{size}")
    env_id = task_id(pattern, s["data"])
    if env_id not in gym.registry:  # an unusual canvas size: any id of the dataset, every keyword given
        env_id = task_id("{D}", s["data"])
    keys = ("translated_size", "n_clutter", "clutter_size", "n_glimpses", "patch_size", "n_patches", "scale", "start")
    return env_id, {k: s[k] if k != "translated_size" else size for k in keys}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    s = settings(args)
    env_id, env_kwargs = task_of(s)
    out = args.out or Path("runs") / f"{env_id.split('/')[1]}-{s['algo']}-seed{s['seed']}"
    if out.exists() and any(out.iterdir()) and not args.resume:
        parser().error(f"--out {out} already holds a run; pass --resume to continue it, or choose another --out")
    if args.resume and not (out / ("last.pt" if s["algo"] == "ram" else "config.json")).exists():
        parser().error(f"--resume: {out} holds no run to continue")

    if s["algo"] != "ram":
        from agents import sb3

        task = dict(dataset=s["data"], data_dir=args.data_dir, **env_kwargs)
        try:
            summary = sb3.train(
                s["algo"],
                task,
                out,
                s["total_timesteps"],
                seed=s["seed"],
                device=args.device,
                resume=args.resume,
                n_envs=s["n_envs"],
            )
            correct, _ = sb3.evaluate(out, "test", args.data_dir)
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            print(f"train_agent.py: error: {e}", file=sys.stderr)
            return 2
        err, low, high = error_with_interval(correct)
        print(f"{s['algo']}: {summary}")
        print(f"test error of best.zip: {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(correct)} images")
        return 0

    from agents import distributed, reinforce
    from agents.checkpoint import CheckpointError
    from ram_env.datasets import DatasetError

    model_keys = ("glimpse_hidden", "location_hidden", "core_hidden", "core", "glimpse_net", "std")
    try:
        config = TrainConfig(
            env_id=env_id,
            env_kwargs=env_kwargs,
            model={k: s[k] for k in model_keys},
            data_dir=args.data_dir,
            device=args.device,
            max_minutes=args.max_minutes,
            train_images=args.train_images,
            **{
                k: s[k]
                for k in (
                    "batch_size",
                    "lr",
                    "lr_schedule",
                    "n_epochs",
                    "patience",
                    "train_rollouts",
                    "test_rollouts",
                    "val_rollouts",
                    "classifier_loss",
                    "seed",
                )
            },
        )
    except ValueError as e:
        parser().error(str(e))
    say = print if distributed.is_main() else lambda *a, **k: None  # under torchrun, rank 0 alone prints
    say(f"training the RAM agent on {env_id} {env_kwargs} -> {out}")
    try:
        summary = reinforce.train(config, out, resume=args.resume)
    except KeyboardInterrupt:
        say(f"\ninterrupted; continue with: python train_agent.py --out {out} --resume  (plus the same flags)")
        return 130
    except (ValueError, DatasetError, CheckpointError) as e:  # bad task geometry, data folder or checkpoint
        print(f"train_agent.py: error: {e}", file=sys.stderr)
        return 2
    say(
        f"best val error {summary['best_val_error']:.2f}% at epoch {summary['best_epoch']} after {summary['elapsed_seconds'] / 60:.1f} min of training"
    )
    model, _ = reinforce.load_model(out, reinforce.resolve_device(config.device))
    correct = reinforce.evaluate_split(model, config, "test", device=reinforce.resolve_device(config.device))
    err, low, high = reinforce.error_with_interval(correct)
    say(
        f"test error of best.pt: {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(correct)} images, {config.test_rollouts} rollout(s)"
    )
    if not args.no_gif and distributed.is_main():
        write_gif(model, config, out / "best.gif")
    return 0


def write_gif(model, config: TrainConfig, path: Path) -> None:
    """A 4x4 grid of the model's episodes on the first validation images."""
    from agents.ram import BatchPolicy
    from ram_env import recording

    envs = gym.make_vec(
        config.env_id,
        num_envs=16,
        vectorization_mode="vector_entry_point",
        split="val",
        data_dir=config.data_dir,
        render_mode="rgb_array",
        **config.env_kwargs,
    )
    recording.record_gif(envs, BatchPolicy(model.cpu()), path, indices=range(16), max_side=640)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
