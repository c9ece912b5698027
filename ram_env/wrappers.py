"""Adapters that let libraries with narrower space support (Stable-Baselines3 first) train on the RAM tasks.

The native :class:`~ram_env.env.GlimpseEnv` takes a ``Dict(location=Box, label=Discrete)`` action (plus
``stop=Discrete(2)`` with ``answer="any_step"``).
That is **not** Stable-Baselines3-compatible: SB3's algorithms take ``Box``, ``Discrete``, ``MultiDiscrete``
and ``MultiBinary`` actions only (``PPO("MultiInputPolicy", env)`` raises on the ``Dict`` action, and
``check_env`` warns that it is not supported), and its feed-forward
policies see one observation at a time, while the task needs every glimpse of the episode. The wrappers
here close both gaps without changing the task: episodes end when the env's do, the reward is the env's
(1.0 for the right label on the answering step, less ``glimpse_cost`` per glimpse with ``answer="any_step"``),
the validation/test images are the same.

| Wrapper                   | Changes     | Space seen by the learner                                          |
|---------------------------|-------------|--------------------------------------------------------------------|
| :class:`FlatActionWrapper`     | action      | ``Box(-1, 1, (2 + n_classes [+ 1],), float32)``               |
| :class:`DiscreteActionWrapper` | action      | ``MultiDiscrete([grid, grid, n_classes [, 2]])``              |
| :class:`GlimpseHistoryWrapper` | observation | ``Box`` (flat, default) or ``Dict`` of all glimpses so far     |
| :class:`GradedRewardWrapper`   | reward      | (opt-in) log-probability of the true class, shaped per step    |
| :class:`LastScoresWrapper`     | observation | (opt-in) adds the class scores of the previous step            |

(``[...]``: the stop entry, present exactly when the task has ``answer="any_step"``.)

Each action wrapper converts both ways: ``to_native(action)`` gives the env's ``dict(location, label[, stop])``
and ``from_native(native)`` the wrapped action; both also take a leading batch axis. The same conversions
are plain functions, :func:`to_native_action` and :func:`from_native_action`, of the wrapped action space
and the option (``stop=True`` with ``answer="any_step"``: the space alone cannot tell a stop entry from
one more class), so a policy trained on the wrapped env can drive a :class:`~ram_env.vector.GlimpseVectorEnv`
without building a single env. :class:`GlimpseHistory` is the batched bookkeeping behind
:class:`GlimpseHistoryWrapper`, for the same purpose, and :func:`history_space` its observation space;
:class:`GradedReward` is the one behind :class:`GradedRewardWrapper`, :class:`LastScores` the one behind
:class:`LastScoresWrapper`.

The wrappers record their constructor arguments (``gymnasium.utils.RecordConstructorArgs``) as
Gymnasium's own do, so ``env.spec`` can rebuild a wrapped env and ``check_env`` passes with its defaults.

```python
>>> import gymnasium as gym, ram_env
>>> from ram_env.wrappers import FlatActionWrapper, GlimpseHistoryWrapper
>>> env = FlatActionWrapper(GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0")))
>>> env.observation_space.shape, env.action_space.shape
((402,), (12,))

```
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ram_env import datasets

__all__ = [
    "FlatActionWrapper",
    "DiscreteActionWrapper",
    "GlimpseHistoryWrapper",
    "GlimpseHistory",
    "flat_action_space",
    "discrete_action_space",
    "to_native_action",
    "from_native_action",
    "history_space",
    "flatten_native_obs",
    "GradedRewardWrapper",
    "GradedReward",
    "LastScoresWrapper",
    "LastScores",
    "last_scores_space",
    "REWARDS",
    "check_graded_answer",
    "class_log_probs",
    "task_labels",
]

REWARDS = ("binary", "graded")  # the paper's 0/1 reward (default), the opt-in graded one


def _native_spaces(env: gym.Env) -> tuple[spaces.Dict, int, int, bool]:
    """The native action space, number of classes and of glimpses of a (wrapped) glimpse env, and whether its
    action has a ``stop`` flag (``answer="any_step"``)."""
    space = env.action_space
    keys = set(space.spaces) if isinstance(space, spaces.Dict) else set()
    if keys not in ({"location", "label"}, {"location", "label", "stop"}):
        raise ValueError(f"expected a glimpse env with a Dict(location, label[, stop]) action space, got {space}")
    config = getattr(env.unwrapped, "config", None)
    if config is None or not hasattr(config, "n_glimpses"):
        raise ValueError(f"expected a ram_env glimpse env (with a TaskConfig), got {env.unwrapped!r}")
    return space, int(space["label"].n), int(config.n_glimpses), "stop" in keys


def flat_action_space(n_classes: int, stop: bool = False) -> spaces.Box:
    """The action space of :class:`FlatActionWrapper`: two location coordinates, a score per class, then (with
    ``stop``, for ``answer="any_step"``) the stop entry."""
    return spaces.Box(-1.0, 1.0, (2 + int(n_classes) + int(bool(stop)),), np.float32)


def discrete_action_space(grid: int, n_classes: int, stop: bool = False) -> spaces.MultiDiscrete:
    """The action space of :class:`DiscreteActionWrapper`: lattice column, lattice row, label, then (with
    ``stop``, for ``answer="any_step"``) the stop flag."""
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}")
    return spaces.MultiDiscrete([int(grid), int(grid), int(n_classes)] + ([2] if stop else []))


def _as_float_action(action: Any, size: int) -> np.ndarray:
    try:
        a = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"flat action must be numbers, got {action!r}") from None
    if a.ndim < 1 or a.shape[-1] != size:
        raise ValueError(f"flat action must have shape (..., {size}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"flat action must be finite, got {a.tolist()}")
    if np.abs(a).max() > 1.0:
        raise ValueError(f"flat action must lie in [-1, 1] (no clipping is done), got {a.tolist()}")
    return a


def _scalar(a: np.ndarray):
    return a if a.ndim else a.dtype.type(a)


def _flat_to_native(action: Any, n_classes: int, stop: bool) -> dict[str, np.ndarray]:
    a = _as_float_action(action, 2 + n_classes + int(stop))
    native = {
        "location": a[..., :2].copy(),
        "label": _scalar(np.argmax(a[..., 2 : 2 + n_classes], axis=-1).astype(np.int64)),
    }
    if stop:
        native["stop"] = _scalar((a[..., -1] > 0).astype(np.int64))
    return native


def _discrete_to_native(action: Any, nvec: np.ndarray, stop: bool) -> dict[str, np.ndarray]:
    a = np.asarray(action)
    size = 3 + int(stop)
    if a.ndim < 1 or a.shape[-1] != size or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"discrete action must be integers of shape (..., {size}), got {action!r}")
    if (a < 0).any() or (a >= nvec).any():
        raise ValueError(f"discrete action must lie in [0, {nvec.tolist()}), got {a.tolist()}")
    lattice = np.linspace(-1.0, 1.0, int(nvec[0]), dtype=np.float32)
    native = {"location": lattice[a[..., :2]], "label": _scalar(a[..., 2].astype(np.int64))}
    if stop:
        native["stop"] = _scalar(a[..., 3].astype(np.int64))
    return native


def _check_action_space(space: spaces.Space, stop: bool) -> None:
    size = 3 + int(stop)
    flat = isinstance(space, spaces.Box) and len(space.shape) == 1 and space.shape[0] > size - 1
    discrete = isinstance(space, spaces.MultiDiscrete) and space.shape == (size,) and space.nvec[0] == space.nvec[1]
    if stop and discrete and space.nvec[3] != 2:
        discrete = False
    if not (flat or discrete):
        extra = (" + 1", ", 2") if stop else ("", "")
        raise ValueError(
            f"expected a flat Box(2 + n_classes{extra[0]}) or MultiDiscrete([grid, grid, n_classes{extra[1]}]) "
            f"space (stop={stop}), got {space}"
        )


def to_native_action(action: Any, space: spaces.Space, stop: bool = False) -> dict[str, np.ndarray]:
    """The native ``dict(location=(..., 2) float32, label=(...,) int64[, stop=(...,) int64])`` of wrapped action(s).

    :param action: one action of ``space``, or a batch of them (a leading axis)
    :param space: :func:`flat_action_space` (label = arg-max of the scores, first on ties; stop = the last
        entry > 0) or :func:`discrete_action_space` (location = the lattice point)
    :param stop: the space has the stop entry (``answer="any_step"``); the native action then has ``stop``
    """
    _check_action_space(space, stop)
    if isinstance(space, spaces.Box):
        return _flat_to_native(action, space.shape[0] - 2 - int(stop), stop)
    return _discrete_to_native(action, np.asarray(space.nvec), stop)


def from_native_action(native: dict, space: spaces.Space, stop: bool = False) -> np.ndarray:
    """The action of ``space`` for native ``dict(location, label[, stop])`` action(s), optionally batched.

    Flat: the location, then +1 on the label's score and -1 on the others, then (``stop``) +1 to stop and
    -1 to look again, so ``to_native_action(from_native_action(a))`` is ``a``. Discrete: the nearest lattice
    point, the label and (``stop``) the stop flag.
    """
    _check_action_space(space, stop)
    label = np.asarray(native["label"], dtype=np.int64)
    tail = [np.asarray(native["stop"], dtype=np.int64)[..., None]] if stop else []
    if isinstance(space, spaces.Box):
        location = np.asarray(native["location"], dtype=np.float32)
        scores = np.full(label.shape + (space.shape[0] - 2 - int(stop),), -1.0, dtype=np.float32)
        np.put_along_axis(scores, label[..., None], 1.0, axis=-1)
        return np.concatenate([location, scores] + [2.0 * t.astype(np.float32) - 1.0 for t in tail], axis=-1)
    grid = int(space.nvec[0])
    location = np.asarray(native["location"], dtype=np.float64)
    index = np.clip(np.rint((location + 1.0) / 2.0 * (grid - 1)), 0, grid - 1).astype(np.int64)
    return np.concatenate([index, label[..., None]] + tail, axis=-1)


def _single_action(wrapper: gym.ActionWrapper, action: Any) -> dict[str, Any]:
    """One native action for the wrapped single env, refusing a batch or a wrong shape in one line."""
    shape = np.shape(action) if isinstance(action, (np.ndarray, list, tuple)) else None
    kind = "flat" if isinstance(wrapper.action_space, spaces.Box) else "discrete"
    if shape is not None and shape != wrapper.action_space.shape:
        raise ValueError(
            f"{type(wrapper).__name__} takes one {kind} action of shape {wrapper.action_space.shape}, got shape {shape}"
            " (a batch of actions goes to a vector env, e.g. through to_native_action)"
        )
    native = to_native_action(action, wrapper.action_space, wrapper.stop)
    single = {"location": native["location"], "label": int(native["label"])}
    if wrapper.stop:
        single["stop"] = int(native["stop"])
    return single


class FlatActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """A ``Box`` action for learners with Gaussian policies (PPO, A2C, SAC, ...).

    ## Action Space

    ``Box(-1, 1, (2 + n_classes,), float32)``; with ``answer="any_step"``, ``Box(-1, 1, (3 + n_classes,), float32)``

    | Index              | Meaning                                                                  |
    |--------------------|--------------------------------------------------------------------------|
    | `0, 1`             | ``(x, y)`` of the next glimpse, as the native ``location``               |
    | `2 .. 1+n_classes` | one score per class; the native ``label`` is the arg-max (first on ties) |
    | `2+n_classes`      | only with ``answer="any_step"``: the native ``stop`` is 1 where it is > 0 |

    An action outside ``[-1, 1]``, NaN or of the wrong shape (a batch included) raises ``ValueError``
    (nothing is clipped here; SB3 clips its Gaussian samples to the bounds itself before stepping).

    Reversible: ``to_native(from_native(a)) == a`` for every native action ``a`` (``from_native`` puts
    +1 on the label's score and -1 on the others, and +1 to stop, -1 to look again); ``from_native(to_native(f))``
    keeps the location, the arg-max of ``f``'s scores and the sign of its stop entry.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        _, self.n_classes, _, self.stop = _native_spaces(env)
        self.action_space = flat_action_space(self.n_classes, self.stop)

    def to_native(self, action: Any) -> dict[str, np.ndarray]:
        """Flat action(s) -> ``dict(location=(..., 2) float32, label=(...,) int64[, stop=(...,) int64])``."""
        return to_native_action(action, self.action_space, self.stop)

    def from_native(self, action: dict) -> np.ndarray:
        """``dict(location, label[, stop])`` (optionally batched) -> the flat action whose arg-max is ``label``."""
        return from_native_action(action, self.action_space, self.stop)

    def action(self, action: Any) -> dict[str, Any]:
        return _single_action(self, action)


class DiscreteActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """A ``MultiDiscrete`` action for learners with categorical policies (PPO, A2C, DQN-style, ...).

    ## Action Space

    ``MultiDiscrete([grid, grid, n_classes])``; with ``answer="any_step"``,
    ``MultiDiscrete([grid, grid, n_classes, 2])``

    | Index | Meaning                                                                       |
    |-------|-------------------------------------------------------------------------------|
    | `0`   | column ``i`` of a ``grid x grid`` lattice: ``x = -1 + 2 i / (grid - 1)``       |
    | `1`   | row ``j`` of the lattice: ``y = -1 + 2 j / (grid - 1)``                          |
    | `2`   | the label, as the native ``label``                                              |
    | `3`   | only with ``answer="any_step"``: the native ``stop`` (1 answers now)            |

    With ``grid=7`` the lattice is ``{-1, -2/3, -1/3, 0, 1/3, 2/3, 1}`` on each axis; ``(-1, -1)`` is
    the top-left corner as everywhere in ``ram_env``.

    Reversible: ``from_native(to_native(d)) == d`` for every discrete action ``d``;
    ``from_native`` snaps a native location to the nearest lattice point, so ``to_native(from_native(a))``
    equals ``a`` exactly when its location lies on the lattice.

    :param grid: lattice points per axis (at least 2)
    """

    def __init__(self, env: gym.Env, grid: int = 7):
        gym.utils.RecordConstructorArgs.__init__(self, grid=grid)
        gym.ActionWrapper.__init__(self, env)
        _, self.n_classes, _, self.stop = _native_spaces(env)
        self.action_space = discrete_action_space(grid, self.n_classes, self.stop)
        self.grid = int(grid)
        self.lattice = np.linspace(-1.0, 1.0, self.grid, dtype=np.float32)

    def to_native(self, action: Any) -> dict[str, np.ndarray]:
        """``(..., 3[+1])`` integer action(s) -> ``dict(location=(..., 2) float32, label=(...,) int64[, stop])``."""
        return to_native_action(action, self.action_space, self.stop)

    def from_native(self, action: dict) -> np.ndarray:
        """``dict(location, label[, stop])`` (optionally batched) -> the discrete action, nearest lattice point."""
        return from_native_action(action, self.action_space, self.stop)

    def action(self, action: Any) -> dict[str, Any]:
        return _single_action(self, action)


def flatten_native_obs(obs: dict[str, np.ndarray], batched: bool = True) -> np.ndarray:
    """The native observation(s) as one float32 vector each, as ``gymnasium.wrappers.FlattenObservation``
    lays them out (``glimpse`` then ``location``): ``(N, D)`` if ``batched`` else ``(D,)``."""
    lead = (len(obs["location"]),) if batched else ()
    return np.concatenate(
        [np.asarray(obs[k], np.float32).reshape(lead + (-1,)) for k in ("glimpse", "location")], axis=-1
    )


class GlimpseHistory:
    """Every glimpse and location of ``num_envs`` running episodes, in fixed-size zero-filled arrays.

    The batched bookkeeping behind :class:`GlimpseHistoryWrapper`; a policy that drives a
    :class:`~ram_env.vector.GlimpseVectorEnv` uses it directly (``start`` on an episode's first
    observation, ``add`` on each later one), so both lay observations out identically.
    """

    def __init__(self, n_glimpses: int, glimpse_shape: tuple[int, ...], num_envs: int = 1):
        self.n_glimpses = int(n_glimpses)
        self.glimpse_shape = tuple(glimpse_shape)
        self.glimpses = np.zeros((num_envs, self.n_glimpses, *self.glimpse_shape), dtype=np.float32)
        self.locations = np.zeros((num_envs, self.n_glimpses, 2), dtype=np.float32)
        self.count = np.zeros(num_envs, dtype=np.int64)  # glimpses stored per episode

    @property
    def size(self) -> int:
        """Length of the flat observation."""
        return self.n_glimpses * (int(np.prod(self.glimpse_shape)) + 3)

    def start(self, obs: dict[str, np.ndarray], rows=slice(None)) -> None:
        """Begin new episodes in ``rows`` from their first (batched) native observation."""
        self.glimpses[rows] = 0.0
        self.locations[rows] = 0.0
        self.count[rows] = 0
        self.add(obs, rows)

    def add(self, obs: dict[str, np.ndarray], rows=slice(None)) -> None:
        """Store the next (batched) native observation of the episodes in ``rows``."""
        rows = np.arange(len(self.count))[rows]
        if (self.count[rows] >= self.n_glimpses).any():
            raise RuntimeError(f"more than n_glimpses={self.n_glimpses} glimpses in one episode")
        t = self.count[rows]
        self.glimpses[rows, t] = np.asarray(obs["glimpse"], np.float32).reshape((len(rows),) + self.glimpse_shape)
        self.locations[rows, t] = np.asarray(obs["location"], np.float32).reshape(len(rows), 2)
        self.count[rows] += 1

    def step_one_hot(self) -> np.ndarray:
        """``(num_envs, n_glimpses)``: a 1 at the index of the latest glimpse (the step counter)."""
        out = np.zeros((len(self.count), self.n_glimpses), dtype=np.float32)
        out[np.arange(len(self.count)), np.maximum(self.count - 1, 0)] = 1.0
        return out

    def flat(self) -> np.ndarray:
        """``(num_envs, size)``: all glimpses, then all locations, then the step one-hot."""
        n = len(self.count)
        return np.concatenate(
            [self.glimpses.reshape(n, -1), self.locations.reshape(n, -1), self.step_one_hot()], axis=1
        )

    def dict(self) -> dict[str, np.ndarray]:
        return {"glimpses": self.glimpses.copy(), "locations": self.locations.copy(), "step": self.step_one_hot()}


def history_space(glimpse_shape: tuple[int, ...], n_glimpses: int, flatten: bool = True) -> spaces.Space:
    """The observation space of :class:`GlimpseHistoryWrapper` for glimpses of ``glimpse_shape``."""
    n = int(n_glimpses)
    g = spaces.Box(0.0, 1.0, (n, *glimpse_shape), np.float32)
    loc = spaces.Box(-1.0, 1.0, (n, 2), np.float32)
    step = spaces.Box(0.0, 1.0, (n,), np.float32)
    if not flatten:
        return spaces.Dict(glimpses=g, locations=loc, step=step)
    low = np.concatenate([np.zeros(g.shape).ravel(), -np.ones(loc.shape).ravel(), np.zeros(n)]).astype(np.float32)
    return spaces.Box(low, np.ones_like(low), dtype=np.float32)


class GlimpseHistoryWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Show a feed-forward policy the whole episode so far, so it needs no recurrence.

    ## Observation Space

    ``flatten=True`` (default): ``Box(low, high, (n_glimpses * (n_patches * p * p + 3),), float32)``,
    the three parts of the table below concatenated in that order (``low`` is -1 on the locations and
    0 elsewhere, ``high`` is 1). ``flatten=False``: a ``Dict`` with the same three keys, which SB3's
    ``MultiInputPolicy`` accepts.

    | Key         | Shape                                      | Meaning                                    |
    |-------------|--------------------------------------------|--------------------------------------------|
    | `glimpses`  | ``(n_glimpses, n_patches, 1, p, p)`` in [0, 1] | glimpse ``k`` in slot ``k``; later slots 0 |
    | `locations` | ``(n_glimpses, 2)`` in [-1, 1]             | where glimpse ``k`` was taken; later slots 0 |
    | `step`      | ``(n_glimpses,)`` one-hot                  | 1 at the slot of the latest glimpse        |

    So on step ``t`` (``t`` glimpses taken) slots ``0 .. t-1`` are filled and ``step[t-1] = 1``; with the
    default ``answer="last_step"`` the last action of the episode (the one whose label counts) is chosen when
    ``step[n_glimpses-1] = 1``. With ``answer="any_step"`` an episode that stops after ``k < n_glimpses``
    glimpses leaves slots ``k ..`` empty (zero) to its end. The terminal observation repeats the last one
    (the env takes no glimpse on the answering step). Actions, rewards (negative ones included, where a
    ``glimpse_cost`` exceeds what a right answer pays), ``info`` and episode ends are the wrapped env's, untouched.

    :param flatten: a flat ``Box`` (for ``MlpPolicy``) rather than a ``Dict``
    """

    def __init__(self, env: gym.Env, flatten: bool = True):
        gym.utils.RecordConstructorArgs.__init__(self, flatten=flatten)
        gym.Wrapper.__init__(self, env)
        obs_space = env.observation_space
        if not (isinstance(obs_space, spaces.Dict) and set(obs_space.spaces) == {"glimpse", "location"}):
            raise ValueError(
                f"expected a glimpse env with a Dict(glimpse, location) observation space, got {obs_space}"
            )
        _, _, n, _ = _native_spaces(env)
        self.flatten = bool(flatten)
        self.history = GlimpseHistory(n, obs_space["glimpse"].shape, num_envs=1)
        self.observation_space = history_space(obs_space["glimpse"].shape, n, self.flatten)

    def _observation(self):
        if self.flatten:
            return self.history.flat()[0]
        return {k: v[0] for k, v in self.history.dict().items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history.start({k: v[None] for k, v in obs.items()})
        return self._observation(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            self.history.add({k: v[None] for k, v in obs.items()})
        return self._observation(), reward, terminated, truncated, info


def class_log_probs(scores: np.ndarray, scale: float) -> np.ndarray:
    """``log_softmax(scale * scores)`` over the last axis: the log-probability of each class."""
    logits = scale * np.asarray(scores, dtype=np.float64)
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def check_graded_answer(answer: str) -> None:
    """Refuse the graded reward on a task with early answers, in one line (see :class:`GradedRewardWrapper`)."""
    if answer != "last_step":
        raise ValueError(
            f"the graded reward needs answer='last_step', got answer={answer!r}: its log score would change "
            "when the best policy stops (glimpse_cost is priced in right answers); use reward='binary'"
        )


def task_labels(config) -> np.ndarray:
    """The labels of a task's split, by image index: public data, read as the env reads it."""
    return datasets.load(config.dataset, config.split, config.data_dir)[1]


class GradedReward:
    """The graded reward of ``num_envs`` running episodes: the batched bookkeeping behind
    :class:`GradedRewardWrapper`, which an SB3 ``VecEnv`` over the native vector env uses directly.

    :param labels: the split's labels, indexed by image (:func:`task_labels`)
    :param num_envs: episodes
    :param scale: the class scores (in ``[-1, 1]``) times ``scale`` are the logits
    :param shaping: pay each step's prediction as potential-based shaping; else only the final answer
    :param gamma: the learner's discount (the shaping term is ``gamma * Phi(s') - Phi(s)``)
    """

    def __init__(self, labels: np.ndarray, num_envs: int = 1, scale: float = 3.0, shaping: bool = True, gamma=1.0):
        if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        if not (isinstance(gamma, (int, float)) and 0.0 < gamma <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.scale, self.shaping, self.gamma = float(scale), bool(shaping), float(gamma)
        self.label = np.zeros(num_envs, dtype=np.int64)
        self.potential = np.zeros(num_envs, dtype=np.float64)  # Phi(s): log-prob of the last prediction

    def start(self, indices: np.ndarray, rows=slice(None)) -> None:
        """Begin new episodes in ``rows`` on the images ``indices`` (the reset ``info["index"]``)."""
        self.label[rows] = self.labels[np.asarray(indices, dtype=np.int64)]
        self.potential[rows] = 0.0  # no prediction yet

    def pay(self, scores: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        """The rewards ``(num_envs,)`` of a step whose actions held ``scores`` ``(num_envs, n_classes)``."""
        logp = class_log_probs(scores, self.scale)[np.arange(len(self.label)), self.label]
        terminated = np.asarray(terminated, dtype=bool)
        if not self.shaping:
            return np.where(terminated, logp, 0.0)
        # Phi(terminal) = 0, so the final step pays logp_T + (0 - Phi(s_T)); the others gamma*Phi(s') - Phi(s).
        reward = np.where(terminated, logp, self.gamma * logp) - self.potential
        self.potential = np.where(terminated, 0.0, logp)
        return reward


class GradedRewardWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Pay a learner that gives a score per class by how likely it makes the true class (opt-in).

    The native reward is 1 for the right label on the last step, 0 otherwise: one bit per episode for a
    10-way choice. This wrapper sits on :class:`FlatActionWrapper`, whose action ends with one score per
    class, and reads those scores as logits: ``p = softmax(scale * scores)``. Actions, observations,
    ``info`` (``correct`` included) and episode ends are the wrapped env's; only the reward changes.

    ## Rewards

    Let ``logp_t = log p_t(y)``, the log-probability of the true class ``y`` under the scores of step
    ``t``, and ``Phi`` the potential of a state: ``logp`` of the last prediction made, 0 before the first
    one and at the end of the episode.

    | `shaping`          | step ``t < T``                  | step ``T`` (the answer)  | return (``gamma = 1``) |
    |--------------------|---------------------------------|--------------------------|------------------------|
    | ``True`` (default) | ``gamma * logp_t - logp_{t-1}`` | ``logp_T - logp_{T-1}``  | ``logp_T``             |
    | ``False``          | 0                               | ``logp_T``               | ``logp_T``             |

    (``T = n_glimpses``, ``logp_0 = 0``.) Since the scores lie in ``[-1, 1]``, ``logp`` lies in
    ``[-2 scale - log(1 + (K-1) e^(-2 scale)), -log(1 + (K-1) e^(-2 scale))]`` for ``K`` classes
    (``[-6.02, -0.022]`` with the default ``scale=3``): it is bounded below without clipping.

    ## Why the task stays the same

    - The final reward is the log score, a strictly proper scoring rule, and its best scores rank the
      classes as the learner's belief does (swapping two scores that are out of order raises the
      expected reward), so the arg-max of the best scores, the label the env is given, is the most
      probable class: the answer that maximises the 0/1 reward. What is learnt is graded, not changed.
    - The per-step terms are potential-based shaping (Ng, Harada & Russell 1999):
      ``F = gamma * Phi(s') - Phi(s)``, with the last prediction part of the state. Every episode's
      shaping telescopes to ``gamma^T Phi(end) - Phi(start) = 0``, so with ``gamma = 1`` every policy's
      return is unchanged, and so is the best policy; what shaping adds is a signal at every step,
      which reaches a learner that bootstraps from a value function (GAE ``lambda < 1``); with
      Monte-Carlo returns (``lambda = 1``) it telescopes out of every advantage too.
    - The true label comes from the reset ``info["index"]`` and the split's labels
      (:func:`task_labels`, the public data the env reads), never from the env's private state; the
      learner's observation never holds it.

    ## Early answers are refused

    With ``answer="any_step"`` the shaping would still telescope (``Phi`` is 0 at every episode's end,
    whatever its length), but the final log score would not keep the task: the best moment to stop trades
    the gain of one more glimpse against ``glimpse_cost``, and a gain in log score is not a gain in
    accuracy (nor is ``glimpse_cost`` priced in it). So the wrapper raises ``ValueError`` on such a task.

    :param scale: the logits are ``scale * scores`` (larger: the reward nears log 1 = 0 for a confident
        right answer, and punishes a confident wrong one harder)
    :param shaping: pay each step's prediction as shaping (above); ``False`` pays the answer only
    :param gamma: the learner's discount, for the shaping term
    """

    def __init__(self, env: gym.Env, scale: float = 3.0, shaping: bool = True, gamma: float = 1.0):
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale, shaping=shaping, gamma=gamma)
        gym.Wrapper.__init__(self, env)
        _, n_classes, _, _ = _native_spaces(env.unwrapped)
        check_graded_answer(env.unwrapped.config.answer)
        if env.action_space != flat_action_space(n_classes):
            raise ValueError(
                f"GradedRewardWrapper reads class scores from a FlatActionWrapper's action space "
                f"{flat_action_space(n_classes)}; got {env.action_space} (wrap the env in FlatActionWrapper first)"
            )
        self.graded = GradedReward(task_labels(env.unwrapped.config), 1, scale, shaping, gamma)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if "index" not in info:
            raise ValueError("GradedRewardWrapper needs the env's reset info['index']; wrap a ram_env glimpse env")
        self.graded.start(np.array([info["index"]]))
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        scores = np.asarray(action, dtype=np.float32)[None, 2:]
        reward = float(self.graded.pay(scores, np.array([terminated or truncated]))[0])
        return obs, reward, terminated, truncated, info


class LastScores:
    """The class scores that each of ``num_envs`` running episodes gave on its previous step (0 before the
    first): the batched bookkeeping behind :class:`LastScoresWrapper`, which an SB3 ``VecEnv`` over the native
    vector env and a batch policy use directly."""

    def __init__(self, n_classes: int, num_envs: int = 1):
        self.scores = np.zeros((num_envs, int(n_classes)), dtype=np.float32)

    def start(self, rows=slice(None)) -> None:
        """New episodes in ``rows``: no scores given yet."""
        self.scores[rows] = 0.0

    def record(self, actions: np.ndarray, rows=slice(None)) -> None:
        """Keep the class scores of the flat actions ``(N, 2 + n_classes [+ 1])`` just taken by ``rows``."""
        self.scores[rows] = np.asarray(actions, dtype=np.float32)[:, 2 : 2 + self.scores.shape[1]]

    def observe(self, obs):
        """A batch of observations with the scores added: a ``scores`` key to a dict of arrays, or appended to
        the rows of a flat array."""
        if isinstance(obs, dict):
            return {**obs, "scores": self.scores.copy()}
        return np.concatenate([np.asarray(obs, np.float32), self.scores], axis=1)


def last_scores_space(space: spaces.Space, n_classes: int) -> spaces.Space:
    """The observation space of :class:`LastScoresWrapper` over an env whose observation space is ``space``."""
    box = spaces.Box(-1.0, 1.0, (int(n_classes),), np.float32)
    if isinstance(space, spaces.Dict):
        return spaces.Dict({**space.spaces, "scores": box})
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        low, high = np.concatenate([space.low, box.low]), np.concatenate([space.high, box.high])
        return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
    raise ValueError(f"LastScoresWrapper adds to a Dict or a flat Box observation space, got {space}")


class LastScoresWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Show the learner the class scores it gave on the previous step (opt-in; made for the graded reward).

    :class:`GradedRewardWrapper` pays each step ``logp_t - logp_{t-1}``: the second term is set by the scores
    of the step before, which the observation does not hold. A critic that cannot see them cannot predict
    that term, so the advantage of each step's scores carries the noise of the previous step's sampled ones.
    With the scores observed, the state the shaping is defined on is observed too. They are the learner's
    own last action, nothing the env knows beyond it: the task is unchanged.

    ## Observation Space

    The wrapped env's, with the scores added: a ``scores`` key, ``Box(-1, 1, (n_classes,), float32)``, in a
    ``Dict``; or ``n_classes`` more entries at the end of a flat ``Box``. They are 0 on an episode's first
    observation, then the class scores of the latest action (the terminal observation holds the answer's).
    Actions, rewards, ``info`` and episode ends are the wrapped env's.

    It sits on :class:`FlatActionWrapper` (whose action holds the scores) over a
    :class:`GlimpseHistoryWrapper` or a flat observation.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        _, n_classes, _, stop = _native_spaces(env.unwrapped)
        if env.action_space != flat_action_space(n_classes, stop):
            raise ValueError(
                f"LastScoresWrapper reads class scores from a FlatActionWrapper's action space "
                f"{flat_action_space(n_classes, stop)}; got {env.action_space} (wrap the env in FlatActionWrapper "
                "first)"
            )
        self.observation_space = last_scores_space(env.observation_space, n_classes)
        self.last = LastScores(n_classes)

    def _observation(self, obs):
        if isinstance(obs, dict):
            return {k: v[0] for k, v in self.last.observe({k: np.asarray(v)[None] for k, v in obs.items()}).items()}
        return self.last.observe(np.asarray(obs)[None])[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.last.start()
        return self._observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last.record(np.asarray(action)[None])
        return self._observation(obs), reward, terminated, truncated, info
