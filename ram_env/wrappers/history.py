"""The glimpse history: every glimpse of the episode so far in one observation, for feed-forward policies."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ram_env.wrappers.actions import native_spaces


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
        _, _, n, _ = native_spaces(env)
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
