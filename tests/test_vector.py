"""GlimpseVectorEnv: make_vec, agreement with the single env, NEXT_STEP autoreset, reset_mask, evaluation, bad input."""

import gymnasium as gym
import numpy as np
import pytest

import ram_env
from ram_env import GlimpseEnv, GlimpseVectorEnv, task_id
from ram_env.datasets import DATASETS

TASK = dict(translated_size=60, n_clutter=4, clutter_size=8, n_glimpses=5, patch_size=12, n_patches=3, scale=2)


def acts(n, location=(0.0, 0.0), label=0):
    return {"location": np.tile(np.asarray(location, np.float32), (n, 1)), "label": np.full(n, label, np.int64)}


@pytest.fixture()
def venv(data_dir):
    return GlimpseVectorEnv(num_envs=4, data_dir=data_dir, **TASK)


@pytest.mark.parametrize("id_", [task_id(p, d) for d in DATASETS for p in ram_env.TASKS])
def test_make_vec_every_id(data_dir, id_):
    split = "test" if "KMNIST" in id_ else "train"
    env = gym.make_vec(id_, num_envs=3, vectorization_mode="vector_entry_point", split=split)
    assert isinstance(env.unwrapped, GlimpseVectorEnv) and env.num_envs == 3
    single = gym.make(id_, split=split)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info["_index"].all()
    obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
    assert obs in env.observation_space
    assert rewards.shape == terminated.shape == truncated.shape == (3,)
    env.close()


def test_agrees_with_the_single_env_on_the_same_image_and_locations(data_dir):
    kwargs = dict(TASK, split="test", start="center", data_dir=data_dir)
    picks = np.array([42, 7, 9999, 42])  # a repeated image: each env still plays its own episode
    venv = gym.make_vec(
        "RAM/ClutteredMNIST100-v0", num_envs=len(picks), vectorization_mode="vector_entry_point", **kwargs
    )
    vobs, vinfo = venv.reset(seed=0, options={"indices": picks})
    assert vinfo["index"].tolist() == picks.tolist()
    rng = np.random.default_rng(0)
    path = rng.uniform(-1, 1, (TASK["n_glimpses"], len(picks), 2)).astype(np.float32)
    path[1, 0] = (-1, -1)
    path[2, 1] = (1, 1)
    labels = venv.unwrapped.task.label.copy()
    vector_run = [vobs]
    for t in range(TASK["n_glimpses"]):
        vector_run.append(venv.step({"location": path[t], "label": labels})[0])
    for k in range(len(picks)):
        env = gym.make("RAM/ClutteredMNIST100-v0", **kwargs)
        obs, info = env.reset(seed=1, options={"index": int(picks[k])})
        assert info["index"] == picks[k]
        assert np.array_equal(env.unwrapped.task.canvases[0], venv.unwrapped.task.canvases[k])
        single_run = [obs]
        for t in range(TASK["n_glimpses"]):
            obs, reward, terminated, _, info = env.step({"location": path[t, k], "label": int(labels[k])})
            single_run.append(obs)
        assert terminated and reward == 1.0
        for t, (s, v) in enumerate(zip(single_run, vector_run)):
            assert np.array_equal(s["glimpse"], v["glimpse"][k]), (k, t)  # bit-identical glimpses
            assert np.array_equal(s["location"], v["location"][k]), (k, t)


def test_episode_rewards_and_infos(venv):
    obs, info = venv.reset(seed=0)
    truth = venv.task.label.copy()
    answer = truth.copy()
    answer[[1, 3]] = (answer[[1, 3]] + 1) % 10
    for t in range(1, TASK["n_glimpses"] + 1):
        obs, rewards, terminated, truncated, infos = venv.step(
            {"location": np.zeros((4, 2), np.float32), "label": answer}
        )
        assert not truncated.any()
        if t < TASK["n_glimpses"]:
            assert not terminated.any() and (rewards == 0).all() and infos == {}
    assert terminated.all()
    assert rewards.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert infos["label"].tolist() == truth.tolist() and infos["_label"].all()
    assert infos["correct"].tolist() == [True, False, True, False] and infos["_correct"].all()
    assert infos["index"].tolist() == venv.task.index.tolist()


