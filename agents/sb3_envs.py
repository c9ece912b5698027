"""The envs an SB3 learner sees: the task's env (or native vector env) wrapped as each algorithm needs it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

import ram_env
from agents.sb3_algos import base_algo, check_algo, sees_glimpse_history
from agents.sb3_vec_env import GlimpseSB3VecEnv, check_options
from ram_env import sources
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistoryWrapper,
    GradedRewardWrapper,
    LastScoresWrapper,
)


def task_kwargs(env_kwargs: dict[str, Any], split: str, data_dir: str | None = None) -> dict[str, Any]:
    """The task's arguments for ``split`` (a stored ``split`` or ``render_mode`` is dropped)."""
    kwargs = {k: v for k, v in env_kwargs.items() if k not in ("split", "render_mode")}
    kwargs["split"] = split
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return kwargs


def task_env_id(env_kwargs: dict[str, Any]) -> str:
    """A registered id of the task's dataset (``RAM/Images-v0`` for other data); ``env_kwargs`` override every
    default of its spec."""
    dataset = env_kwargs.get("dataset", "MNIST")
    other = env_kwargs.get("images") is not None or env_kwargs.get("image_folder") or env_kwargs.get("resize")
    if dataset not in sources.MNIST_FAMILY or other:
        return "RAM/Images-v0"
    return ram_env.task_id("{D}", dataset)


def make_env(
    algo: str,
    env_kwargs: dict[str, Any],
    split: str = "train",
    data_dir: str | None = None,
    action: str = "box",
    grid: int = 7,
    reward: str = "binary",
    reward_options: dict[str, Any] | None = None,
    observe_scores: bool = False,
) -> gym.Env:
    """A single env of ``split`` (``gym.make``), wrapped as ``algo`` sees it (module table).

    ``action="discrete"`` swaps the flat ``Box`` action for :class:`~ram_env.wrappers.DiscreteActionWrapper`
    (a ``grid x grid`` lattice of locations plus a categorical label); ``observe_scores`` adds
    :class:`~ram_env.wrappers.LastScoresWrapper` over the flat one, and ``reward="graded"``
    :class:`~ram_env.wrappers.GradedRewardWrapper` (with ``reward_options``) on top."""
    check_algo_options(algo, action, reward, observe_scores)
    env = gym.make(task_env_id(env_kwargs), **task_kwargs(env_kwargs, split, data_dir))
    if base_algo(algo) == "recurrent_ppo":
        env = gym.wrappers.FlattenObservation(env)
    else:
        env = GlimpseHistoryWrapper(env, flatten=not sees_glimpse_history(algo))
    env = FlatActionWrapper(env) if action == "box" else DiscreteActionWrapper(env, grid=grid)
    env = LastScoresWrapper(env) if observe_scores else env
    return GradedRewardWrapper(env, **(reward_options or {})) if reward == "graded" else env


def check_algo_options(algo: str, action: str, reward: str, observe_scores: bool = False) -> None:
    check_algo(algo)
    check_options(action, reward)
    check_observe_scores(algo, action, observe_scores)


def check_observe_scores(algo: str, action: str, observe_scores: bool) -> None:
    if observe_scores and action != "box":
        raise ValueError("observe_scores shows the class scores of the box action; it needs action='box'")
    if observe_scores and algo == "recurrent_ppo_glimpse":
        raise ValueError("observe_scores is not for recurrent_ppo_glimpse, whose extractor reads one glimpse")


def make_task_vec(
    env_kwargs: dict[str, Any], num_envs: int, split: str = "train", data_dir: str | None = None
) -> gym.vector.VectorEnv:
    """The task's native vector env of ``num_envs`` episodes of ``split``."""
    return gym.make_vec(
        task_env_id(env_kwargs),
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        **task_kwargs(env_kwargs, split, data_dir),
    )


def make_vec_env(
    algo: str,
    env_kwargs: dict[str, Any],
    n_envs: int,
    split: str = "train",
    seed: int | None = None,
    action: str = "box",
    grid: int = 7,
    reward: str = "binary",
    reward_options: dict[str, Any] | None = None,
    observe_scores: bool = False,
) -> GlimpseSB3VecEnv:
    """``n_envs`` episodes of ``split`` as an SB3 ``VecEnv``, each seen as through :func:`make_env`'s wrappers."""
    check_algo_options(algo, action, reward, observe_scores)
    venv = GlimpseSB3VecEnv(
        make_task_vec(env_kwargs, n_envs, split),
        history=base_algo(algo) != "recurrent_ppo",
        action=action,
        grid=grid,
        flatten=not sees_glimpse_history(algo),
        reward=reward,
        reward_options=reward_options,
        scores=observe_scores,
    )
    if seed is not None:
        venv.seed(seed)
    return venv
