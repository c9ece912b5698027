"""The SB3 adapters: spaces SB3 accepts, reversible actions, the glimpse history."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env

import ram_env  # noqa: F401  (registers the ids)
from ram_env.vector import GlimpseVectorEnv
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistory,
    GlimpseHistoryWrapper,
    discrete_action_space,
    flat_action_space,
    flatten_native_obs,
    from_native_action,
    history_space,
    to_native_action,
)

# Every stack agents/ trains on (the first is the README's), built as a user builds it: gym.make, then wrappers.
STACKS = {
    "history+flat (README)": lambda env: FlatActionWrapper(GlimpseHistoryWrapper(env)),
    "history+discrete": lambda env: DiscreteActionWrapper(GlimpseHistoryWrapper(env), grid=5),
    "dict-history+flat": lambda env: FlatActionWrapper(GlimpseHistoryWrapper(env, flatten=False)),
    "dict-history+discrete": lambda env: DiscreteActionWrapper(GlimpseHistoryWrapper(env, flatten=False)),
    "flatten+flat (LSTM)": lambda env: FlatActionWrapper(gym.wrappers.FlattenObservation(env)),
    "flatten+discrete (LSTM)": lambda env: DiscreteActionWrapper(gym.wrappers.FlattenObservation(env), grid=7),
}


@pytest.fixture
def base(data_dir):
    env = gym.make("RAM/MNIST-v0", data_dir=data_dir)
    yield env
    env.close()


@pytest.mark.parametrize("stack", STACKS)
def test_gymnasium_check_env_passes_with_default_arguments(data_dir, stack):
    env = STACKS[stack](gym.make("RAM/MNIST-v0", data_dir=data_dir))
    gym_check_env(env)


@pytest.mark.parametrize("stack", STACKS)
def test_sb3_check_env_passes(data_dir, stack):
    env = STACKS[stack](gym.make("RAM/MNIST-v0", data_dir=data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns about spaces it cannot use; none here
        if stack.startswith("dict"):  # 5-D glimpses and 2-D locations: MultiInputPolicy flattens them
            warnings.filterwarnings(
                "ignore", message="Your observation (glimpses|locations) has an unconventional shape"
            )
        check_env(env)


@pytest.mark.parametrize("stack", STACKS)
def test_spec_records_the_wrappers_and_rebuilds_the_stack(data_dir, stack):
    env = STACKS[stack](gym.make("RAM/MNIST-v0", data_dir=data_dir))
    again = gym.make(env.spec)
    assert again.spec == env.spec and str(again) == str(env)
    assert again.observation_space == env.observation_space and again.action_space == env.action_space
    names = [w.name for w in env.spec.additional_wrappers]
    assert names[-1] in ("FlatActionWrapper", "DiscreteActionWrapper") and len(names) == 2
    kwargs = {w.name: w.kwargs for w in env.spec.additional_wrappers}
    if "DiscreteActionWrapper" in kwargs:
        assert kwargs["DiscreteActionWrapper"] == {"grid": env.grid}
    if "GlimpseHistoryWrapper" in kwargs:
        assert kwargs["GlimpseHistoryWrapper"] == {"flatten": env.env.flatten}


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


@pytest.mark.parametrize("wrapper", [FlatActionWrapper, DiscreteActionWrapper])
def test_single_env_wrappers_reject_a_batch_naming_both_shapes(base, wrapper):
    env = wrapper(base)
    env.reset(seed=0)
    shape = env.action_space.shape
    batch = np.stack([env.action_space.sample()] * 4)
    with pytest.raises(
        ValueError, match=rf"takes one \w+ action of shape \({shape[0]},\), got shape \(4, {shape[0]}\)"
    ):
        env.step(batch)
    with pytest.raises(ValueError, match=rf"of shape \({shape[0]},\), got shape \({shape[0] - 1},\)"):
        env.step(list(batch[0][:-1]))


def test_space_conversions_are_the_wrappers(base):
    """to_native_action / from_native_action need only the space, and convert as the wrappers do."""
    rng = np.random.default_rng(2)
    flat, disc = FlatActionWrapper(base), DiscreteActionWrapper(base, grid=5)
    assert flat_action_space(10) == flat.action_space and discrete_action_space(5, 10) == disc.action_space
    for env in (flat, disc):
        env.action_space.seed(0)
        batch = np.stack([env.action_space.sample() for _ in range(8)])
        native = to_native_action(batch, env.action_space)
        for i in range(8):
            one = env.to_native(batch[i])
            np.testing.assert_array_equal(native["location"][i], one["location"])
            assert native["label"][i] == one["label"]
        np.testing.assert_array_equal(from_native_action(native, env.action_space), env.from_native(native))
    native = {"location": rng.uniform(-1, 1, (3, 2)).astype(np.float32), "label": np.array([0, 9, 4])}
    back = to_native_action(from_native_action(native, flat.action_space), flat.action_space)
    np.testing.assert_array_equal(back["location"], native["location"])
    np.testing.assert_array_equal(back["label"], native["label"])
    with pytest.raises(ValueError, match="MultiDiscrete"):
        to_native_action(np.zeros(2), gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="grid"):
        discrete_action_space(1, 10)


def test_history_space_is_the_wrappers(base):
    for flatten in (True, False):
        assert history_space((1, 1, 8, 8), 6, flatten) == GlimpseHistoryWrapper(base, flatten).observation_space


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
    label = base.unwrapped.task.label[0]
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
    natives = [dict(glimpse=base.unwrapped.task.glimpse[0].copy(), location=base.unwrapped.task.location[0].copy())]
    locations = [
        np.array([0.5, 0.5], np.float32),
        np.array([-0.5, 0.25], np.float32),
        np.array([0.0, -1.0], np.float32),
    ]
    for loc in locations:
        obs, *_ = env.step({"location": loc, "label": 0})
        natives.append(dict(glimpse=base.unwrapped.task.glimpse[0].copy(), location=loc))
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
