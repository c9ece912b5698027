"""The SB3 adapters: spaces SB3 accepts, reversible actions, the glimpse history."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

import ram_env  # noqa: F401  (registers the ids)
from ram_env.vector import GlimpseVectorEnv
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistory,
    GlimpseHistoryWrapper,
    flatten_native_obs,
)


@pytest.fixture
def base(data_dir):
    env = gym.make("RAM/MNIST-v0", data_dir=data_dir)
    yield env
    env.close()


@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("action", ["flat", "discrete"])
def test_check_env_passes_on_wrapped_envs(data_dir, flatten, action):
    env = GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir).unwrapped, flatten=flatten)
    env = FlatActionWrapper(env) if action == "flat" else DiscreteActionWrapper(env, grid=5)
    check_env(env, warn=True, skip_render_check=True)


def test_check_env_passes_on_translated_task(data_dir):
    env = FlatActionWrapper(
        gym.wrappers.FlattenObservation(gym.make("RAM/TranslatedMNIST60-v0", data_dir=data_dir).unwrapped)
    )
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (3 * 12 * 12 + 2,)


def test_native_env_is_not_sb3_compatible(data_dir):
    from stable_baselines3 import PPO

    env = gym.make("RAM/MNIST-v0", data_dir=data_dir).unwrapped
    with pytest.warns(UserWarning, match="not supported by Stable Baselines 3"):
        check_env(env, skip_render_check=True)
    with pytest.raises(AssertionError, match="action spaces"):
        PPO("MultiInputPolicy", env)


def test_flat_action_round_trips(base):
    env = FlatActionWrapper(base)
    assert env.action_space == gym.spaces.Box(-1, 1, (12,), np.float32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        native = {"location": rng.uniform(-1, 1, 2).astype(np.float32), "label": int(rng.integers(10))}
        flat = env.from_native(native)
        assert env.action_space.contains(flat)
        back = env.to_native(flat)
        np.testing.assert_array_equal(back["location"], native["location"])
        assert back["label"] == native["label"]
    # batched, and flat -> native -> flat keeps the location and the arg-max
    flat = rng.uniform(-1, 1, (7, 12)).astype(np.float32)
    native = env.to_native(flat)
    assert native["location"].shape == (7, 2) and native["label"].shape == (7,)
    again = env.from_native(native)
    np.testing.assert_array_equal(again[:, :2], flat[:, :2])
    np.testing.assert_array_equal(again[:, 2:].argmax(1), flat[:, 2:].argmax(1))


def test_discrete_action_round_trips(base):
    env = DiscreteActionWrapper(base, grid=7)
    assert env.action_space == gym.spaces.MultiDiscrete([7, 7, 10])
    every = np.array([[i, j, k] for i in range(7) for j in range(7) for k in range(10)])
    np.testing.assert_array_equal(env.from_native(env.to_native(every)), every)
    native = env.to_native(np.array([0, 6, 3]))
    np.testing.assert_allclose(native["location"], [-1.0, 1.0])
    assert native["label"] == 3
    # native -> discrete -> native is exact on the lattice, nearest point elsewhere
    on = {"location": np.array([-1 / 3, 2 / 3], np.float32), "label": 4}
    np.testing.assert_allclose(env.to_native(env.from_native(on))["location"], on["location"], atol=1e-6)
    off = {"location": np.array([0.1, -0.9], np.float32), "label": 4}
    np.testing.assert_allclose(env.to_native(env.from_native(off))["location"], [0.0, -1.0])


def test_action_wrappers_reject_bad_actions(base):
    flat = FlatActionWrapper(base)
    flat.reset(seed=0)
    for bad in (np.zeros(11), np.full(12, np.nan), np.full(12, 1.5), "x"):
        with pytest.raises(ValueError, match="flat action"):
            flat.step(bad)
    disc = DiscreteActionWrapper(base, grid=5)
    for bad in (np.array([5, 0, 0]), np.array([0, 0, 10]), np.array([0.5, 0, 0]), np.array([0, 0])):
        with pytest.raises(ValueError, match="discrete action"):
            disc.step(bad)
    with pytest.raises(ValueError, match="grid"):
        DiscreteActionWrapper(base, grid=1)
    with pytest.raises(ValueError, match="Dict"):
        FlatActionWrapper(gym.make("CartPole-v1"))


def test_wrapped_episode_steps_the_native_env(base):
    env = FlatActionWrapper(base)
    obs, _ = env.reset(seed=3, options={"index": 5})
    label = base.unwrapped.core.label[0]
    target = env.from_native({"location": np.array([0.25, -0.5], np.float32), "label": label})
    for t in range(6):
        obs, reward, terminated, truncated, info = env.step(target)
        if t < 5:
            np.testing.assert_allclose(obs["location"], [0.25, -0.5])
    assert terminated and reward == 1.0 and info["correct"]


def test_history_wrapper_holds_the_episode_so_far(base):
    env = GlimpseHistoryWrapper(base, flatten=False)
    space = env.observation_space
    assert (
        space["glimpses"].shape == (6, 1, 1, 8, 8)
        and space["locations"].shape == (6, 2)
        and space["step"].shape == (6,)
    )
    obs, _ = env.reset(seed=0)
    natives = [dict(glimpse=base.unwrapped.core.glimpse[0].copy(), location=base.unwrapped.core.location[0].copy())]
    locations = [
        np.array([0.5, 0.5], np.float32),
        np.array([-0.5, 0.25], np.float32),
        np.array([0.0, -1.0], np.float32),
    ]
    for loc in locations:
        obs, *_ = env.step({"location": loc, "label": 0})
        natives.append(dict(glimpse=base.unwrapped.core.glimpse[0].copy(), location=loc))
        assert space.contains(obs)
    for k, nat in enumerate(natives):
        np.testing.assert_array_equal(obs["glimpses"][k], nat["glimpse"])
        np.testing.assert_array_equal(obs["locations"][k], nat["location"])
    assert not obs["glimpses"][4:].any() and not obs["locations"][4:].any()
    np.testing.assert_array_equal(obs["step"], [0, 0, 0, 1, 0, 0])
    # the flat layout is the same content: glimpses, then locations, then the step one-hot
    flat = GlimpseHistoryWrapper(base)
    fobs, _ = flat.reset(seed=0)
    for loc in locations:
        fobs, *_ = flat.step({"location": loc, "label": 0})
    np.testing.assert_array_equal(
        fobs, np.concatenate([obs["glimpses"].ravel(), obs["locations"].ravel(), obs["step"]])
    )
    # finishing the episode: the terminal observation repeats the last one; reset clears it
    for _ in range(2):
        fobs, _, terminated, _, _ = flat.step({"location": np.zeros(2, np.float32), "label": 0})
    last, _, terminated, _, _ = flat.step({"location": np.zeros(2, np.float32), "label": 0})
    assert terminated and flat.observation_space.contains(last)
    np.testing.assert_array_equal(last, fobs)
    fresh, _ = flat.reset()
    assert fresh[64 : 6 * 64].sum() == 0 and fresh[-6:].tolist() == [1, 0, 0, 0, 0, 0]


def test_batched_history_matches_the_wrapper(data_dir):
    """A policy that drives the vector env with GlimpseHistory sees what the wrapper shows."""
    venv = GlimpseVectorEnv(num_envs=3, data_dir=data_dir, split="val", start="center")
    single = GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir, split="val", start="center").unwrapped)
    history = GlimpseHistory(6, (1, 1, 8, 8), num_envs=3)
    obs, _ = venv.reset(seed=0, options={"indices": np.array([4, 5, 6])})
    history.start(obs)
    sobs, _ = single.reset(options={"index": 5})
    rng = np.random.default_rng(1)
    for _ in range(3):
        loc = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        obs, *_ = venv.step({"location": loc, "label": np.zeros(3, np.int64)})
        history.add(obs)
        sobs, *_ = single.step({"location": loc[1], "label": 0})
    np.testing.assert_array_equal(history.flat()[1], sobs)
    assert flatten_native_obs(obs).shape == (3, 66)
