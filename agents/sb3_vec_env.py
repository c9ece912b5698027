"""GlimpseSB3VecEnv: Stable-Baselines3's ``VecEnv`` over a RAM task's native vector env.

SB3 steps its ``n_envs`` environments through a ``VecEnv``; its ``DummyVecEnv`` loops in Python over
wrapped single envs. This adapter steps one native :class:`~ram_env.vector.GlimpseVectorEnv` (made by
``gym.make_vec(id, vectorization_mode="vector_entry_point")``) as one numpy batch instead, about 1.5x as
fast, and shows SB3 exactly what the single-env wrappers of :mod:`ram_env.wrappers` show (tested).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from ram_env.wrappers import (
    REWARDS,
    GlimpseHistory,
    GradedReward,
    LastScores,
    check_graded_answer,
    discrete_action_space,
    flat_action_space,
    flatten_native_obs,
    history_space,
    last_scores_space,
    native_answer,
    task_labels,
    to_native_action,
)

ACTIONS = ("box", "discrete")


def check_options(action: str, reward: str) -> None:
    """Refuse, in one line, an action or reward kind the adapter does not have, or a graded reward without scores."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; choose one of {', '.join(REWARDS)}")
    if reward == "graded" and action != "box":
        raise ValueError("the graded reward reads class scores: it needs action='box', not 'discrete'")


def truth_of(info: dict, i: int) -> dict[str, Any]:
    """Env ``i``'s truth in an SB3 info: its label(s) (an int, or K ints), or the digit's centre."""
    if "centre" in info:
        return {"centre": np.asarray(info["centre"][i]).copy(), "label": int(info["label"][i])}
    label = np.asarray(info["label"][i])
    return {"label": int(label) if label.ndim == 0 else label.copy()}


