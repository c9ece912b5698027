"""Train an agent on a RAM task: the RAM agent (REINFORCE + learned baseline) or, with --algo, an SB3 or RLlib one.

The reference implementation's command lines work unchanged (its underscore spellings are aliases), e.g.

    python train_agent.py --data MNIST --n_glimpses 6 --patch_size 8 --n_patches 1 --scale 2 --std 0.15 --seed 1

and so do presets (``--preset exp1`` .. ``exp4``, the paper's four experiments, with the settings of the
README's results row where it beats its target) with any flag overriding them.
Each run writes one folder (``--out``): config.json, metrics.csv, best.pt (chosen on val), last.pt.
Ctrl-C loses at most the current epoch and prints the command that continues the run (``--resume``);
``--resume`` keeps the run's settings for every flag not given, and a larger ``--n-epochs`` extends it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import sys
from pathlib import Path

import gymnasium as gym
import torch

from agents import cli
from agents.cli import UsageError, flag, natural_int, positive_float, positive_int
from agents.ram import RAMConfig
from agents.training.config import PRECISIONS, TrainConfig
from agents.training.scoring import error_with_interval
from ram_env import DRAM_TASKS, TASKS, TaskConfig, sources, task_id
from ram_env.task import ANSWERS

PROG = "train_agent.py"
# The paper's four experiments: the registered task and the reference's policy std, plus the training settings of
# a results row (README) that beats its target, so that `--preset expN` alone reproduces it. Those rows were trained
# on two processes (torchrun --nproc_per_node 2): each rank plays its own stream of episodes.
CONV_LSTM = dict(core="lstm", glimpse_net="conv", batch_size=256, lr=2e-3, val_rollouts=10)
# DRAM's tasks have no shipped fp32 rows to reproduce: they train in bf16 where the device has it (results/notes.md:
# the same error as fp32 over seeds on exp1 and exp3, 1.6x the step's speed), fp32 elsewhere.
DRAM_NET = {**CONV_LSTM, "val_rollouts": 1, "precision": "bf16"}
PRESETS = {
    "exp1": dict(data="MNIST", **TASKS["{D}"], std=0.15, n_epochs=200, val_rollouts=10),
    "exp2": dict(data="MNIST", **TASKS["Translated{D}60"], std=0.25, **CONV_LSTM, n_epochs=100),
    "exp3": dict(data="MNIST", **TASKS["Cluttered{D}60"], std=0.25, **CONV_LSTM, n_epochs=240),
    "exp4": dict(data="MNIST", **TASKS["Cluttered{D}100"], std=0.25, **CONV_LSTM, n_epochs=160),
    # DRAM's two MNIST experiments (Ba, Mnih and Kavukcuoglu, 2015): a pair's labels, and its sum. The first glimpse
    # at the centre, whose coarsest patch then sees the whole canvas (as DRAM's context network does): it learnt
    # faster than a random start (results/notes.md).
    # Validation with one rollout: at 100x100 ten would cost about as much as the epoch's training.
    "pairs": dict(data="MNIST", **DRAM_TASKS["{D}Pairs100"], start="center", std=0.25, **DRAM_NET, n_epochs=100),
    "pairsum": dict(data="MNIST", **DRAM_TASKS["{D}PairSum100"], start="center", std=0.25, **DRAM_NET, n_epochs=100),
}
# Literal names, so that parsing imports no SB3 or Ray; agents/sb3.py and agents/rllib.py hold what each one is.
ALGOS = ("ram", "ppo", "a2c", "recurrent_ppo", "ppo_glimpse", "a2c_glimpse", "recurrent_ppo_glimpse", "rllib_ppo")
ANSWER_KEYS = ("n_objects", "digit_size", "target")
TASK_KEYS = (
    *("translated_size", "n_clutter", "clutter_size", "n_glimpses", "patch_size", "n_patches", "scale", "start"),
    *("answer", "glimpse_cost", *ANSWER_KEYS),
)
MODEL_KEYS = ("glimpse_hidden", "location_hidden", "core_hidden", "core", "glimpse_net", "std")
TRAIN_KEYS = (
    *("batch_size", "lr", "lr_schedule", "n_epochs", "patience", "train_rollouts", "test_rollouts", "val_rollouts"),
    *("classifier_loss", "stop_entropy", "label_entropy", "max_minutes", "train_images", "env_device", "precision"),
)
SB3_KEYS = ("total_timesteps", "n_envs", "reward", "eval_every")  # RLlib's PPO takes them too
RLLIB_KEYS = ("num_env_runners",)
GLIMPSE_KEYS = ("n_glimpses", "patch_size", "n_patches", "scale")  # on other data than the digits: None, what suits
# Where the images come from besides --data: in the task's keywords only when given (older runs' read as they did).
SOURCE_KEYS = ("image_folder", "resize")
SETTINGS = ("algo", "data", *SOURCE_KEYS, *TASK_KEYS, *MODEL_KEYS, *TRAIN_KEYS, *SB3_KEYS, *RLLIB_KEYS, "seed")
# Settings a resumed run may change; every other one shapes the run and must stay what it was.
MAY_CHANGE_ON_RESUME = (
    *("n_epochs", "patience", "val_rollouts", "max_minutes", "env_device", "total_timesteps", "n_envs"),
    "num_env_runners",
)
SB3_TIMESTEPS = 200_000  # an SB3 run's default budget of env steps: this command line's choice
RLLIB_ENV_RUNNERS = 1  # sampling in one process beside the learner's: this command line's choice
LEARNERS = {
    "ram": "the RAM agent (--algo ram)",
    "sb3": "the SB3 algorithms (--algo ppo, a2c, recurrent_ppo, *_glimpse)",
    "rllib": "RLlib (--algo rllib_ppo)",
}
# The learners that take each learner-specific flag; any other --algo refuses it rather than ignore it.
FLAG_LEARNERS = {
    **dict.fromkeys((*MODEL_KEYS, *TRAIN_KEYS, "no_gif"), ("ram",)),
    "max_minutes": ("ram", "sb3", "rllib"),
    **dict.fromkeys(SB3_KEYS, ("sb3", "rllib")),
    **dict.fromkeys((*RLLIB_KEYS, "ray_address"), ("rllib",)),
}


def defaults() -> dict:
    """Every setting of a run with no flags, read from the dataclasses that own it (RAM/MNIST-v0)."""
    from agents import sb3

    task, model, train = TaskConfig(), RAMConfig(), TrainConfig()
    return {
        "algo": "ram",
        "data": task.dataset,
        **{k: getattr(task, k) for k in (*SOURCE_KEYS, *TASK_KEYS)},
        **{k: getattr(model, k) for k in MODEL_KEYS},
        **{k: getattr(train, k) for k in (*TRAIN_KEYS, "seed")},
        "total_timesteps": None,  # SB3_TIMESTEPS, or no step budget with --max-minutes: see step_budget
        **{k: inspect.signature(sb3.train).parameters[k].default for k in ("n_envs", "reward")},
        "num_env_runners": RLLIB_ENV_RUNNERS,
        "eval_every": None,
    }


def n_envs_default() -> str:
    """``--n-envs``'s default in words: it depends on the learner (agents/sb3.N_ENVS)."""
    from agents import sb3

    return ", ".join(f"{n} for {algo}" for algo, n in sb3.N_ENVS.items()) + f", else {sb3.DEFAULT_N_ENVS}"


def parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    add = setting_adder(defaults())
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="one of the paper's experiments (or DRAM's); other flags override it"
    )
    add(p, "algo", "learner", choices=ALGOS)
    add_task_flags(p.add_argument_group("task (the reference implementation's flags)"), add)
    add_agent_flags(p.add_argument_group("RAM agent (--algo ram)"), add)
    libs = p.add_argument_group("Stable-Baselines3 (--algo ppo|a2c|recurrent_ppo and their *_glimpse forms) and RLlib")
    steps_default = f"{SB3_TIMESTEPS}; with --max-minutes none, the clock ends the run"
    add(libs, "total_timesteps", "env steps", steps_default, type=positive_int)
    add(libs, "n_envs", "parallel envs (rllib_ppo: per env runner)", n_envs_default(), type=positive_int)
    every = "total-timesteps / 20, else 50000"
    add(libs, "eval_every", "env steps between evaluation rounds", every, type=positive_int)
    reward_help = "binary: the task's 0/1; graded: log-probability of the true class, shaped per step"
    add(libs, "reward", reward_help, choices=["binary", "graded"])
    rllib = p.add_argument_group("Ray RLlib (--algo rllib_ppo; pip install -e '.[rllib]')")
    add(rllib, "num_env_runners", "env runner processes (0: sample in this one)", type=natural_int)
    ray_help = "Ray cluster address, as for ray.init (default $RAY_ADDRESS, else a `ray start` one here, else local)"
    flag(rllib, "ray_address", ray_help)
    run = p.add_argument_group("run")
    add(run, "seed", "random seed", type=natural_int)
    flag(run, "data_dir", "folder holding the --data set in torchvision's layout (default $RAM_DATA_DIR, else ./data)")
    flag(run, "device", f"auto (CUDA if present), cpu, cuda, cuda:1, ... (default {TrainConfig.device})")
    flag(
        run, "threads", "CPU threads for torch (default 1: never slow on a busy machine)", type=positive_int, default=1
    )
    flag(run, "out", "run folder (default runs/<task>-<algo>-seed<seed>)", type=Path)
    flag(run, "resume", "continue the run in --out; flags not given keep the run's values", action="store_true")
    flag(run, "no_gif", "do not write best.gif", action="store_true")
    flag(run, "no_tensorboard", "do not write TensorBoard event files", action="store_true")
    return p


