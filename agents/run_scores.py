"""The test errors of any trained run (RAM agent, Stable-Baselines3, RLlib), as ``evaluate.py`` prints them and
``agents.leaderboard`` tables them: one place, so that the two can never score a run differently.

A RAM agent is scored under two protocols: the class probabilities of ``test_rollouts`` episodes averaged (with
one, the policy's mean locations), and one episode with sampled locations. A library learner plays its one
deterministic episode per image.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from agents.cli import UsageError
from ram_env import TaskConfig


def is_sb3(path: Path) -> bool:
    """Stable-Baselines3 (or RLlib) runs are a .zip, or a folder whose config.json names a library algorithm."""
    if path.suffix == ".zip":
        return True
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        try:
            return json.loads(config.read_text()).get("algo", "ram") != "ram"
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return False
    return False


def library(path: Path):
    """The module that loads and scores a library learner's run: ``agents.rllib`` or ``agents.sb3``."""
    config = (path if path.is_dir() else path.parent) / "config.json"
    try:
        rllib = json.loads(config.read_text()).get("learner") == "rllib"
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        rllib = False
    if rllib:
        from agents import rllib as runs
    else:
        from agents import sb3 as runs
    return runs


def check_sb3_task(path: Path) -> None:
    """The SB3 run's config.json names a task this code can build."""
    config_path = (path if path.is_dir() else path.parent) / "config.json"
    try:
        env = json.loads(config_path.read_text())["env"]
        TaskConfig.from_kwargs({k: v for k, v in env.items() if k not in ("split", "render_mode")})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{config_path} does not describe a task this code can build ({type(e).__name__}: {e})")


def score_run(
    checkpoint: Path,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    test_rollouts: int | None = None,
    seed: int = 0,
    per_step: bool = False,
    device: str = "cpu",
    digit_size: int | None = None,
) -> list[tuple[str, np.ndarray | None]]:
    """What was scored and the lines that report it: ``(description, correct flags)`` per protocol, then the
    glimpses used or the per-step errors as ``(line, None)``. ``digit_size``: score a RAM agent on its task with
    digits of that side instead (the same fixed episodes otherwise: a size-generalisation study)."""
    if is_sb3(checkpoint):
        correct, config = library(checkpoint).evaluate(checkpoint, split, data_dir, limit=limit)
        return [(f"{config['algo']} on {config.get('env', {}).get('dataset', '?')}", correct)]
    return score_ram(checkpoint, split, data_dir, limit, test_rollouts, seed, per_step, device, digit_size)


def score_ram(checkpoint, split, data_dir, limit, test_rollouts, seed, per_step, device, digit_size=None):
    """:func:`score_run` of a RAM agent's checkpoint (or run folder)."""
    from agents.training.config import resolve_device, resolve_env_device
    from agents.training.run_state import load_model
    from agents.training.scoring import evaluate_split

    device = resolve_device(device)
    model, config = load_model(checkpoint, device)
    if per_step and model.config.halting:
        raise UsageError("--per-step scores a fixed-budget agent; this one (answer=any_step) answers when it stops")
    if data_dir:
        config.data_dir = data_dir
    rollouts = test_rollouts or config.test_rollouts
    common = dict(limit=limit, seed=seed, progress=True)
    common["env_device"] = resolve_env_device(config, device)  # on a GPU the episodes live there too
    what = f"RAM agent on {config.env_id}"
    if digit_size is not None:
        config.env_kwargs = {**config.env_kwargs, "digit_size": digit_size}
        TaskConfig.from_kwargs({**gym.spec(config.env_id).kwargs, **config.env_kwargs})  # a size that fits, or why
        what += f" with {digit_size} px digits"
    averaged = evaluate_split(model, config, split, rollouts, device, per_step=per_step, **common)
    sampled = evaluate_split(model, config, split, 1, device, sample=True, **common)
    lines = [
        (f"{what}, {rollouts} rollout(s){', mean locations' if rollouts == 1 else ''}", averaged.correct),
        (f"{what}, 1 rollout, sampled locations", sampled.correct),
    ]
    if model.config.halting:
        n_glimpses = {**TaskConfig().to_dict(), **gym.spec(config.env_id).kwargs, **config.env_kwargs}["n_glimpses"]
        for scores, protocol in ((averaged, "all rollouts"), (sampled, "1 sampled rollout")):
            lines.append((glimpses_line(scores.glimpses, n_glimpses, protocol), None))
    for t, correct in enumerate(averaged.per_step if per_step else []):
        lines.append((f"  after {t + 1} glimpse(s): error {100 * (1 - correct.mean()):.2f}%", None))
    return lines


def glimpses_line(glimpses: np.ndarray, n_glimpses: int, protocol: str) -> str:
    """The mean and the distribution (over 1 .. ``n_glimpses``) of the glimpses the episodes took before answering."""
    counts = np.bincount(glimpses.ravel(), minlength=n_glimpses + 1)[1:] / glimpses.size
    shares = "  ".join(f"{k + 1}: {100 * share:.1f}%" for k, share in enumerate(counts))
    return f"  glimpses used ({protocol}): mean {glimpses.mean():.2f}  ({shares})"
