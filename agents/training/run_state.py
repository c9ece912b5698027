"""A run's state on disk: the run folder, ``last.pt`` and ``best.pt``, the random streams, and resuming.

``last.pt`` holds everything a resume needs (weights, optimiser, schedule, the epoch order's generator and every
rank's own random streams), so that an interrupted run resumed ends exactly where the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents import checkpoint, distributed
from agents.ram import RAMConfig, RecurrentAttentionModel
from agents.runlog import RunLog
from agents.training.config import TrainConfig
from agents.training.report import print_main
from agents.training.scoring import score_val


@dataclass
class Progress:
    """Where a run stands after its last finished epoch (stored in last.pt under these names)."""

    epoch: int = 0
    best_val_error: float = float("inf")
    best_epoch: int = 0
    elapsed_seconds: float = 0.0
    env_steps: int | None = None  # None: a checkpoint written before it was counted (every episode took n_glimpses)


def open_run_folder(run_dir: Path, config: TrainConfig, resume_after: int | None) -> RunLog | None:
    """Rank 0: write ``config.json`` (on resume too: ``n_epochs`` may have grown) and open the metrics log; the
    other ranks get ``None``."""
    if not distributed.is_main():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {**asdict(config), "learner": "ram", "world_size": distributed.world_size()}
    (run_dir / "config.json").write_text(json.dumps(info, indent=2) + "\n")
    return RunLog(run_dir, resume_after=resume_after, tensorboard=config.tensorboard)


def save_checkpoints(
    run_dir: Path, config: TrainConfig, model, optimizer, scheduler, rng, envs, device, run: Progress, improved: bool
) -> None:
    """``last.pt`` (everything a resume needs, every rank's random streams) and, if ``improved``, ``best.pt``
    (weights and config only, a third the size). Every rank calls this; rank 0 writes."""
    streams = distributed.gather(rank_rng_state(envs, device))
    if not distributed.is_main():
        return
    payload = {
        "config": asdict(config),
        "model_config": model.config.to_dict(),
        "model": model.state_dict(),  # the bare network's names: evaluate.py loads it without torchrun
        **asdict(run),
    }
    if improved:
        checkpoint.save(run_dir / "best.pt", payload)
    rng_states = {"numpy": rng.bit_generator.state, "ranks": streams}
    resume = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_states}
    checkpoint.save(run_dir / "last.pt", {**payload, **resume, "world_size": distributed.world_size()})


def rank_rng_state(envs, device) -> dict[str, Any]:
    """This rank's own random streams: its env's (start locations, canvases) and torch's (sampled actions)."""
    state = {"env": envs.unwrapped.get_random_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":  # the sampled locations of a GPU run come from its generator
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def resume_run(
    run_dir: Path, config: TrainConfig, model, optimizer, scheduler, rng, envs, val_envs, device
) -> Progress:
    """Load ``run_dir/last.pt`` into a fresh run's objects, rescore best.pt if the val protocol changed, and stretch
    the schedule if ``n_epochs`` grew; returns where the run stands."""
    state = checkpoint.load(run_dir, "last.pt")  # on the CPU, where RNG states live; load_state_dict moves the rest
    check_resumable(run_dir, state, config)
    t_max = getattr(scheduler, "T_max", None)  # the fresh cosine's length: config.n_epochs, before the saved one
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    run = Progress(**{f.name: state[f.name] for f in fields(Progress) if f.name in state})
    restore_rng(state["rng"], rng, envs, device)
    if state["config"].get("val_rollouts", 1) != config.val_rollouts and (run_dir / "best.pt").exists():
        run.best_val_error = score_val(load_model(run_dir / "best.pt", device)[0], val_envs, config, device)
        print_main(f"val error now scored over {config.val_rollouts} rollouts: best.pt rescored")
    print_main(
        f"resuming {run_dir} after epoch {run.epoch} "
        f"(best val error {run.best_val_error:.2f}% at epoch {run.best_epoch})"
    )
    saved = state["config"].get("data")
    if saved and saved != config.data:
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained on {saved.get('name')} (train fingerprint {saved.get('train')}), not on "
            f"this data ({config.data.get('name')}, {config.data.get('train')}); point --data-dir at its data"
        )
    planned = state["config"]["n_epochs"]
    if config.n_epochs > planned:
        stretch_schedule(config, optimizer, scheduler, t_max)
        print_main(
            f"extending the run from {planned} to {config.n_epochs} epochs "
            f"(learning rate now {optimizer.param_groups[0]['lr']:.2e})"
        )
    return run


def check_resumable(run_dir: Path, state: dict, config: TrainConfig) -> None:
    """Refuse, with one clear line, a resume that could not end where the uninterrupted run would."""
    trained_in = state["config"].get("precision", "fp32")
    if trained_in != config.precision:  # asked for, or a bf16 run on a device without bfloat16 (loop.join)
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained in {trained_in} and this run would be {config.precision}: resume it with "
            f"--precision {trained_in}, on a device with bfloat16 arithmetic if that is bf16"
        )
    if trajectory(state["config"]) != trajectory(asdict(config)):
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained with another config; resume with the same flags or start a new --out"
        )
    planned = state["config"]["n_epochs"]
    if config.n_epochs < planned:
        raise ValueError(
            f"--n_epochs {config.n_epochs} is shorter than the run's {planned}; resume with n_epochs >= {planned}"
        )
    trained_on, world = state.get("world_size", 1), distributed.world_size()
    if trained_on != world:
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained on {trained_on} process(es) and this is {world}: resume with the same "
            f"number (torchrun --nproc_per_node {trained_on}; plain python for 1), whose random streams it holds"
        )


