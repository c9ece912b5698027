"""Tianshou collects episodes of the tasks as its users write it: a ``Collector`` over its own vector env of our
envs. Tianshou's policies take ``Box`` or ``Discrete`` actions, so the envs wear :class:`FlatActionWrapper`.
Skipped where the extra is not installed (``pip install -e '.[tianshou]'``; ``make test`` does)."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("tianshou", reason="the Tianshou extra is not installed: pip install -e '.[tianshou]'")

from tianshou.algorithm.algorithm_base import RandomActionPolicy  # noqa: E402
from tianshou.data import Collector, VectorReplayBuffer  # noqa: E402
from tianshou.env import DummyVectorEnv  # noqa: E402

import ram_env  # noqa: E402,F401  (registers the ids)
from ram_env.wrappers import FlatActionWrapper  # noqa: E402


def test_collector_gathers_whole_episodes_from_a_vector_env_of_the_task(data_dir):
    def make():
        return FlatActionWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir))

    envs = DummyVectorEnv([make] * 4)
    envs.seed(0)
    # the space from an env, not from envs.action_space: Tianshou's workers read that one off the unwrapped env
    policy = RandomActionPolicy(make().action_space)
    buffer = VectorReplayBuffer(64, buffer_num=4)
    stats = Collector(policy, envs, buffer).collect(n_episode=8, reset_before_collect=True)
    assert stats.n_collected_episodes == 8 and stats.lens.tolist() == [6] * 8
    assert set(stats.returns.tolist()) <= {0.0, 1.0}
    batch, _ = buffer.sample(0)
    assert len(batch) == 48 and batch.obs.glimpse.shape == (48, 1, 1, 8, 8)
    assert np.all(np.abs(batch.obs.location) <= 1)
    assert batch.terminated.sum() == 8 and not batch.truncated.any()
    envs.close()
