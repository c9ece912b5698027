"""LastScoresWrapper: the class scores of the previous step in the observation, the same in every adapter."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env

import ram_env  # noqa: F401  (registers the ids)
from agents import sb3
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistoryWrapper,
    GradedRewardWrapper,
    LastScoresWrapper,
)

TASK = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)


def _wrapped(data_dir, flatten=False):
    return LastScoresWrapper(
        FlatActionWrapper(GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir), flatten))
    )


def test_scores_are_zero_at_the_start_then_the_previous_actions_scores(data_dir):
    env = _wrapped(data_dir)
    obs, _ = env.reset(seed=0)
    assert env.observation_space["scores"] == gym.spaces.Box(-1.0, 1.0, (10,), np.float32)
    np.testing.assert_array_equal(obs["scores"], np.zeros(10, np.float32))
    action = np.concatenate([[0.2, -0.1], np.linspace(-1, 1, 10)]).astype(np.float32)
    obs, *_ = env.step(action)
    np.testing.assert_array_equal(obs["scores"], action[2:])
    assert obs["glimpses"].shape == (6, 1, 1, 8, 8) and obs["step"][1] == 1.0  # the history is untouched
    for _ in range(5):
        obs, _, terminated, _, _ = env.step(-action)
    assert terminated  # the terminal observation holds the answer's scores; a new episode starts from zeros
    np.testing.assert_array_equal(obs["scores"], -action[2:])
    np.testing.assert_array_equal(env.reset()[0]["scores"], np.zeros(10, np.float32))


def test_a_flat_observation_gets_the_scores_at_its_end(data_dir):
    env = _wrapped(data_dir, flatten=True)
    history = GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir), flatten=True)
    assert env.observation_space.shape == (history.observation_space.shape[0] + 10,)
    obs, _ = env.reset(seed=0)
    action = np.concatenate([[0.0, 0.0], np.full(10, 0.5)]).astype(np.float32)
    obs, *_ = env.step(action)
    np.testing.assert_array_equal(obs[-10:], np.full(10, 0.5, np.float32))
    assert env.observation_space.contains(obs)


def test_wrapper_needs_the_flat_action(data_dir):
    base = GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir))
    with pytest.raises(ValueError, match="wrap the env in FlatActionWrapper first"):
        LastScoresWrapper(DiscreteActionWrapper(base))


@pytest.mark.parametrize("flatten", [True, False])
def test_check_env_passes_under_the_graded_reward(data_dir, flatten):
    env = GradedRewardWrapper(_wrapped(data_dir, flatten))
    gym_check_env(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Your observation (glimpses|locations) has an unconventional shape")
        check_env(env)
    assert [w.name for w in env.spec.additional_wrappers][-2:] == ["LastScoresWrapper", "GradedRewardWrapper"]


def _assert_same(batched, i, single, what):
    """Row ``i`` of a batched observation (dict or array) equals a single env's observation."""
    row = {k: v[i] for k, v in batched.items()} if isinstance(batched, dict) else {"obs": batched[i]}
    for k, v in (single if isinstance(single, dict) else {"obs": single}).items():
        np.testing.assert_array_equal(row[k], v, err_msg=f"{k} {what}")


@pytest.mark.parametrize("algo", ["ppo", "ppo_glimpse"])
def test_vec_env_shows_what_the_wrapper_shows(algo, data_dir):
    kw = dict(TASK, data_dir=data_dir, start="center")
    venv = sb3.make_vec_env(algo, kw, 3, seed=5, reward="graded", observe_scores=True)
    single = sb3.make_env(algo, kw, reward="graded", observe_scores=True)
    assert venv.observation_space == single.observation_space
    batched = venv.reset()
    obs, _ = single.reset(options={"index": venv.reset_infos[1]["index"]})
    rng = np.random.default_rng(0)
    for t in range(7):  # one episode of 6 steps, then the first step of the next
        _assert_same(batched, 1, obs, f"at step {t}")
        actions = rng.uniform(-1, 1, (3, 12)).astype(np.float32)
        batched, _, dones, infos = venv.step(actions)
        obs, _, terminated, _, _ = single.step(actions[1])
        if terminated:
            assert dones.all()
            terminal = infos[1]["terminal_observation"]
            _assert_same(
                {k: v[None] for k, v in terminal.items()} if isinstance(terminal, dict) else terminal[None],
                0,
                obs,
                "at the end",
            )
            obs, _ = single.reset(options={"index": venv.reset_infos[1]["index"]})
    venv.close()
