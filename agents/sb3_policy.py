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
from ram_env.wrappers import GlimpseHistory, flatten_native_obs, to_native_action

BatchPolicy = Callable[[dict[str, np.ndarray], bool], dict[str, np.ndarray]]


def policy_of(model, algo: str, env_kwargs: dict[str, Any]) -> BatchPolicy:
    """The rendering protocol's policy for ``model``: ``policy(obs, first) -> dict(location, label)``.

    ``obs`` is a batch of native observations (``glimpse`` ``(N, n_patches, 1, p, p)``, ``location``
    ``(N, 2)``); ``first`` is True on the first step of the (synchronised) episodes. The policy acts
    deterministically and returns ``location`` ``(N, 2)`` float32 and ``label`` ``(N,)`` int64.

    :param algo: ``"recurrent_ppo"`` and ``"recurrent_ppo_glimpse"`` carry the LSTM state; the others see
        the glimpse history (flat, or the ``Dict`` when the model's observation space is one)
    :param env_kwargs: the task's arguments (for ``n_glimpses``)
    """
    n_glimpses = TaskConfig.from_kwargs({k: v for k, v in env_kwargs.items() if k != "render_mode"}).n_glimpses
    state: dict[str, Any] = {"history": None, "lstm": None}

    def policy(obs: dict[str, np.ndarray], first: bool) -> dict[str, np.ndarray]:
        n = len(obs["location"])
        if algo.startswith("recurrent_ppo"):
            start = bool(first or state["lstm"] is None)
            action, state["lstm"] = model.predict(
                flatten_native_obs(obs),
                state=None if start else state["lstm"],
                episode_start=np.full(n, start),
                deterministic=True,
            )
        else:
            history = state["history"]
            if first or history is None or len(history.count) != n:
                history = state["history"] = GlimpseHistory(n_glimpses, obs["glimpse"].shape[1:], num_envs=n)
                history.start(obs)
            else:
                history.add(obs)
            seen = history.dict() if isinstance(model.observation_space, gym.spaces.Dict) else history.flat()
            action, _ = model.predict(seen, deterministic=True)
        return to_native_action(action, model.action_space)

    return policy


def play_episodes(policy: BatchPolicy, venv: gym.vector.VectorEnv, indices: np.ndarray) -> np.ndarray:
    """Whether ``policy`` answers right on each image of ``indices``: one episode per image, played
    ``venv.num_envs`` at a time (the last batch padded with repeats of its last image).

    ``venv`` must be of the val or test split, whose episodes (layout and start) are fixed per image.
    """
    indices = np.asarray(indices, dtype=np.int64)
    correct = np.zeros(len(indices), dtype=bool)
    n = venv.num_envs
    for lo in range(0, len(indices), n):
        chunk = indices[lo : lo + n]
        padded = np.concatenate([chunk, np.full(n - len(chunk), chunk[-1])])
        obs, _ = venv.reset(seed=0, options={"indices": padded})
        first, terminated = True, np.zeros(n, dtype=bool)
        while not terminated.all():
            obs, _, terminated, _, infos = venv.step(policy(obs, first))
            first = False
        correct[lo : lo + len(chunk)] = infos["correct"][: len(chunk)]
    return correct