def test_next_step_autoreset(venv):
    assert venv.metadata["autoreset_mode"] == venv.autoreset_mode == gym.vector.AutoresetMode.NEXT_STEP
    venv.reset(seed=0)
    for _ in range(TASK["n_glimpses"]):
        obs, rewards, terminated, *_ = venv.step(acts(4))
    assert terminated.all()
    old_index = venv.task.index.copy()
    # The next step starts new episodes: reward 0, not terminated, its action ignored.
    obs, rewards, terminated, truncated, infos = venv.step(acts(4, (0.5, 0.5)))
    assert (rewards == 0).all() and not terminated.any()
    assert (venv.task.t == 1).all()
    assert not np.allclose(obs["location"], 0.5)  # a random start, not the action's location
    assert np.array_equal(obs["glimpse"], venv.task.retina(venv.task.sums, obs["location"]))
    assert infos["_index"].all() and infos["index"].tolist() == venv.task.index.tolist()
    assert not np.array_equal(venv.task.index, old_index)
    assert "label" not in infos
    # ... and the new episodes last n_glimpses steps again
    for t in range(TASK["n_glimpses"]):
        terminated = venv.step(acts(4))[2]
    assert terminated.all()


def test_disabled_autoreset_leaves_restarts_to_the_client(data_dir):
    venv = gym.make_vec(
        "RAM/MNIST-v0", 4, vectorization_mode="vector_entry_point", data_dir=data_dir, autoreset_mode="Disabled"
    )
    assert venv.metadata["autoreset_mode"] == venv.autoreset_mode == gym.vector.AutoresetMode.DISABLED
    assert GlimpseVectorEnv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP  # the class keeps its own
    venv.reset(seed=0)
    n_glimpses = venv.unwrapped.config.n_glimpses
    for _ in range(n_glimpses):
        terminated = venv.step(acts(4))[2]
    assert terminated.all()
    with pytest.raises(RuntimeError, match=r"envs \[0, 1, 2, 3\] ended .* reset them first with reset\(options="):
        venv.step(acts(4))
    mask = np.array([True, False, True, False])
    venv.reset(options={"reset_mask": mask})
    with pytest.raises(RuntimeError, match=r"envs \[1, 3\] ended"):
        venv.step(acts(4))
    venv.reset(options={"reset_mask": ~mask})
    _, rewards, terminated, _, _ = venv.step(acts(4))  # every env steps its new episode's first glimpse
    assert not terminated.any() and (venv.unwrapped.task.t == 2).all()  # one glimpse at the reset, one now


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.SAME_STEP, "sometimes"])
def test_unplayable_autoreset_mode_is_refused_in_one_line(data_dir, mode):
    with pytest.raises(ValueError, match="autoreset_mode must be AutoresetMode.NEXT_STEP .* or AutoresetMode.DISABLED"):
        GlimpseVectorEnv(num_envs=2, data_dir=data_dir, autoreset_mode=mode)


