"""The SB3 side of early answers (``answer="any_step"``): a stop entry in the wrapped actions, envs that end
apart and restart alone in the SB3 VecEnv, and evaluation that scores each image's first episode once."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env

import ram_env  # noqa: F401  (registers the ids)
from agents import sb3
from agents.sb3_policy import play_episodes
from ram_env.vector import GlimpseVectorEnv
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistoryWrapper,
    GradedRewardWrapper,
    discrete_action_space,
    flat_action_space,
    from_native_action,
    task_labels,
    to_native_action,
)

COST = 0.125  # a power of two: the rewards below are exact
TASK = dict(dataset="MNIST", n_glimpses=4, patch_size=8, n_patches=1, scale=2, start="center")
ANY = dict(TASK, answer="any_step", glimpse_cost=COST)


def _any_step_env(data_dir, **kw):
    return gym.make("RAM/MNIST-v0", data_dir=data_dir, answer="any_step", glimpse_cost=COST, **kw)


def test_action_spaces_gain_a_stop_entry_only_with_any_step(data_dir):
    default = gym.make("RAM/MNIST-v0", data_dir=data_dir)
    assert FlatActionWrapper(default).action_space == gym.spaces.Box(-1, 1, (12,), np.float32)
    assert DiscreteActionWrapper(default, grid=7).action_space == gym.spaces.MultiDiscrete([7, 7, 10])
    env = _any_step_env(data_dir)
    assert FlatActionWrapper(env).action_space == flat_action_space(10, stop=True)
    assert flat_action_space(10, stop=True) == gym.spaces.Box(-1, 1, (13,), np.float32)
    assert DiscreteActionWrapper(env, grid=7).action_space == gym.spaces.MultiDiscrete([7, 7, 10, 2])
    assert discrete_action_space(7, 10, stop=True) == gym.spaces.MultiDiscrete([7, 7, 10, 2])


def test_flat_stop_is_the_sign_of_the_last_entry_and_round_trips(data_dir):
    env = FlatActionWrapper(_any_step_env(data_dir))
    flat = np.zeros((3, 13), np.float32)
    flat[:, 2 + 7] = 1.0  # label 7
    flat[:, -1] = [0.5, 0.0, -0.5]
    native = env.to_native(flat)
    np.testing.assert_array_equal(native["stop"], [1, 0, 0])  # > 0 stops; 0 looks again
    np.testing.assert_array_equal(native["label"], [7, 7, 7])
    one = {"location": np.array([0.25, -0.5], np.float32), "label": 3, "stop": 1}
    wrapped = env.from_native(one)
    assert wrapped[-1] == 1.0 and wrapped[2 + 3] == 1.0 and env.action_space.contains(wrapped)
    back = env.to_native(wrapped)
    assert (back["label"], back["stop"]) == (3, 1)
    assert env.from_native({**one, "stop": 0})[-1] == -1.0


def test_discrete_stop_round_trips(data_dir):
    env = DiscreteActionWrapper(_any_step_env(data_dir), grid=5)
    every = np.array([[i, j, k, s] for i in range(5) for j in range(5) for k in range(10) for s in range(2)])
    native = env.to_native(every)
    np.testing.assert_array_equal(native["stop"], every[:, 3])
    np.testing.assert_array_equal(env.from_native(native), every)


def test_conversions_need_the_option_to_read_the_stop_entry():
    space = flat_action_space(10, stop=True)
    action = np.full(13, -1.0, np.float32)
    action[2 + 4], action[-1] = 0.5, 1.0
    assert to_native_action(action, space, stop=True)["label"] == 4
    assert "stop" not in to_native_action(action, space)  # read as 11 classes: the option must be given
    assert to_native_action(action, space)["label"] == 10
    with pytest.raises(ValueError, match=r"MultiDiscrete\(\[grid, grid, n_classes, 2\]\)"):
        to_native_action(np.zeros(3, np.int64), gym.spaces.MultiDiscrete([7, 7, 10]), stop=True)
    native = {"location": np.zeros((2, 2), np.float32), "label": np.array([1, 2]), "stop": np.array([1, 0])}
    np.testing.assert_array_equal(from_native_action(native, discrete_action_space(7, 10, True), True)[:, 3], [1, 0])


STACKS = {
    "history+flat": lambda env: FlatActionWrapper(GlimpseHistoryWrapper(env)),
    "dict-history+discrete": lambda env: DiscreteActionWrapper(GlimpseHistoryWrapper(env, flatten=False)),
    "flatten+flat (LSTM)": lambda env: FlatActionWrapper(gym.wrappers.FlattenObservation(env)),
}


@pytest.mark.parametrize("stack", STACKS)
def test_gymnasium_and_sb3_check_env_pass_on_the_any_step_stacks(data_dir, stack):
    env = STACKS[stack](_any_step_env(data_dir))
    gym_check_env(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Your observation (glimpses|locations) has an unconventional shape")
        check_env(env)


def test_wrapped_stop_ends_the_episode_with_the_cost_and_empty_later_slots(data_dir):
    env = FlatActionWrapper(GlimpseHistoryWrapper(_any_step_env(data_dir, split="test"), flatten=False))
    obs, info = env.reset(options={"index": 0})
    truth = int(task_labels(env.unwrapped.config)[0])
    look = env.from_native({"location": np.array([0.5, 0.5], np.float32), "label": truth, "stop": 0})
    obs, reward, terminated, _, info = env.step(look)
    assert reward == 0.0 and not terminated and obs["step"].argmax() == 1
    answer = env.from_native({"location": np.zeros(2, np.float32), "label": truth, "stop": 1})
    obs, reward, terminated, _, info = env.step(answer)
    assert terminated and info["glimpses"] == 2 and info["correct"]
    assert reward == 1.0 - 2 * COST
    assert not obs["glimpses"][2:].any() and not obs["locations"][2:].any()  # 6 slots, 2 filled
    env.reset(options={"index": 0})
    wrong = env.from_native({"location": np.zeros(2, np.float32), "label": (truth + 1) % 10, "stop": 1})
    assert env.step(wrong)[1] == -COST  # a cost makes a wrong answer negative


def test_graded_reward_refuses_any_step_in_one_line(data_dir, tmp_path):
    with pytest.raises(ValueError, match="graded reward needs answer='last_step'"):
        GradedRewardWrapper(FlatActionWrapper(_any_step_env(data_dir)))
    kw = dict(ANY, data_dir=data_dir)
    with pytest.raises(ValueError, match="graded reward needs answer='last_step'"):
        sb3.make_vec_env("ppo", kw, 2, reward="graded")
    with pytest.raises(ValueError, match="graded reward needs answer='last_step'"):
        sb3.train("ppo", kw, tmp_path / "run", 256, reward="graded", progress_bar=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder is written


def _same_obs(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


def _row(obs, i):
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


@pytest.mark.parametrize("algo", ["ppo", "ppo_glimpse", "recurrent_ppo"])
def test_vec_env_restarts_each_env_that_answers_as_its_single_env_does(algo, data_dir):
    """Episodes of lengths 1, 2, 3 and 4 side by side: every env is stepped as a wrapped single env would be."""
    kw = dict(ANY, data_dir=data_dir)
    n = 4
    venv = sb3.make_vec_env(algo, kw, n, seed=5)
    singles = [sb3.make_env(algo, kw) for _ in range(n)]
    obs = venv.reset()
    for i, single in enumerate(singles):
        _same_obs(obs[i] if not isinstance(obs, dict) else _row(obs, i), single.reset(options=venv.reset_infos[i])[0])
    stop_after = np.array([1, 2, 3, 4])  # glimpses before each env answers; 4 = forced at n_glimpses
    steps = np.zeros(n, dtype=np.int64)  # steps of each env's current episode
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(9):
        steps += 1
        actions = rng.uniform(-1, 1, (n, 13)).astype(np.float32)
        actions[:, -1] = np.where(steps >= stop_after, 1.0, -1.0)
        obs, rewards, dones, infos = venv.step(actions)
        for i, single in enumerate(singles):
            sobs, sreward, terminated, _, sinfo = single.step(actions[i])
            assert dones[i] == terminated and rewards[i] == np.float32(sreward)
            if not terminated:
                _same_obs(_row(obs, i), sobs)
                assert infos[i] == {}
                continue
            ended += 1
            assert sinfo["glimpses"] == stop_after[i] == infos[i]["glimpses"] == infos[i]["episode"]["l"]
            assert infos[i]["correct"] == sinfo["correct"] and infos[i]["episode"]["r"] == np.float32(sreward)
            _same_obs(infos[i]["terminal_observation"], sobs)
            fresh, _ = single.reset(options=venv.reset_infos[i])  # restarted within the step, alone
            _same_obs(_row(obs, i), fresh)
            steps[i] = 0
    assert ended == 9 + 4 + 3 + 2  # every env ended as often as its episode length allows in 9 steps
    venv.close()


class ScriptedStops:
    """Stops env ``i`` on its ``stop_after[i]``-th call after ``first``; always answers ``label``."""

    def __init__(self, stop_after, label=3):
        self.stop_after, self.label, self.calls = np.asarray(stop_after), label, 0

    def __call__(self, obs, first):
        self.calls = 1 if first else self.calls + 1
        n = len(obs["location"])
        return {
            "location": np.zeros((n, 2), np.float32),
            "label": np.full(n, self.label, np.int64),
            "stop": (self.calls >= self.stop_after[:n]).astype(np.int64),
        }


def test_play_episodes_keeps_each_envs_first_ending_only(data_dir):
    venv = GlimpseVectorEnv(4, data_dir=data_dir, split="test", **ANY)
    indices = np.arange(10)
    # env 1 ends after 2 calls, restarts on a random image, and would end again on call 4 with 1 glimpse
    correct, glimpses = play_episodes(ScriptedStops([1, 2, 4, 3]), venv, indices, with_glimpses=True)
    np.testing.assert_array_equal(glimpses, np.tile([1, 2, 4, 3], 3)[:10])
    np.testing.assert_array_equal(correct, task_labels(venv.config)[:10] == 3)
    np.testing.assert_array_equal(play_episodes(ScriptedStops([1, 2, 4, 3]), venv, indices), correct)


def test_ppo_trains_on_any_step_and_evaluate_scores_each_test_image_once(tmp_path, data_dir):
    kw = dict(ANY, glimpse_cost=0.05, data_dir=data_dir)
    hp = dict(n_steps=64, batch_size=128, n_epochs=2)
    summary = sb3.train(
        "ppo",
        kw,
        tmp_path,
        512,
        seed=3,
        n_envs=4,
        eval_episodes=16,
        eval_every=256,
        hyperparameters=hp,
        progress_bar=False,
    )
    assert summary["timesteps"] >= 512
    model, config = sb3.load(tmp_path)
    assert model.action_space == flat_action_space(10, stop=True) and config["env"]["answer"] == "any_step"
    # the reference: one deterministic episode per image on the wrapped single env
    env = sb3.make_env("ppo", config["env"], "test", data_dir)
    reference, lengths = np.zeros(30, dtype=bool), np.zeros(30, dtype=np.int64)
    for i in range(30):
        obs, _ = env.reset(options={"index": i})
        terminated = False
        while not terminated:
            obs, _, terminated, _, info = env.step(model.predict(obs, deterministic=True)[0])
        reference[i], lengths[i] = info["correct"], info["glimpses"]
    # This seed's policy mostly answers at once but looks to the end on some image: the envs that answered
    # restart and answer again before it ends, endings that evaluation must not count.
    assert len(set(lengths.tolist())) > 1, f"the test needs episodes of several lengths, got {lengths}"
    for batch_size in (500, 7):  # one batch; several with a padded last one
        correct, _ = sb3.evaluate(tmp_path, "test", data_dir, limit=30, batch_size=batch_size)
        np.testing.assert_array_equal(correct, reference)
    venv = sb3.make_task_vec(config["env"], 7, "test", data_dir)
    _, glimpses = play_episodes(sb3.policy_of(model, "ppo", config["env"]), venv, np.arange(30), with_glimpses=True)
    np.testing.assert_array_equal(glimpses, lengths)
