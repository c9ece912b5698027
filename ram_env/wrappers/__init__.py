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

from ram_env.wrappers.actions import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    discrete_action_space,
    flat_action_space,
    from_native_action,
    native_answer,
    native_spaces,
    one_label,
    to_native_action,
)
from ram_env.wrappers.graded_reward import (
    REWARDS,
    GradedReward,
    GradedRewardWrapper,
    check_graded_answer,
    class_log_probs,
    task_labels,
)
from ram_env.wrappers.history import GlimpseHistory, GlimpseHistoryWrapper, flatten_native_obs, history_space
from ram_env.wrappers.last_scores import LastScores, LastScoresWrapper, last_scores_space

__all__ = [
    "FlatActionWrapper",
    "native_spaces",
    "native_answer",
    "one_label",
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
