"""Checkpoint files: weights, optimiser state and the full run config in one file, written atomically.

:func:`load` checks a checkpoint before anything is computed with it: that it is one of ours, that its
weights have the sizes its model config says, and that its network fits the task its run config names.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agents.ram import RAMConfig, RecurrentAttentionModel
from ram_env import TaskConfig

FORMAT = "ram-gym/ram-agent"
DAMAGED = "its config does not match its weights (a damaged or edited file)"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not one this project wrote."""


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temporary file, so an interrupted write never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
    os.replace(tmp, path)


def resolve(path: str | os.PathLike, name: str = "best.pt") -> Path:
    """A checkpoint path, or a run folder holding ``name``."""
    path = Path(path)
    if path.is_dir():
        if not (path / name).is_file():
            raise CheckpointError(f"{path} holds no {name}: name a run folder of train_agent.py or a .pt file")
        path = path / name
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def load(path: str | os.PathLike, name: str = "best.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (or ``<run dir>/<name>``) and check that it is one of ours."""
    path = resolve(path, name)
    if path.stat().st_size > 0 and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is truncated or not a checkpoint (not a whole zip archive, as torch.save writes)"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load fails in many ways on a foreign or damaged file; all mean the same here
        reason = (str(e).strip().splitlines() or ["empty file" if path.stat().st_size == 0 else "no detail"])[0][:200]
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({type(e).__name__}: {reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a RAM agent checkpoint (no '{FORMAT}' format tag)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}; this code reads version {VERSION}"
        )
    missing = {"config", "model_config", "model"} - set(payload)
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(sorted(missing))}")
    check_weights(path, payload["model_config"], payload["model"])
    check_task(path, payload["config"], payload["model_config"])
    return payload


def check_weights(path: Path, model_config: dict, weights: dict) -> None:
    """The weights have exactly the tensors, and the sizes, that the model config builds."""
    try:
        expected = RecurrentAttentionModel(RAMConfig(**model_config)).state_dict()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has a model config this code cannot build ({e})") from None
    if set(expected) != set(weights):
        odd = sorted(set(expected) ^ set(weights))
        raise CheckpointError(
            f"{path} was saved with core {model_config.get('core', 'rnn')!r} and glimpse_net "
            f"{model_config.get('glimpse_net', 'mlp')!r}, but its weights are of another network "
            f"({', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''}); {DAMAGED}"
        )
    readable = {  # sizes the weights show directly, named as in the model config
        "core_hidden": ("classifier.weight", 1),
        "n_classes": ("classifier.weight", 0),
        "location_hidden": ("where.0.weight", 0),
    }
    for key, (name, dim) in readable.items():
        if name in weights and weights[name].shape[dim] != expected[name].shape[dim]:
            raise CheckpointError(
                f"{path} was saved with {key} {expected[name].shape[dim]} but its weights are for "
                f"{key} {weights[name].shape[dim]}; {DAMAGED}"
            )
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            part = name.split(".")[0]
            keys = {"core": ["core"], "what": ["glimpse_shape", "glimpse_hidden", "glimpse_net"]}.get(
                part, ["core_hidden"]
            )
            saved = " and ".join(f"{k} {model_config.get(k, asdict(RAMConfig())[k])!r}" for k in keys)
            raise CheckpointError(
                f"{path} was saved with {saved} but its weights are {name} {tuple(weights[name].shape)}, "
                f"not {tuple(tensor.shape)}; {DAMAGED}"
            )


def check_task(path: Path, config: dict, model_config: dict) -> None:
    """The run config names a task this code registers, and its glimpses fit the network (its classes are checked
    against the env's action space where the two meet: :func:`agents.training.config.check_fits`)."""
    env_id = config.get("env_id")
    if env_id not in gym.registry:
        known = ", ".join(sorted(k for k in gym.registry if k.startswith("RAM/"))[:4])
        raise CheckpointError(f"{path} was trained on task {env_id!r}, which this code does not know (e.g. {known})")
    try:
        task = TaskConfig.from_kwargs({**gym.spec(env_id).kwargs, **config.get("env_kwargs", {})})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} names a task this code cannot build: {e}") from None
    for key, value in config.get("model", {}).items():
        if model_config.get(key, value) != value:
            raise CheckpointError(
                f"{path} was saved with {key} {value!r} in its run config but {model_config[key]!r} in its network"
            )
    shape = tuple(model_config.get("glimpse_shape", ()))
    if None in (task.n_patches, task.patch_size):  # settings that suit the data: known once it is read (check_fits)
        return
    if shape[:1] + shape[2:] != (task.n_patches, task.patch_size, task.patch_size):
        raise CheckpointError(
            f"{path} holds a network for glimpses of shape {shape}, but its task {env_id} "
            f"gives {task.n_patches} patch(es) of {task.patch_size}x{task.patch_size}; the file was damaged or edited"
        )
