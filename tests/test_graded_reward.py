"""The opt-in graded reward: log-probability of the true class, per-step predictions as potential-based shaping."""

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
    GradedReward,
    GradedRewardWrapper,
    class_log_probs,
    task_labels,
)

TASK = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)


def _scores(top: int, n: int = 10) -> np.ndarray:
    """+1 on class ``top``, -1 on the others."""
    s = -np.ones(n, np.float32)
    s[top] = 1.0
    return s


@pytest.fixture
def env(data_dir):
    return GradedRewardWrapper(FlatActionWrapper(GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir))))


def test_answer_only_pays_the_log_probability_of_the_true_class():
    graded = GradedReward(np.array([3]), scale=3.0, shaping=False)
    graded.start(np.array([0]))
    sure = np.log1p(9 * np.exp(-6.0))
    cases = {"right": (_scores(3), -sure), "wrong": (_scores(7), -6.0 - sure), "uniform": (np.zeros(10), -np.log(10))}
    for name, (scores, expected) in cases.items():
        assert graded.pay(scores[None], np.array([False]))[0] == 0.0, name  # nothing before the answer
        np.testing.assert_allclose(graded.pay(scores[None], np.array([True]))[0], expected, rtol=1e-6, err_msg=name)


def test_shaping_pays_each_steps_improvement_and_telescopes_to_the_final_log_probability():
    rng = np.random.default_rng(0)
    labels = np.array([2, 5, 9])
    graded = GradedReward(labels, num_envs=3, scale=3.0)
    graded.start(np.array([0, 1, 2]))
    scores = rng.uniform(-1, 1, (6, 3, 10))
    rewards = np.stack([graded.pay(scores[t], np.full(3, t == 5)) for t in range(6)])
    logp = class_log_probs(scores, 3.0)[:, np.arange(3), labels]  # (step, env)
    np.testing.assert_allclose(rewards, np.diff(logp, axis=0, prepend=0.0), rtol=1e-12)
    np.testing.assert_allclose(rewards.sum(axis=0), logp[-1], rtol=1e-12)


def test_shaping_with_a_discount_is_gamma_phi_next_minus_phi():
    graded = GradedReward(np.array([1]), scale=2.0, gamma=0.9)
    graded.start(np.array([0]))
    a, b = np.zeros((1, 10)), _scores(1)[None]
    logp_a, logp_b = class_log_probs(a, 2.0)[0, 1], class_log_probs(b, 2.0)[0, 1]
    np.testing.assert_allclose(graded.pay(a, np.array([False])), 0.9 * logp_a)
    np.testing.assert_allclose(graded.pay(b, np.array([True])), logp_b - logp_a)  # Phi(end) = 0
    graded.start(np.array([0]))  # a new episode starts from Phi = 0 again
    np.testing.assert_allclose(graded.pay(b, np.array([False])), 0.9 * logp_b)


def test_best_scores_rank_classes_as_the_belief_does():
    """The expected log score over a belief is highest for scores ordered like the belief."""
    belief = np.array([0.05, 0.5, 0.3, 0.15] + [0.0] * 6)
    ordered = np.array([-0.5, 1.0, 0.5, 0.0] + [-1.0] * 6)
    swapped = ordered.copy()
    swapped[[1, 2]] = swapped[[2, 1]]
    expected = [(belief * class_log_probs(s, 3.0)).sum() for s in (ordered, swapped)]
    assert expected[0] > expected[1]


def test_wrapper_pays_the_final_log_probability_over_an_episode(env):
    obs, info = env.reset(seed=4)
    label = int(task_labels(env.unwrapped.config)[info["index"]])
    rng = np.random.default_rng(1)
    total = 0.0
    for t in range(6):
        scores = _scores(label) if t == 5 else rng.uniform(-1, 1, 10).astype(np.float32)
        action = np.concatenate([rng.uniform(-1, 1, 2).astype(np.float32), scores])
        obs, reward, terminated, _, info = env.step(action)
        total += reward
    assert terminated and info["correct"] and info["label"] == label
    np.testing.assert_allclose(total, -np.log1p(9 * np.exp(-6.0)), rtol=1e-5)


def test_wrapper_rejects_a_discrete_action_and_a_bad_scale(data_dir):
    base = gym.make("RAM/MNIST-v0", data_dir=data_dir)
    with pytest.raises(ValueError, match="FlatActionWrapper"):
        GradedRewardWrapper(DiscreteActionWrapper(base))
    with pytest.raises(ValueError, match="scale"):
        GradedRewardWrapper(FlatActionWrapper(base), scale=0.0)
    with pytest.raises(ValueError, match="action='box'"):
        sb3.make_env("ppo", dict(TASK, data_dir=data_dir), action="discrete", reward="graded")


@pytest.mark.parametrize("flatten", [True, False])
def test_check_env_passes_with_default_arguments(data_dir, flatten):
    env = GradedRewardWrapper(
        FlatActionWrapper(GlimpseHistoryWrapper(gym.make("RAM/MNIST-v0", data_dir=data_dir), flatten=flatten))
    )
    gym_check_env(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Your observation (glimpses|locations) has an unconventional shape")
        check_env(env)
    assert [w.name for w in env.spec.additional_wrappers][-1] == "GradedRewardWrapper"


@pytest.mark.parametrize("algo", ["ppo", "ppo_glimpse", "recurrent_ppo"])
def test_vec_env_pays_what_the_wrapper_pays(algo, data_dir):
    kw = dict(TASK, data_dir=data_dir, start="center")
    venv = sb3.make_vec_env(algo, kw, 3, seed=5, reward="graded")
    single = sb3.make_env(algo, kw, reward="graded")
    venv.reset()
    single.reset(options={"index": venv.reset_infos[1]["index"]})
    rng = np.random.default_rng(0)
    returns = 0.0
    for t in range(6):
        actions = rng.uniform(-1, 1, (3, 12)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        _, reward, *_ = single.step(actions[1])
        np.testing.assert_allclose(rewards[1], reward, rtol=1e-6)
        returns += reward
    assert dones.all()
    np.testing.assert_allclose(infos[1]["episode"]["r"], returns, rtol=1e-6)
    venv.close()