def restore_rng(saved: dict, rng: np.random.Generator, envs, device) -> None:
    """Put back the epoch order's generator and this rank's own streams, as :func:`save_checkpoints` stored them."""
    rng.bit_generator.state = saved["numpy"]
    mine = saved["ranks"][distributed.rank()] if "ranks" in saved else saved  # a one-process run's older layout
    env = mine["env"] if "np_random" in mine["env"] else {"np_random": mine["env"]}  # older runs: np_random alone
    envs.unwrapped.set_random_state(env)
    torch.set_rng_state(mine["torch"])
    if device.type == "cuda" and "cuda" in mine:
        torch.cuda.set_rng_state(mine["cuda"], device)


def trajectory(config: dict) -> dict:
    """The parts of a config that shape the run (stopping and selection rules, paths and logging may change on
    resume, and ``n_epochs`` may grow: see :func:`stretch_schedule`)."""
    model = {**asdict(RAMConfig()), **config["model"]}  # a run saved before a network option existed had its default
    env = {"answer": "last_step", "glimpse_cost": 0.0, **config["env_kwargs"]}  # so had one saved before these
    config = {"precision": "fp32", **config}  # and one saved before the step's precision was a setting
    free = ("n_epochs", "patience", "val_rollouts", "max_minutes", "data_dir", "device", "env_device", "tensorboard")
    free += ("data",)  # checked on its own (check_resumable): a run saved before the record has none
    return {**{k: v for k, v in config.items() if k not in free}, "model": model, "env_kwargs": env}


def stretch_schedule(config: TrainConfig, optimizer, scheduler, t_max: int) -> None:
    """Extend a resumed run to ``t_max`` updates (``config.n_epochs``): the cosine continues as if planned that long
    from the start, so a finished run warms back up to where the longer schedule would stand now."""
    if config.lr_schedule != "cosine":
        return
    scheduler.T_max = t_max
    progress = scheduler.last_epoch / scheduler.T_max
    for group in optimizer.param_groups:  # CosineAnnealingLR updates lr recursively: set the closed form once
        group["lr"] = config.lr * (1 + math.cos(math.pi * progress)) / 2


def load_model(path, device="cpu") -> tuple[RecurrentAttentionModel, TrainConfig]:
    """The network and run config of a checkpoint (or of ``<run dir>/best.pt``)."""
    state = checkpoint.load(path, map_location=device)
    try:
        config = TrainConfig(**state["config"])
        model = RecurrentAttentionModel(RAMConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise checkpoint.CheckpointError(
            f"{checkpoint.resolve(path)} does not match this code's model/config ({e})"
        ) from None
    return model.to(device), config
