"""The opt-in graded reward: the log-probability of the true class, per-step predictions as potential-based
shaping (the best policy is unchanged)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ram_env import datasets
from ram_env.wrappers.actions import flat_action_space, native_spaces, one_label

REWARDS = ("binary", "graded")  # the paper's 0/1 reward (default), the opt-in graded one


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
        one_label(env.unwrapped, "GradedRewardWrapper")
        _, n_classes, _, _ = native_spaces(env.unwrapped)
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