def setting_adder(d: dict):
    """``add(group, name, help, ...)``: a setting's flag, absent from the namespace unless given, its default
    ``d[name]`` (or ``default_text``) shown once, in the help."""

    def add(group, name: str, help: str, default_text: str | None = None, **kwargs):
        shown = d[name] if default_text is None else default_text
        flag(group, name, f"{help} (default {shown})", default=argparse.SUPPRESS, **kwargs)

    return add


def add_task_flags(task, add) -> None:
    add(task, "data", "dataset, in torchvision's layout under --data-dir", choices=sources.NAMED)
    folder_help = "a folder of images per class (torchvision's ImageFolder layout) instead of --data"
    add(task, "image_folder", folder_help, "none")
    add(task, "resize", "every image to this side (images of several sizes need it)", "none", type=positive_int)
    add(task, "translated_size", "canvas side, e.g. 60 or 100", "none: the image itself", type=positive_int)
    add(task, "n_clutter", "clutter pieces per image", type=natural_int)
    add(task, "clutter_size", "side of a clutter piece", type=positive_int)
    add(task, "n_glimpses", "glimpses per episode", type=positive_int)
    add(task, "patch_size", "patch side", type=positive_int)
    add(task, "n_patches", "patches per glimpse", type=positive_int)
    add(task, "scale", "zoom between patches", type=positive_int)
    add(task, "start", "first glimpse location", choices=["random", "center"])
    add(task, "answer", "last_step: answer after --n-glimpses; any_step: a stop action answers early", choices=ANSWERS)
    add(task, "glimpse_cost", "subtracted from the reward per glimpse taken (needs --answer any_step)", type=cost)
    add(task, "n_objects", "digits per canvas, without overlap; K labels in reading order", type=positive_int)
    add(task, "digit_size", "digit side in px, or a range lo-hi drawn per digit", type=digit_size)
    add(task, "target", "what the answer says", choices=["label", "sum", "location"])


