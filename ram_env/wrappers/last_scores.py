"""The opt-in observation of the previous step's class scores (what a graded-reward learner is paid on)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ram_env.wrappers.actions import flat_action_space, native_spaces, one_label


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
        one_label(env.unwrapped, "LastScoresWrapper")
        _, n_classes, _, stop = native_spaces(env.unwrapped)
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