def test_reset_mask_and_episodes_out_of_phase(venv):
    venv.reset(seed=0)
    venv.step(acts(4, (0.5, 0.5)))
    venv.step(acts(4, (0.5, 0.5)))
    before = {k: getattr(venv.task, k).copy() for k in ("glimpse", "location", "canvases", "index", "t")}
    mask = np.array([False, True, False, True])
    obs, info = venv.reset(options={"reset_mask": mask, "indices": [11, 12]})
    assert info["_index"].tolist() == mask.tolist() and info["index"][mask].tolist() == [11, 12]
    assert venv.task.t.tolist() == [3, 1, 3, 1]
    for k in ("glimpse", "location", "canvases", "index"):
        assert np.array_equal(getattr(venv.task, k)[~mask], before[k][~mask]), k
    assert np.array_equal(obs["glimpse"][~mask], before["glimpse"][~mask])
    # envs 0 and 2 end two steps before 1 and 3; each gets its reward at its own end, and restarts alone
    labels = venv.task.label.copy()
    ends = []
    for step in range(TASK["n_glimpses"] + 2):
        obs, rewards, terminated, _, infos = venv.step({"location": np.zeros((4, 2), np.float32), "label": labels})
        ends.append(terminated.tolist())
        assert (rewards == terminated).all()  # right answers: 1 exactly where an episode ends
        if terminated.any():
            assert infos["_label"].tolist() == terminated.tolist()
        labels = venv.task.label.copy()  # the right answer for the episodes now running
    n = TASK["n_glimpses"]
    assert [e[0] for e in ends] == [i == n - 3 for i in range(n + 2)]
    assert [e[1] for e in ends] == [i == n - 1 for i in range(n + 2)]
    assert ends[n - 2] == [False] * 4  # envs 0 and 2 restart here, envs 1 and 3 still look
    assert venv.task.t.tolist() == [4, 2, 4, 2]  # 0, 2 restarted 4 steps ago; 1, 3 two steps ago


@pytest.mark.parametrize("device", [None, "cpu"])
def test_returned_flags_are_not_changed_by_later_steps(data_dir, device):
    env = GlimpseVectorEnv(num_envs=2, data_dir=data_dir, device=device, **TASK)
    env.reset(seed=0)
    for _ in range(TASK["n_glimpses"]):
        _, _, terminated, _, infos = env.step(acts(2))
    assert terminated.all() and infos["_label"].all()
    env.step(acts(2))  # the autoreset step restarts both envs
    assert terminated.all() and infos["_label"].all()


def test_determinism_under_seed(data_dir):
    def run(seed):
        env = gym.make_vec(
            "RAM/ClutteredMNIST60-v0", num_envs=5, vectorization_mode="vector_entry_point", data_dir=data_dir
        )
        obs, info = env.reset(seed=seed)
        out = [obs["glimpse"], obs["location"], info["index"]]
        rng = np.random.default_rng(0)
        for _ in range(12):  # across an autoreset
            obs, rewards, *_ = env.step(
                {"location": rng.uniform(-1, 1, (5, 2)).astype(np.float32), "label": np.zeros(5, np.int64)}
            )
            out += [obs["glimpse"], obs["location"], rewards]
        return out

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_evaluation_visits_every_image_once(data_dir):
    venv = GlimpseVectorEnv(num_envs=256, data_dir=data_dir, split="val", start="center", n_glimpses=2)
    seen = []
    correct = 0
    for start in range(0, venv.n_images, venv.num_envs):
        chunk = np.arange(start, min(start + venv.num_envs, venv.n_images))
        mask = np.zeros(venv.num_envs, bool)
        mask[: len(chunk)] = True
        _, info = venv.reset(
            options={"indices": chunk, "reset_mask": mask} if len(chunk) < venv.num_envs else {"indices": chunk}
        )
        venv.step(acts(venv.num_envs))
        *_, infos = venv.step({"location": np.zeros((256, 2), np.float32), "label": venv.task.label})
        seen += infos["index"][mask].tolist()
        correct += int(infos["correct"][mask].sum())
    assert seen == list(range(5000)) and correct == 5000


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "location, label, match",
    [
        (np.zeros((4, 3)), np.zeros(4, int), r"action\['location'\] must have shape \(4, 2\), got shape \(4, 3\)"),
        (np.zeros(2), np.zeros(4, int), r"action\['location'\] must have shape \(4, 2\), got shape \(2,\)"),
        ([["a", "b"]] * 4, np.zeros(4, int), r"action\['location'\] must be numbers"),
        (
            np.array([[0, 0], [0, np.nan], [0, 0], [0, 0]]),
            np.zeros(4, int),
            r"must be finite, got \[\[0.0, nan\]\] in env \[1\]",
        ),
        (
            np.array([[0, 0], [2, 0], [0, 0], [0, -3]]),
            np.zeros(4, int),
            r"must lie in \[-1, 1\] \(nothing is clipped\), got \[\[2.0, 0.0\], \[0.0, -3.0\]\] in envs \[1, 3\]",
        ),
        (
            np.zeros((4, 2)),
            np.zeros(3, int),
            r"action\['label'\] must have shape \(4,\) \(one class per env\), got shape \(3,\)",
        ),
        (np.zeros((4, 2)), np.zeros(4), r"action\['label'\] must be integers"),
        (
            np.zeros((4, 2)),
            np.array([0, 10, 0, -1]),
            r"action\['label'\] must be a class in \[0, 10\), got \[10, -1\] in envs \[1, 3\]",
        ),
        (np.zeros((4, 2)), np.zeros(4, bool), r"action\['label'\] must be integers"),
    ],
)
def test_bad_actions_raise(venv, location, label, match):
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        venv.step({"location": location, "label": label})
    assert (venv.task.t == 1).all()