def add_agent_flags(agent, add) -> None:
    add(agent, "std", "location policy std", type=positive_float)
    add(agent, "glimpse_hidden", "glimpse network's what pathway size", type=positive_int)
    add(agent, "location_hidden", "glimpse network's where pathway size", type=positive_int)
    add(agent, "core_hidden", "core network size", type=positive_int)
    add(agent, "core", "core network", choices=["rnn", "lstm"])
    add(agent, "glimpse_net", "what pathway: mlp (the paper's) or conv", choices=["mlp", "conv"])
    batch_help = "images per update, over all processes under torchrun (each plays batch-size / N; the same lr)"
    add(agent, "batch_size", batch_help, type=positive_int)
    add(agent, "lr", "Adam learning rate", type=positive_float)
    add(agent, "lr_schedule", "learning-rate schedule", choices=["cosine", "constant"])
    add(agent, "n_epochs", "epochs; on --resume a larger value extends the run", type=positive_int)
    add(agent, "patience", "stop after this many epochs without a better val error", type=positive_int)
    add(agent, "train_rollouts", "episodes per training image", type=positive_int)
    add(agent, "test_rollouts", "episodes per test image, class probabilities averaged", type=positive_int)
    add(agent, "val_rollouts", "episodes per val image when choosing best.pt", type=positive_int)
    add(agent, "classifier_loss", "hybrid: cross-entropy; reinforce: pure RL", choices=["hybrid", "reinforce"])
    stop_help = "answer any_step: weight of the stop policy's entropy, which keeps it trying early answers"
    add(agent, "stop_entropy", stop_help, type=cost)
    label_help = "classifier-loss reinforce: weight of the sampled label's entropy, which keeps it off one class"
    add(agent, "label_entropy", label_help, type=cost)
    minutes_help = "stop once this much training time has passed (ram: after that epoch; rllib_ppo: that round)"
    add(agent, "max_minutes", minutes_help, "none", type=positive_float)
    add(agent, "train_images", "train on the first N training images only", "all", type=positive_int)
    env_help = "where episodes live: auto (the torch backend on a GPU --device, numpy on a CPU), numpy, or a device"
    add(agent, "env_device", env_help)
    precision_help = (
        "the network's arithmetic: bf16 autocasts matmuls and convolutions in training and scoring (a fp32 run is "
        "scored in fp32); training falls back to fp32 on a device without bfloat16 arithmetic"
    )
    add(agent, "precision", precision_help, choices=list(PRECISIONS))


