"""GlimpseEnv: Gymnasium's checker on every id, the contract of DESIGN.md, and clear errors on bad input."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ram_env
from ram_env import GlimpseEnv, task_id
from ram_env.datasets import DATASETS

IDS = [task_id(pattern, dataset) for dataset in DATASETS for pattern in ram_env.TASKS]
# KMNIST's training images are not on this machine (tests/test_datasets.py pins that error), so its
# tasks are checked on its test split.
SPLIT = {"KMNIST": "test"}
HAS_RENDER = importlib.util.find_spec("ram_env.render") is not None


def make(id_: str, **kwargs) -> GlimpseEnv:
    dataset = gym.spec(id_).kwargs["dataset"]
    if dataset in SPLIT:
        kwargs.setdefault("split", SPLIT[dataset])
    return gym.make(id_, **kwargs).unwrapped


def act(location=(0.0, 0.0), label=0):
    return {"location": np.asarray(location, dtype=np.float32), "label": label}


@pytest.fixture(scope="module")
def env(data_dir):
    return GlimpseEnv(data_dir=data_dir, translated_size=60, n_glimpses=4, patch_size=12, n_patches=3, scale=2)


def test_every_task_is_registered_with_both_entry_points():
    assert len(IDS) == 12
    for id_ in IDS:
        spec = gym.spec(id_)
        assert spec.entry_point == "ram_env.env:GlimpseEnv"
        assert spec.vector_entry_point == "ram_env.vector:GlimpseVectorEnv"
    assert gym.spec("RAM/ClutteredKMNIST100-v0").kwargs == dict(
        dataset="KMNIST",
        translated_size=100,
        n_clutter=4,
        clutter_size=8,
        n_glimpses=8,
        patch_size=12,
        n_patches=4,
        scale=2,
    )


@pytest.mark.parametrize("id_", IDS)
def test_check_env(data_dir, id_):
    env = make(id_)
    check_env(env, skip_render_check=not HAS_RENDER)
    env.close()


@pytest.mark.parametrize(
    "id_, glimpse_shape, n_glimpses",
    [
        ("RAM/MNIST-v0", (1, 1, 8, 8), 6),
        ("RAM/TranslatedMNIST60-v0", (3, 1, 12, 12), 8),
        ("RAM/ClutteredFashionMNIST60-v0", (3, 1, 12, 12), 8),
        ("RAM/ClutteredKMNIST100-v0", (4, 1, 12, 12), 8),
    ],
)
def test_spaces_and_episode_length(data_dir, id_, glimpse_shape, n_glimpses):
    env = make(id_)
    assert env.observation_space["glimpse"].shape == glimpse_shape
    assert env.observation_space["glimpse"].dtype == np.float32
    assert env.action_space["label"].n == 10
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    rewards = []
    for step in range(1, n_glimpses + 1):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space and not truncated
        rewards.append(reward)
        assert terminated == (step == n_glimpses), step
    assert rewards[:-1] == [0.0] * (n_glimpses - 1)  # reward only at the end
    assert set(info) == {"label", "correct", "index", "glimpses"} and info["glimpses"] == n_glimpses


def test_reward_and_info_at_the_end(env):
    for answer_right in (True, False):
        obs, info = env.reset(seed=3)
        truth = int(env.task.label[0])
        assert set(info) == {"index"} and env.task.labels[info["index"]] == truth
        for _ in range(env.task.n_glimpses - 1):
            obs, reward, terminated, truncated, step_info = env.step(act(label=(truth + 1) % 10))  # ignored
            assert reward == 0.0 and not terminated and step_info == {}
        answer = truth if answer_right else (truth + 1) % 10
        obs, reward, terminated, truncated, info = env.step(act(label=answer))
        assert terminated and not truncated
        assert reward == (1.0 if answer_right else 0.0) and isinstance(reward, float)
        assert info["label"] == truth and info["correct"] is answer_right
        assert info["index"] == env.task.index[0]


def test_observation_is_the_glimpse_at_the_location(env):
    obs, _ = env.reset(seed=1)
    start = obs["location"].copy()
    assert np.array_equal(obs["glimpse"], env.task.retina(env.task.sums, start[None])[0])
    for location in [(-1.0, -1.0), (0.25, -0.5), (1.0, 1.0)]:
        obs, *_ = env.step(act(location))
        assert np.array_equal(obs["location"], np.float32(location))
        assert np.array_equal(obs["glimpse"], env.task.retina(env.task.sums, np.array([location], np.float32))[0])
        obs["glimpse"][:] = 7  # the env hands out copies
    assert env.task.glimpse.max() <= 1.0
    last = obs
    obs, reward, terminated, *_ = env.step(act((0.9, 0.9)))
    assert terminated  # the final observation repeats the last glimpse: the answer's location is not looked at
    assert np.array_equal(obs["location"], np.float32((1.0, 1.0))) and last["location"].tolist() == [1.0, 1.0]


def test_start_location(data_dir):
    env = GlimpseEnv(data_dir=data_dir, start="center")
    obs, _ = env.reset(seed=0)
    assert obs["location"].tolist() == [0.0, 0.0]
    env = GlimpseEnv(data_dir=data_dir)
    starts = np.array([env.reset(seed=s)[0]["location"] for s in range(50)])
    assert starts.min() >= -1 and starts.max() <= 1 and starts.std() > 0.3  # uniform over the square


def test_determinism_under_seed(data_dir):
    def run(seed):
        env = gym.make("RAM/ClutteredMNIST60-v0", data_dir=data_dir)
        out = []
        obs, info = env.reset(seed=seed)
        out.append((obs["glimpse"], obs["location"], info["index"]))
        rng = np.random.default_rng(0)
        for _ in range(8):
            obs, reward, *_ = env.step(act(rng.uniform(-1, 1, 2), 3))
            out.append((obs["glimpse"], obs["location"], reward))
        obs, info = env.reset()  # the next episode too
        out.append((obs["glimpse"], obs["location"], info["index"]))
        return out

    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    assert not all(np.array_equal(x, y) for p, q in zip(a, c) for x, y in zip(p, q))


def test_evaluation_visits_every_image_once_in_order(data_dir):
    env = GlimpseEnv(data_dir=data_dir, split="val", start="center")
    seen = []
    for i in range(env.n_images):
        _, info = env.reset(options={"index": i})
        seen.append(info["index"])
        assert env.task.label[0] == env.task.labels[i]
    assert seen == list(range(5000))
    for _ in range(5):
        env.step(act())
    *_, info = env.step(act(label=int(env.task.labels[4999])))
    assert info == {"label": int(env.task.labels[4999]), "correct": True, "index": 4999, "glimpses": 6}


def test_keywords_override_the_task_defaults(data_dir):
    env = gym.make(
        "RAM/TranslatedMNIST60-v0",
        data_dir=data_dir,
        n_glimpses=3,
        patch_size=6,
        n_patches=2,
        scale=3,
        translated_size=40,
    )
    u = env.unwrapped
    assert u.task.canvases.shape == (1, 1, 40, 40) and u.task.retina.sizes.tolist() == [6, 18]
    env.reset(seed=0)
    assert env.observation_space["glimpse"].shape == (2, 1, 6, 6)
    terminated = [env.step(act())[2] for _ in range(3)]
    assert terminated == [False, False, True]


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "action, match",
    [
        (act((0.0, 0.0, 0.0)), r"action\['location'\] must have shape \(2,\), got shape \(3,\)"),
        (act([[0.0, 0.0]]), r"action\['location'\] must have shape \(2,\), got shape \(1, 2\)"),
        ({"location": "centre", "label": 0}, r"action\['location'\] must be numbers, got 'centre'"),
        ({"location": [0.0, None], "label": 0}, r"action\['location'\] must be numbers"),
        (act((np.nan, 0.0)), r"action\['location'\] must be finite, got \[nan, 0.0\]"),
        (act((0.0, np.inf)), r"action\['location'\] must be finite"),
        (act((1.5, 0.0)), r"action\['location'\] must lie in \[-1, 1\] \(nothing is clipped\), got \[1.5, 0.0\]"),
        (act((0.0, -1.01)), r"action\['location'\] must lie in \[-1, 1\]"),
        (act(label=10), r"action\['label'\] must be a class in \[0, 10\), got 10"),
        (act(label=-1), r"action\['label'\] must be a class in \[0, 10\), got -1"),
        (act(label=2.0), r"action\['label'\] must be an integer class in \[0, 10\), got 2.0"),
        (act(label=True), r"action\['label'\] must be an integer class"),
        (act(label=np.array([2])), r"action\['label'\] must be an integer class"),
        (act(label="2"), r"action\['label'\] must be an integer class"),
        (
            {"location": np.zeros(2, np.float32)},
            r"action must be a dict with exactly the keys 'location' and 'label', got \['location'\]",
        ),
        (
            {"location": np.zeros(2), "label": 0, "extra": 1},
            r"exactly the keys 'location' and 'label', got \['extra', 'label', 'location'\]",
        ),
        ((np.zeros(2), 0), r"action must be a dict with exactly the keys 'location' and 'label', got \(array"),
    ],
)
def test_bad_actions_raise(env, action, match):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert env.task.t[0] == 1  # nothing happened
    env.step(act())  # and the episode goes on


def test_good_action_types_are_accepted(env):
    env.reset(seed=0)
    for action in [
        {"location": [0.5, -0.5], "label": 3},
        {"location": (1, -1), "label": np.int64(9)},
        {"location": np.array([0.1, 0.2]), "label": np.array(4)},
        act(label=np.uint8(0)),
    ]:
        obs, *_ = env.step(action)
        assert obs["location"].dtype == np.float32


def test_step_before_reset_and_after_the_end(data_dir):
    env = GlimpseEnv(data_dir=data_dir, n_glimpses=2)
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        env.step(act())
    env.reset(seed=0)
    env.step(act())
    assert env.step(act())[2]
    with pytest.raises(
        RuntimeError,
        match=r"step\(\) called after the episode terminated \(it ended on its answer, after 2 glimpses\); call reset",
    ):
        env.step(act())
    env.reset()
    env.step(act())  # fine again
    wrapped = gym.make("RAM/MNIST-v0", data_dir=data_dir)
    with pytest.raises(gym.error.ResetNeeded):  # Gymnasium's OrderEnforcing wrapper says it first
        wrapped.step(act())


@pytest.mark.parametrize(
    "options, match",
    [
        ({"index": 5000}, r"options\['index'\] must be in \[0, 5000\) for split 'val', got 5000"),
        ({"index": -1}, r"options\['index'\] must be in \[0, 5000\)"),
        ({"index": 1.0}, r"options\['index'\] must be an integer image index, got 1.0"),
        ({"index": True}, r"options\['index'\] must be an integer image index"),
        ({"indices": [1]}, r"unknown reset option \['indices'\]; the only option is 'index'"),
    ],
)
def test_bad_reset_options_raise(data_dir, options, match):
    env = GlimpseEnv(data_dir=data_dir, split="val")
    with pytest.raises(ValueError, match=match):
        env.reset(options=options)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(foo=1),
            TypeError,
            r"^GlimpseEnv.__init__\(\) got an unexpected keyword argument 'foo'; "
            r"the arguments of a RAM environment are dataset, split",
        ),
        (
            dict(foo=1, bar=2),
            TypeError,
            r"^GlimpseEnv.__init__\(\) got an unexpected keyword argument 'foo' \(and 'bar'\)",
        ),
        (
            dict(device="cpu"),
            TypeError,
            r"^GlimpseEnv.__init__\(\) got an unexpected keyword argument 'device'; device is",
        ),
        (dict(patch_size=40), ValueError, r"patch_size 40 is larger than the 28x28 canvas"),
        (
            dict(n_clutter=4),
            ValueError,
            r"clutter needs a translated canvas: set translated_size > 28 when n_clutter > 0",
        ),
        (dict(translated_size=20), ValueError, r"translated_size 20 is smaller than the 28x28 digit"),
        (dict(translated_size=60.0), TypeError, r"translated_size must be an integer"),
        (dict(n_glimpses=0), ValueError, r"n_glimpses must be a positive integer, got 0"),
        (dict(scale=1.5), TypeError, r"scale must be an integer, got 1.5"),
        (dict(n_patches=0), ValueError, r"n_patches must be a positive integer, got 0"),
        (dict(start="middle"), ValueError, r"start must be 'random' or 'center', got 'middle'"),
        (dict(split="dev"), ValueError, r"unknown split 'dev'; choose one of train, val, test"),
        (
            dict(dataset="Imagenet"),
            ValueError,
            r"unknown dataset 'Imagenet'; choose one of MNIST, FashionMNIST, KMNIST, CIFAR10",
        ),
        (
            dict(render_mode="ansi"),
            ValueError,
            r"render_mode must be one of \['human', 'rgb_array'\] or None, got 'ansi'",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode='ansi'")
def test_bad_arguments_raise(data_dir, kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("RAM/MNIST-v0", data_dir=data_dir, **kwargs)


def test_val_and_test_episodes_start_at_fixed_locations(data_dir):
    """The random start of image i on val/test is part of the fixed episode: whatever the seed or env."""
    for split in ("val", "test"):
        a = gym.make("RAM/TranslatedMNIST60-v0", split=split, data_dir=data_dir).unwrapped
        b = gym.make("RAM/TranslatedMNIST60-v0", split=split, data_dir=data_dir).unwrapped
        starts = [a.reset(seed=1, options={"index": i})[0]["location"] for i in range(5)]
        for i in (4, 0, 2):
            obs, _ = b.reset(seed=99, options={"index": i})
            np.testing.assert_array_equal(obs["location"], starts[i])
        assert len({tuple(s) for s in starts}) == 5  # still random across images
    train = gym.make("RAM/TranslatedMNIST60-v0", data_dir=data_dir).unwrapped
    first = train.reset(seed=1, options={"index": 0})[0]["location"]
    assert not np.array_equal(first, train.reset(seed=2, options={"index": 0})[0]["location"])
