"""Checkpoint files: weights, optimiser state and the full run config in one file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "ram-gym/ram-agent"
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
        path = path / name
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def load(path: str | os.PathLike, name: str = "best.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (or ``<run dir>/<name>``) and check that it is one of ours."""
    path = resolve(path, name)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load fails in many ways on a foreign or damaged file; all mean the same here
        reason = str(e).strip().splitlines()[0][:200]
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
    return payload