class GlimpseSB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` over one native glimpse vector env: ``num_envs`` episodes stepped as one batch.

    | `history`, `flatten` | observation (one row per env)                                                    |
    |----------------------|----------------------------------------------------------------------------------|
    | ``True``, ``True``   | ``GlimpseHistoryWrapper``'s flat ``Box``: every glimpse and location so far, the step |
    | ``True``, ``False``  | ``GlimpseHistoryWrapper(flatten=False)``'s ``Dict`` of the same                  |
    | ``False``            | ``FlattenObservation``'s ``Box``: the current glimpse, then its location          |

    | `action`       | action (one row per env)                                                |
    |----------------|-------------------------------------------------------------------------|
    | ``"box"``      | ``FlatActionWrapper``'s ``Box(-1, 1, (2 + n_classes [+ 1],))``            |
    | ``"discrete"`` | ``DiscreteActionWrapper``'s ``MultiDiscrete([grid, grid, n_classes [, 2]])`` |

    (``[...]``: the stop entry, exactly when the task has ``answer="any_step"``.) ``reward="graded"`` pays
    what ``GradedRewardWrapper`` pays (``box`` actions and ``answer="last_step"`` only), through the same
    :class:`~ram_env.wrappers.GradedReward`; ``info["episode"]["r"]`` is then the episode's return.
    ``scores=True`` adds the previous step's class scores to the observation, as ``LastScoresWrapper`` does
    (``box`` actions only), through the same :class:`~ram_env.wrappers.LastScores`.

    Envs whose episode ends on a step are reset within that step, as SB3 expects of a ``VecEnv`` (the native
    vector env would restart them on the next one): the observation returned is the new episode's first,
    ``info["terminal_observation"]`` the final one, with the env's ``correct``, ``label`` and ``glimpses``
    and a Monitor-style ``info["episode"]`` so that SB3 logs ``ep_rew_mean`` (the training accuracy, less
    the glimpse costs). With ``answer="last_step"`` all episodes last ``n_glimpses`` steps, so they end and
    restart together; with ``answer="any_step"`` each restarts alone (``reset_mask``) when it answers.
    ``reset_infos[i]["index"]`` is the image env ``i`` shows.

    :param venv: the native vector env, ``gym.make_vec(id, n, vectorization_mode="vector_entry_point")``
    :param history: show the whole episode so far (feed-forward policies) or the current glimpse (LSTM)
    :param action: ``"box"`` or ``"discrete"``
    :param grid: lattice points per axis of the discrete action
    :param flatten: with ``history``, a flat ``Box`` (``MlpPolicy``) rather than a ``Dict``
    :param reward: ``"binary"`` (the env's 0/1) or ``"graded"``
    :param reward_options: ``GradedReward``'s ``scale``, ``shaping``, ``gamma``
    :param scores: show the class scores of the previous step (``LastScoresWrapper``)
    """

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        history: bool = True,
        action: str = "box",
        grid: int = 7,
        flatten: bool = True,
        reward: str = "binary",
        reward_options: dict[str, Any] | None = None,
        scores: bool = False,
    ):
        check_options(action, reward)
        if scores and action != "box":
            raise ValueError("scores=True shows the class scores of the box action; it needs action='box'")
        if reward == "graded":
            check_graded_answer(venv.config.answer)
        self.venv = venv
        self.stop = venv.config.answer == "any_step"
        self.n_glimpses = int(venv.config.n_glimpses)
        glimpse_shape = venv.single_observation_space["glimpse"].shape
        self.answer = native_answer(venv.single_action_space)  # one label, K label blocks, or a point
        n_classes = self.answer.n_classes
        if (self.answer.blocks > 1 or self.answer.point) and (action != "box" or reward == "graded" or scores):
            raise ValueError(
                "a task answering K labels or a point takes the box action with the binary reward and no scores "
                "(the graded reward, the scores and the discrete action are for one label)"
            )
        self.history = GlimpseHistory(self.n_glimpses, glimpse_shape, venv.num_envs) if history else None
        self.graded = (
            GradedReward(task_labels(venv.config), venv.num_envs, **(reward_options or {}))
            if reward == "graded"
            else None
        )
        self.last = LastScores(n_classes, venv.num_envs) if scores else None
        self.returns = np.zeros(venv.num_envs)
        observation_space = (
            history_space(glimpse_shape, self.n_glimpses, flatten)
            if history
            else gym.spaces.flatten_space(venv.single_observation_space)
        )
        if scores:
            observation_space = last_scores_space(observation_space, n_classes)
        action_space = (
            flat_action_space(n_classes, self.stop, self.answer)
            if action == "box"
            else discrete_action_space(grid, n_classes, self.stop)
        )
        self.render_mode = None
        self._actions = None
        self._t0 = time.perf_counter()
        super().__init__(venv.num_envs, observation_space, action_space)

    def _observe(self, native: dict[str, np.ndarray]):
        if self.history is None:
            obs = flatten_native_obs(native)
        else:
            obs = self.history.dict() if isinstance(self.observation_space, gym.spaces.Dict) else self.history.flat()
        return obs if self.last is None else self.last.observe(obs)

    def reset(self) -> np.ndarray:
        native, info = self.venv.reset(seed=self._seeds[0])
        self._reset_seeds()
        self.reset_infos = [{"index": int(i)} for i in info["index"]]
        self.returns[:] = 0.0
        if self.graded is not None:
            self.graded.start(info["index"])
        if self.last is not None:
            self.last.start()
        if self.history is not None:
            self.history.start(native)
        return self._observe(native)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        native, rewards, terminated, truncated, info = self.venv.step(
            to_native_action(self._actions, self.action_space, self.stop, self.answer)
        )
        dones = terminated | truncated
        if self.graded is not None:
            rewards = self.graded.pay(np.asarray(self._actions)[:, 2:], dones)
        if self.last is not None:
            self.last.record(self._actions)
        self.returns += rewards
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if not dones.any():
            if self.history is not None:
                self.history.add(native)
            return self._observe(native), rewards.astype(np.float32), dones, infos
        if self.history is not None and not dones.all():  # the envs still looking take their glimpse
            running = np.flatnonzero(~dones)
            self.history.add({k: v[running] for k, v in native.items()}, running)
        final = self._observe(native)  # the env takes no glimpse on the answering step
        elapsed = round(time.perf_counter() - self._t0, 6)
        for i in np.flatnonzero(dones):
            infos[i] = {
                "correct": bool(info["correct"][i]),
                **truth_of(info, i),
                "glimpses": int(info["glimpses"][i]),
                "terminal_observation": {k: v[i] for k, v in final.items()} if isinstance(final, dict) else final[i],
                "TimeLimit.truncated": False,
                "episode": {"r": float(self.returns[i]), "l": int(info["glimpses"][i]), "t": elapsed},
            }
        if dones.all():  # every last_step episode: all restart together
            return self.reset(), rewards.astype(np.float32), dones, infos
        return self._restart(dones), rewards.astype(np.float32), dones, infos

    def _restart(self, dones: np.ndarray):
        """Start new episodes in the envs ``dones`` only (SB3's auto-reset); the observation of every env."""
        native, info = self.venv.reset(options={"reset_mask": dones})
        rows = np.flatnonzero(dones)
        for i in rows:
            self.reset_infos[i] = {"index": int(info["index"][i])}
        self.returns[rows] = 0.0
        if self.graded is not None:
            self.graded.start(info["index"][rows], rows)
        if self.last is not None:
            self.last.start(rows)
        if self.history is not None:
            self.history.start({k: v[rows] for k, v in native.items()}, rows)
        return self._observe(native)

    def close(self) -> None:
        self.venv.close()

    def _n(self, indices) -> int:
        return len(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * self._n(indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * self._n(indices)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self._n(indices)