def digit_size(text: str) -> int | list[int]:
    """An argparse type: a side (``28``) or a range (``14-42``); a range is a list, as config.json holds it."""
    try:
        parts = [int(v) for v in text.replace(",", "-").split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1 or parts[0] > parts[-1]:
        raise argparse.ArgumentTypeError(f"must be a side in px (28) or a range lo-hi (14-42), got {text!r}")
    return parts[0] if len(parts) == 1 else parts


def cost(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def check_task(s: dict) -> None:
    """The task the settings describe can be built; a bad one is named by its flags before any data is read."""
    if s["glimpse_cost"] and s["answer"] != "any_step":
        raise UsageError(
            f"--glimpse-cost {s['glimpse_cost']} needs --answer any_step (with last_step every episode takes "
            "--n-glimpses glimpses, so a cost would only shift every reward)"
        )
    TaskConfig.from_kwargs({"dataset": s["data"], **task_of(s)[1]})


def digits(s: dict) -> bool:
    """Whether the settings are one of the digit sets (their named tasks), not images from anywhere."""
    return s["data"] in sources.MNIST_FAMILY and not s.get("image_folder") and not s.get("resize")


def task_of(s: dict) -> tuple[str, dict]:
    """The registered id matching the settings, and the task keywords (all given explicitly)."""
    plain = TaskConfig()  # the answer keys only where asked: a one-label run's config reads as it always did
    if not digits(s):  # RAM/Images-v0: the source among the keywords; glimpse settings left None suit the canvas
        source = {k: s[k] for k in SOURCE_KEYS if s.get(k) is not None}
        task = {k: s[k] for k in TASK_KEYS if k not in ANSWER_KEYS or s[k] != getattr(plain, k)}
        return "RAM/Images-v0", {**({} if s.get("image_folder") else {"dataset": s["data"]}), **source, **task}
    size = s["translated_size"] if s["translated_size"] not in (None, 28) else None
    pattern = "{D}" if size is None else (f"Cluttered{{D}}{size}" if s["n_clutter"] else f"Translated{{D}}{size}")
    if s["n_objects"] == 2 and size == 100 and not s["n_clutter"] and s["target"] in ("label", "sum"):
        pattern = "{D}PairSum100" if s["target"] == "sum" else "{D}Pairs100"  # DRAM's MNIST experiments
    env_id = task_id(pattern, s["data"])
    if env_id not in gym.registry:  # an unusual canvas size: any id of the dataset, every keyword given
        env_id = task_id("{D}", s["data"])
    task = {k: s[k] if k != "translated_size" else size for k in TASK_KEYS}
    return env_id, {k: v for k, v in task.items() if k not in ANSWER_KEYS or v != getattr(plain, k)}


def settings(args, base: dict) -> dict:
    """``base`` (the defaults, or a resumed run's settings), then the preset, then every flag given."""
    given = {k: v for k, v in vars(args).items() if k in SETTINGS}
    s = {**base, **PRESETS.get(args.preset, {}), **given}
    if not digits(s) and "files" not in base:  # a new run on other data: settings that suit it
        s |= {k: None for k in GLIMPSE_KEYS if k not in given and k not in PRESETS.get(args.preset, {})}
    return s


def saved_settings(out: Path) -> dict | None:
    """The settings of the run in ``out``; None if it holds no checkpoint (no finished epoch) to build on."""
    ram = [n for n in ("last.pt", "best.pt") if (out / n).is_file()]
    sb3 = [n for n in ("model.zip", "best.zip") if (out / n).is_file()]
    sb3 += [n for n in ("last", "best") if (out / n / "class_and_ctor_args.pkl").is_file()]  # RLlib checkpoints
    if not ram and not sb3:
        return None
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--out {out} holds {(ram + sb3)[0]} but no readable config.json ({e}); choose another --out")
    s = {**defaults(), "files": ram or sb3, "resumable": bool({"last.pt", "model.zip", "last"} & {*ram, *sb3})}
    if sb3:
        env = config.get("env", {})
        task = {k: env.get(k, s[k]) for k in TASK_KEYS}
        source = {k: env.get(k) for k in SOURCE_KEYS}
        return {**s, **task, **source, "algo": config.get("algo"), "data": env.get("dataset", s["data"])} | {
            k: config[k] for k in (*SB3_KEYS, *RLLIB_KEYS, "max_minutes", "seed") if config.get(k) is not None
        }
    spec = gym.spec(config["env_id"]).kwargs if config.get("env_id") in gym.registry else {}
    task = {k: config.get("env_kwargs", {}).get(k, spec.get(k, s[k])) for k in TASK_KEYS}
    learning = {k: config[k] for k in (*TRAIN_KEYS, "seed") if k in config}
    env = config.get("env_kwargs", {})
    data = env.get("dataset", spec.get("dataset", s["data"])) or s["data"]
    source = {k: env.get(k) for k in SOURCE_KEYS}
    return {**s, **task, **source, **config.get("model", {}), **learning, "data": data}


def plan(args) -> tuple[dict, Path, bool]:
    """The run's settings, its folder, and whether it continues a run there (else it starts afresh)."""
    s = settings(args, defaults())
    if not args.resume:
        check_settings(args, s)  # a wrong flag is named before the run folder is looked at
    name = task_of(s)[0].split("/")[1] if digits(s) else Path(s["image_folder"] or s["data"]).name
    out = args.out or Path("runs") / f"{name}-{s['algo']}-seed{s['seed']}"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the run")
    saved = saved_settings(out)
    if saved is None:
        if args.resume:
            check_settings(args, s)
            print(f"{out} holds no finished epoch yet: starting the run afresh")
        return s, out, False
    if not args.resume:
        raise UsageError(
            f"--out {out} already holds a run ({', '.join(saved['files'])}); add --resume to continue it, "
            "or choose another --out"
        )
    if not saved["resumable"]:
        raise UsageError(f"--resume: {out} holds {saved['files'][0]} but no last.pt to continue; choose another --out")
    resumed = settings(args, saved)
    foreign = foreign_keys(saved["algo"])
    for key in ("algo", *SETTINGS):
        if key not in (*MAY_CHANGE_ON_RESUME, *foreign) and resumed[key] != saved[key]:
            name = "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume: {out} holds a run with {name} {saved[key]}, not {resumed[key]}; "
                f"drop {name} (or --preset) to continue it, or choose another --out"
            )
    if resumed["n_epochs"] < saved["n_epochs"]:
        raise UsageError(f"--n-epochs {resumed['n_epochs']} is shorter than the run's {saved['n_epochs']}")
    check_settings(args, resumed)
    return resumed, out, True


def check_settings(args, s: dict) -> None:
    """Every check of the flags themselves: each learner's own flags, the env device, the task they describe."""
    check_flags_apply(args, s)
    cli.check_device(s["env_device"], "--env-device", also=("auto", "numpy"))
    check_task(s)


def learner_of(algo: str) -> str:
    """``"ram"``, ``"sb3"`` or ``"rllib"``: the learner whose flags ``algo`` takes."""
    return {"ram": "ram", "rllib_ppo": "rllib"}.get(algo, "sb3")


def foreign_keys(algo: str) -> tuple[str, ...]:
    """The learner-specific flags that ``algo`` would ignore."""
    return tuple(k for k, learners in FLAG_LEARNERS.items() if learner_of(algo) not in learners)


def check_flags_apply(args, s: dict) -> None:
    """A flag of another learner would be silently ignored: name it instead."""
    given = [k for k in vars(args) if k in SETTINGS] + [k for k in ("no_gif", "ray_address") if getattr(args, k)]
    if "stop_entropy" in given and s["answer"] != "any_step":
        raise UsageError("--stop-entropy trains the stop policy, which only --answer any_step has")
    if "label_entropy" in given and s["classifier_loss"] != "reinforce":
        raise UsageError("--label-entropy weighs the sampled label of --classifier-loss reinforce (pure RL)")
    wrong = [k for k in given if k in foreign_keys(s["algo"])]
    if wrong:
        owners = " and ".join(LEARNERS[learner] for learner in FLAG_LEARNERS[wrong[0]])
        raise UsageError(f"--{wrong[0].replace('_', '-')} is a setting of {owners}, not of --algo {s['algo']}")


def ram_config(args, s: dict) -> TrainConfig:
    """The RAM agent's run config; its task and sizes checked before anything is loaded."""
    env_id, env_kwargs = task_of(s)
    if s["train_images"] is not None and s["batch_size"] > s["train_images"]:
        raise UsageError(f"--batch-size {s['batch_size']} is larger than --train-images {s['train_images']}")
    try:
        return TrainConfig(
            env_id=env_id,
            env_kwargs=env_kwargs,
            model={k: s[k] for k in MODEL_KEYS},
            data_dir=args.data_dir,
            device=args.device or TrainConfig.device,
            tensorboard=not args.no_tensorboard,
            **{k: s[k] for k in (*TRAIN_KEYS, "seed")},
        )
    except ValueError as e:
        raise UsageError(e) from None


def train_ram(args, s: dict, out: Path, resume: bool) -> None:
    """Train the RAM agent into ``out``; then score best.pt on test and draw its episodes."""
    from agents.training import loop

    loop.train_and_test(ram_config(args, s), out, resume=resume, gif=not args.no_gif)


def step_budget(s: dict) -> int | None:
    """--total-timesteps; left out, :data:`SB3_TIMESTEPS`, or none (``None``) when --max-minutes ends the run."""
    if s["total_timesteps"] is not None:
        return s["total_timesteps"]
    return None if s["max_minutes"] else SB3_TIMESTEPS


def train_sb3(args, s: dict, out: Path, resume: bool) -> None:
    """Train an SB3 algorithm into ``out``; then score best.zip on test."""
    from agents import sb3

    task = {"dataset": s["data"], "data_dir": args.data_dir, **task_of(s)[1]}
    print(f"training {s['algo']} on {task} -> {out}", flush=True)
    device = args.device or TrainConfig.device
    summary = sb3.train(
        s["algo"],
        task,
        out,
        step_budget(s),
        seed=s["seed"],
        device=device,
        resume=resume,
        n_envs=s["n_envs"],
        reward=s["reward"],
        tensorboard=not args.no_tensorboard,
        max_minutes=s["max_minutes"],
        eval_every=s["eval_every"],
    )
    correct, _ = sb3.evaluate(out, "test", args.data_dir)
    err, low, high = error_with_interval(correct)
    print(f"{s['algo']}: {summary}")
    print(f"test error of best.zip: {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(correct)} images")


def train_rllib(args, s: dict, out: Path, resume: bool) -> None:
    """Train RLlib's PPO into ``out`` (env runners on the Ray cluster); then score best/ on test, here."""
    if (args.device or "cpu") != "cpu":
        raise UsageError(f"--device {args.device}: rllib_ppo's learner runs on the CPU; drop --device")
    from agents import rllib

    task = {"dataset": s["data"], "data_dir": args.data_dir, **task_of(s)[1]}
    print(f"training {s['algo']} on {task} -> {out}", flush=True)
    summary = rllib.train(
        task,
        out,
        step_budget(s),
        seed=s["seed"],
        resume=resume,
        n_envs=s["n_envs"],
        num_env_runners=s["num_env_runners"],
        max_minutes=s["max_minutes"],
        eval_every=s["eval_every"],
        reward=s["reward"],
        ray_address=args.ray_address,
        tensorboard=not args.no_tensorboard,
    )
    correct, _ = rllib.evaluate(out, "test", args.data_dir)
    err, low, high = error_with_interval(correct)
    print(f"{s['algo']}: {summary}")
    print(f"test error of best/: {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(correct)} images")


def continue_command(command: list[str]) -> str:
    """The command that continues an interrupted run: the same one, plus --resume (under torchrun, its launch)."""
    from agents import distributed

    if distributed.launched():
        nproc = os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))
        command = ["torchrun", "--nproc_per_node", nproc, *command[1:]]
    return shlex.join([*command, *([] if "--resume" in command else ["--resume"])])


def main(argv: list[str] | None = None) -> int:
    from agents import distributed
    from agents.checkpoint import CheckpointError
    from ram_env import DatasetError

    command = [sys.executable, *sys.argv] if argv is None else ["python", PROG, *argv]
    args = parser().parse_args(command[2:])
    torch.set_num_threads(args.threads)
    distributed.interrupt_once()
    try:
        cli.check_device(args.device or TrainConfig.device)
        s, out, resume = plan(args)
        {"ram": train_ram, "rllib_ppo": train_rllib}.get(s["algo"], train_sb3)(args, s, out, resume)
    except KeyboardInterrupt:
        if distributed.is_main():
            print(f"\ninterrupted; continue with: {continue_command(command)}", file=sys.stderr)
        return 130
    except (UsageError, ValueError, DatasetError, CheckpointError, OSError, ImportError) as e:
        return cli.fail(PROG, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
