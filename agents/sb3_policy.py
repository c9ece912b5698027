"""A Stable-Baselines3 model as a batch policy of the native vector env: for rendering and for scoring.

The model was trained on wrapped observations and actions (:mod:`ram_env.wrappers`); the policy here
rebuilds those observations from native batches (the glimpse history, or the LSTM state) and turns the
model's actions back into native ones with the same conversions the wrappers use.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ram_env import TaskConfig
from ram_env.wrappers import GlimpseHistory, LastScores, flatten_native_obs, to_native_action
from ram_env.wrappers.actions import Answer

BatchPolicy = Callable[[dict[str, np.ndarray], bool], dict[str, np.ndarray]]


def policy_of(model, algo: str, env_kwargs: dict[str, Any]) -> BatchPolicy:
    """The rendering protocol's policy for ``model``: ``policy(obs, first) -> dict(location, label[, stop])``.

    ``obs`` is a batch of native observations (``glimpse`` ``(N, n_patches, 1, p, p)``, ``location``
    ``(N, 2)``); ``first`` is True on the first step of the (synchronised) episodes. The policy acts
    deterministically and returns ``location`` ``(N, 2)`` float32 and ``label`` ``(N,)`` int64, and with
    ``answer="any_step"`` ``stop`` ``(N,)`` int64. An env whose episode ended before the others' (and which
    the native vector env restarts) goes on being fed to the same history or LSTM state: its actions are
    meaningless until the next ``first`` (no episode outlasts ``n_glimpses`` calls, so neither does its
    history), which is all :func:`play_episodes` needs.

    :param algo: ``"recurrent_ppo"`` and ``"recurrent_ppo_glimpse"`` carry the LSTM state; the others see
        the glimpse history (flat, or the ``Dict`` when the model's observation space is one), and the
        previous step's class scores where the model's observation space holds them (``LastScoresWrapper``)
    :param env_kwargs: the task's arguments (for ``n_glimpses``)
    """
    task = TaskConfig.from_kwargs({k: v for k, v in env_kwargs.items() if k != "render_mode"})
    n_glimpses, stop = task.n_glimpses, task.answer == "any_step"
    answer = task_answer(task, model.action_space, stop)
    space = model.observation_space
    state: dict[str, Any] = {"history": None, "lstm": None, "last": None}

    def policy(obs: dict[str, np.ndarray], first: bool) -> dict[str, np.ndarray]:
        n = len(obs["location"])
        start = bool(first or state["last"] is None or len(state["last"].scores) != n)
        if algo.startswith("recurrent_ppo"):
            seen = flatten_native_obs(obs)
        else:
            if start:
                state["history"] = GlimpseHistory(n_glimpses, obs["glimpse"].shape[1:], num_envs=n)
                state["history"].start(obs)
            else:
                state["history"].add(obs)
            seen = state["history"].dict() if isinstance(space, gym.spaces.Dict) else state["history"].flat()
        if start:
            state["last"] = LastScores(scores_seen(space, seen), n)
        if state["last"].scores.shape[1]:
            seen = state["last"].observe(seen)
        if algo.startswith("recurrent_ppo"):
            lstm = None if start else state["lstm"]
            action, state["lstm"] = model.predict(seen, lstm, episode_start=np.full(n, start), deterministic=True)
        else:
            action, _ = model.predict(seen, deterministic=True)
        state["last"].record(action)
        return to_native_action(action, model.action_space, stop, answer)

    return policy


def task_answer(task: TaskConfig, action_space: gym.Space, stop: bool) -> Answer | None:
    """The answer part of a box action on ``task`` (K label blocks or a point); None for one label or a lattice."""
    if not isinstance(action_space, gym.spaces.Box):
        return None
    if task.target == "location":
        return Answer(0, 1, True)
    if task.target == "label" and task.n_objects > 1:
        return Answer((action_space.shape[0] - 2 - int(stop)) // task.n_objects, task.n_objects)
    return None


def scores_seen(space: gym.Space, seen) -> int:
    """How many class scores of the previous step a model with observation ``space`` sees besides ``seen``,
    the observation without them (a ``scores`` key, or entries appended to a flat one)."""
    if isinstance(space, gym.spaces.Dict):
        return space["scores"].shape[0] if "scores" in space.spaces else 0
    return space.shape[0] - seen.shape[1]


def play_episodes(
    policy: BatchPolicy, venv: gym.vector.VectorEnv, indices: np.ndarray, with_glimpses: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Whether ``policy`` answers right on each image of ``indices``: one episode per image, played
    ``venv.num_envs`` at a time (the last batch padded with repeats of its last image).

    With ``answer="any_step"`` episodes end apart: each env's first ending is its image's episode, and
    what the env plays after it (the native vector env restarts it on a random image) is not counted.

    ``venv`` must be of the val or test split, whose episodes (layout and start) are fixed per image.

    :param with_glimpses: also return the glimpses each episode took (``info["glimpses"]``)
    :return: ``correct`` (bool per image), or ``(correct, glimpses)`` (int64 per image) with ``with_glimpses``
    """
    indices = np.asarray(indices, dtype=np.int64)
    correct = np.zeros(len(indices), dtype=bool)
    glimpses = np.zeros(len(indices), dtype=np.int64)
    n = venv.num_envs
    for lo in range(0, len(indices), n):
        chunk = indices[lo : lo + n]
        padded = np.concatenate([chunk, np.full(n - len(chunk), chunk[-1])])
        obs, _ = venv.reset(seed=0, options={"indices": padded})
        first, ended = True, np.zeros(n, dtype=bool)
        chunk_correct, chunk_glimpses = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
        while not ended.all():
            obs, _, terminated, _, infos = venv.step(policy(obs, first))
            first = False
            now = np.asarray(terminated, dtype=bool) & ~ended  # first endings only
            if now.any():
                chunk_correct[now] = np.asarray(infos["correct"])[now]
                chunk_glimpses[now] = np.asarray(infos["glimpses"])[now]
                ended |= now
        correct[lo : lo + len(chunk)] = chunk_correct[: len(chunk)]
        glimpses[lo : lo + len(chunk)] = chunk_glimpses[: len(chunk)]
    return (correct, glimpses) if with_glimpses else correct