def test_bad_calls_raise(venv):
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        venv.step(acts(4))
    venv.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"actions must be a dict with exactly the keys 'location' and 'label', got \['location'\]"
    ):
        venv.step({"location": np.zeros((4, 2))})
    with pytest.raises(ValueError, match=r"options\['reset_mask'\] must be a bool array of shape \(4,\)"):
        venv.reset(options={"reset_mask": [1, 0, 1, 0]})
    with pytest.raises(ValueError, match=r"image indices must be 4 integers \(one per env reset\)"):
        venv.reset(options={"indices": [1, 2]})
    with pytest.raises(ValueError, match=r"image indices must be 2 integers"):
        venv.reset(options={"indices": [1, 2, 3, 4], "reset_mask": np.array([True, False, True, False])})
    with pytest.raises(ValueError, match=r"image indices must be in \[0, 55000\) for split 'train', got \[55000\]"):
        venv.reset(options={"indices": [0, 1, 2, 55000]})
    with pytest.raises(
        ValueError, match=r"unknown reset option \['index'\]; the options are 'indices' and 'reset_mask'"
    ):
        venv.reset(options={"index": 3})
    with pytest.raises(ValueError, match=r"seed must be an int or None, got 1.5"):
        venv.reset(seed=1.5)
    assert (venv.task.t == 1).all()  # failed resets changed nothing


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_envs=0), ValueError, r"num_envs must be a positive integer, got 0"),
        (
            dict(num_envs=2, foo=1),
            TypeError,
            r"^GlimpseVectorEnv.__init__\(\) got an unexpected keyword argument 'foo'; "
            r"the arguments of a RAM environment are dataset, .* and num_envs, render_mode, device, autoreset_mode$",
        ),
        (
            dict(num_envs=2, patch_size=70, translated_size=60),
            ValueError,
            r"patch_size 70 is larger than the 60x60 canvas",
        ),
        (
            dict(num_envs=2, render_mode="human"),
            ValueError,
            r"render_mode must be one of \['rgb_array'\] or None, got 'human'",
        ),
    ],
)
def test_bad_arguments_raise(data_dir, kwargs, error, match):
    with pytest.raises(error, match=match):
        GlimpseVectorEnv(data_dir=data_dir, **kwargs)


def test_make_vec_passes_keywords(data_dir):
    env = gym.make_vec("RAM/MNIST-v0", num_envs=2, vectorization_mode="vector_entry_point", n_glimpses=2, patch_size=4)
    assert env.single_observation_space["glimpse"].shape == (1, 1, 4, 4)
    env.reset(seed=0)
    assert not env.step(acts(2))[2].any() and env.step(acts(2))[2].all()
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'foo'"):
        gym.make_vec("RAM/MNIST-v0", num_envs=2, vectorization_mode="vector_entry_point", foo=1)
    # a single env checked against the same image in the vector env
    single = GlimpseEnv(n_glimpses=2, patch_size=4)
    assert single.observation_space == env.single_observation_space
