"""The early-answer option (``answer="any_step"``, ``glimpse_cost``): a stop action, on every env and backend."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import ram_env  # noqa: F401
from ram_env import GlimpseEnv, GlimpseVectorEnv, render

SMALL = dict(translated_size=60, n_clutter=4, clutter_size=8, n_glimpses=4, patch_size=12, n_patches=3, scale=2)
COST = 0.125  # a power of two: the expected rewards below are exact in float64


def act(label=0, stop=0, location=(0.25, -0.5)):
    return {"location": np.asarray(location, dtype=np.float32), "label": label, "stop": stop}


def acts(labels, stops, location=0.25):
    n = len(labels)
    return {
        "location": np.full((n, 2), location, np.float32),
        "label": np.asarray(labels, np.int64),
        "stop": np.asarray(stops, np.int64),
    }


@pytest.fixture(scope="module")
def env(data_dir):
    return GlimpseEnv(data_dir=data_dir, split="test", answer="any_step", glimpse_cost=COST, **SMALL)


def error_of(fn, kind=ValueError) -> str:
    with pytest.raises(kind) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ spaces
def test_the_default_action_space_is_unchanged_and_the_option_adds_stop(data_dir):
    native = dict(location=spaces.Box(-1.0, 1.0, (2,), np.float32), label=spaces.Discrete(10))
    default = GlimpseEnv(data_dir=data_dir)
    assert default.action_space == spaces.Dict(**native) and list(default.action_space.spaces) == ["location", "label"]
    assert default.config.answer == "last_step" and default.config.glimpse_cost == 0
    anytime = GlimpseEnv(data_dir=data_dir, answer="any_step")
    assert anytime.action_space == spaces.Dict(**native, stop=spaces.Discrete(2))
    assert list(anytime.action_space.spaces) == ["location", "label", "stop"]
    assert anytime.observation_space == default.observation_space
    for device in (None, "cpu"):
        venv = GlimpseVectorEnv(3, data_dir=data_dir, answer="any_step", device=device)
        assert venv.single_action_space == anytime.action_space
        assert venv.action_space["stop"] == spaces.MultiDiscrete([2, 2, 2])
        assert "stop" not in GlimpseVectorEnv(3, data_dir=data_dir, device=device).action_space.spaces


def test_every_registered_id_takes_the_option(data_dir):
    env = gym.make("RAM/TranslatedMNIST60-v0", data_dir=data_dir, answer="any_step", glimpse_cost=0.01)
    assert "stop" in env.action_space.spaces and env.unwrapped.config.glimpse_cost == 0.01
    venv = gym.make_vec("RAM/MNIST-v0", 2, vectorization_mode="vector_entry_point", answer="any_step")
    assert "stop" in venv.single_action_space.spaces


def test_check_env_passes_with_the_option_on(data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env's complaints are warnings: none allowed
        check_env(gym.make("RAM/MNIST-v0", data_dir=data_dir, answer="any_step", glimpse_cost=0.05).unwrapped)


# ------------------------------------------------------------------------------------------- single env
def test_an_early_answer_ends_the_episode_and_is_paid(env):
    for answer_step in (1, 2, 3):
        for right in (True, False):
            env.reset(seed=answer_step)
            truth = int(env.task.label[0])
            label = truth if right else (truth + 1) % 10
            for _ in range(answer_step - 1):
                obs, reward, terminated, truncated, info = env.step(act(label=label, stop=0))
                assert reward == 0.0 and not terminated and info == {}
            before = env.task.glimpse[0].copy()
            obs, reward, terminated, truncated, info = env.step(act(label=label, stop=1))
            assert terminated and not truncated
            assert info == {"label": truth, "correct": right, "index": info["index"], "glimpses": answer_step}
            assert reward == float(right) - COST * answer_step and isinstance(reward, float)
            assert np.array_equal(obs["glimpse"], before)  # the answering step takes no glimpse
            message = error_of(lambda: env.step(act()), RuntimeError)
            assert f"after {answer_step} glimpses" in message and "reset()" in message


def test_the_answer_is_forced_on_step_n_glimpses(env):
    env.reset(seed=0)
    truth = int(env.task.label[0])
    for _ in range(3):
        assert not env.step(act(label=truth, stop=0))[2]
    _, reward, terminated, _, info = env.step(act(label=truth, stop=0))  # stop=0 yet the episode ends
    assert terminated and info["glimpses"] == 4 and info["correct"] and reward == 1.0 - 4 * COST


def test_a_glimpse_cost_lowers_the_reward_of_a_right_answer_below_zero(data_dir):
    env = GlimpseEnv(data_dir=data_dir, split="test", answer="any_step", glimpse_cost=0.5, n_glimpses=3)
    env.reset(seed=0)
    env.step(act(stop=0))
    truth = int(env.task.label[0])
    _, reward, terminated, _, info = env.step(act(label=truth, stop=True))  # a bool is a stop flag too
    assert terminated and info["correct"] is True and info["glimpses"] == 2 and reward == 0.0
    env.reset(seed=0)
    _, reward, *_ = env.step(act(label=(truth + 1) % 10, stop=np.int64(1)))
    assert reward == -0.5


def test_a_zero_cost_pays_exactly_the_default_rewards(data_dir):
    """``answer="any_step"`` with stop=0 throughout is the paper's task: same glimpses, same rewards."""
    default = GlimpseEnv(data_dir=data_dir, **SMALL)
    anytime = GlimpseEnv(data_dir=data_dir, answer="any_step", **SMALL)
    for seed in range(4):
        locations = np.random.default_rng(seed).uniform(-1, 1, (4, 2)).astype(np.float32)
        results = []
        for e in (default, anytime):
            obs, _ = e.reset(seed=seed)
            label = int(e.task.label[0]) if seed % 2 else (int(e.task.label[0]) + 1) % 10
            run = [obs["glimpse"]]
            for location in locations:
                action = {"location": location, "label": label}
                obs, reward, terminated, truncated, info = e.step(action if e is default else {**action, "stop": 0})
                run += [obs["glimpse"], reward, terminated, truncated, info]
            results.append(run)
        for a, b in zip(*results):
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_rendering_shows_an_early_answer(data_dir):
    env = GlimpseEnv(render_mode="rgb_array", data_dir=data_dir, split="test", answer="any_step")
    layout = render.frame_layout(env.task.retina)
    border = (layout.canvas_origin[1] + 10, layout.canvas_origin[0] - 2)
    footer = slice(layout.footer_y, layout.height)
    env.reset(seed=0)
    assert tuple(env.render()[border]) == render.CANVAS_BORDER  # no answer yet
    truth = int(env.task.label[0])
    env.step(act(label=truth, stop=1))
    frame = env.render()
    assert tuple(frame[border]) == render.RIGHT_COLOUR and (frame[footer] == render.RIGHT_COLOUR).all(axis=-1).any()
    assert env.frame_state()["t"] == 1 and env.frame_state()["answer"] == truth
    venv = GlimpseVectorEnv(2, render_mode="rgb_array", data_dir=data_dir, split="test", answer="any_step")
    venv.reset(seed=0)
    venv.step(acts([int(venv.task.label[0]), 0], [1, 0]))
    assert venv.frame_state(0)["answer"] == int(venv.task.label[0]) and venv.frame_state(1)["answer"] is None
    assert len(venv.frame_state(0)["history"]) == 1 and len(venv.frame_state(1)["history"]) == 2


# ------------------------------------------------------------------------------------------- vector env
@pytest.mark.parametrize("device", [None, "cpu"])
def test_vector_episodes_of_mixed_lengths_autoreset_on_the_next_step(data_dir, device):
    kwargs = dict(data_dir=data_dir, split="test", answer="any_step", glimpse_cost=COST, n_glimpses=4)
    venv = GlimpseVectorEnv(3, device=device, **kwargs)
    np_ = venv.xp.to_numpy
    venv.reset(seed=0, options={"indices": [10, 11, 12]})
    truth = np_(venv.task.label).copy()
    # step 1: env 0 answers right after 1 glimpse; envs 1, 2 look
    obs, rewards, terminated, truncated, infos = venv.step(acts(truth, [1, 0, 0]))
    assert np_(terminated).tolist() == [True, False, False] and not np_(truncated).any()
    assert np_(rewards).tolist() == [1.0 - COST, 0.0, 0.0]
    assert np_(infos["_glimpses"]).tolist() == [True, False, False] and int(infos["glimpses"][0]) == 1
    assert np_(infos["_label"]).tolist() == np_(infos["_correct"]).tolist() == [True, False, False]
    assert np_(infos["_index"]).tolist() == [True, False, False] and int(infos["index"][0]) == 10
    # step 2: env 0 restarts (its stop=1 and label ignored: reward 0, not terminated); env 1 answers wrong
    wrong = (truth + 1) % 10
    obs, rewards, terminated, truncated, infos = venv.step(acts(wrong, [1, 1, 0]))
    assert np_(terminated).tolist() == [False, True, False] and np_(rewards).tolist() == [0.0, -2 * COST, 0.0]
    assert np_(infos["_index"]).tolist() == [True, True, False] and int(infos["index"][1]) == 11
    assert np_(infos["_glimpses"]).tolist() == [False, True, False] and int(infos["glimpses"][1]) == 2
    assert not bool(infos["correct"][1])
    assert venv.task.t.tolist() == [1, 2, 3] and venv.task.done.tolist() == [False, True, False]
    assert np.array_equal(np_(obs["location"][0]), np_(venv.task.location[0]))  # the new episode's first glimpse
    # steps 3, 4: env 2 runs to the forced answer (stop=0), env 0 looks, env 1 restarts then looks
    venv.step(acts(truth, [0, 0, 0]))
    obs, rewards, terminated, truncated, infos = venv.step(acts(truth, [0, 0, 0]))
    assert np_(terminated).tolist() == [False, False, True] and int(infos["glimpses"][2]) == 4
    assert float(rewards[2]) == 1.0 - 4 * COST and venv.task.t.tolist() == [3, 2, 4]


def test_the_vector_env_steps_as_gymnasiums_sync_vector_env_of_single_envs(data_dir):
    """Gymnasium's own NEXT_STEP autoreset over single envs gives the same rewards, ends and info masks."""
    kwargs = dict(data_dir=data_dir, split="val", answer="any_step", glimpse_cost=COST, **SMALL)
    native = GlimpseVectorEnv(4, **kwargs)
    sync = SyncVectorEnv([lambda: GlimpseEnv(**kwargs) for _ in range(4)], autoreset_mode=AutoresetMode.NEXT_STEP)
    indices = np.array([3, 1, 4, 1])
    obs_n, _ = native.reset(seed=0, options={"indices": indices})
    sync.reset(seed=0)
    for e, i in zip(sync.envs, indices):  # Gymnasium's reset passes one options dict to every env
        e.reset(options={"index": int(i)})
    assert np.array_equal(obs_n["glimpse"], np.stack([e.unwrapped.task.glimpse[0] for e in sync.envs]))
    rng = np.random.default_rng(0)
    restarted = np.zeros(4, dtype=bool)
    wrong = np.arange(4) % 2 == 1  # odd envs answer wrong
    for step in range(12):
        stops, location = rng.random(4) < 0.4, rng.uniform(-1, 1, (4, 2)).astype(np.float32)
        labels_n = native.task.label.copy()
        labels_s = np.array([e.unwrapped.task.label[0] for e in sync.envs])
        out_n = native.step({"location": location, "label": (labels_n + wrong) % 10, "stop": stops})
        out_s = sync.step({"location": location, "label": (labels_s + wrong) % 10, "stop": stops})
        for a, b in zip(out_n[1:4], out_s[1:4]):  # rewards, terminated, truncated
            assert np.array_equal(a, b), step
        assert out_n[4].keys() == out_s[4].keys(), step
        for key in out_n[4]:
            if key.startswith("_") or key in ("correct", "glimpses"):  # masks, and values not tied to the image
                mask = out_n[4].get(f"_{key}", np.ones(4, bool))
                assert np.array_equal(out_n[4][key][mask], out_s[4][key][mask]), (step, key)
        restarted |= out_n[4].get("_index", np.zeros(4, bool)) & ~out_n[2]  # a random image from here on
        glimpses_s = np.stack([e.unwrapped.task.glimpse[0] for e in sync.envs])
        assert np.array_equal(out_n[0]["glimpse"][~restarted], glimpses_s[~restarted]), step
    assert restarted.all()


def evaluate(venv, policy, n_images: int) -> dict:
    """Visit images ``0 .. n_images-1`` once each, refilling envs as their episodes end; ``{index: (reward,
    glimpses, correct)}`` of every ended episode (a repeated index would overwrite, so it is counted apart)."""
    np_, n = venv.xp.to_numpy, venv.num_envs
    results, ends = {}, 0
    venv.reset(seed=0, options={"indices": np.arange(n)})
    active, next_index = np.ones(n, dtype=bool), n
    while active.any():
        obs, rewards, terminated, _, infos = venv.step(policy(venv))
        ended = np_(terminated) & active
        for k in np.flatnonzero(ended):
            results[int(infos["index"][k])] = (float(rewards[k]), int(infos["glimpses"][k]), bool(infos["correct"][k]))
            ends += 1
        refill = np.flatnonzero(ended)[: max(0, n_images - next_index)]
        active[np.flatnonzero(ended)[len(refill) :]] = False
        if len(refill):
            mask = np.isin(np.arange(n), refill)
            venv.reset(options={"reset_mask": mask, "indices": np.arange(next_index, next_index + len(refill))})
            next_index += len(refill)
    assert ends == len(results)
    return results


def random_stop_policy(seed: int):
    rng = np.random.default_rng(seed)

    def policy(venv):
        n = venv.num_envs
        return {
            "location": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "label": rng.integers(0, 10, n),
            "stop": (rng.random(n) < 0.35).astype(np.int64),
        }

    return policy


def test_evaluation_visits_every_image_once_and_both_backends_agree(data_dir):
    n_images = 300
    kwargs = dict(data_dir=data_dir, split="val", answer="any_step", glimpse_cost=COST, **SMALL)
    numpy_results = evaluate(GlimpseVectorEnv(16, **kwargs), random_stop_policy(0), n_images)
    torch_results = evaluate(GlimpseVectorEnv(16, device="cpu", **kwargs), random_stop_policy(0), n_images)
    assert sorted(numpy_results) == list(range(n_images))
    assert torch_results == numpy_results
    glimpses = [g for _, g, _ in numpy_results.values()]
    assert min(glimpses) == 1 and max(glimpses) == 4 and len(set(glimpses)) == 4  # mixed lengths
    for reward, g, correct in numpy_results.values():
        assert reward == float(correct) - COST * g


def test_both_backends_step_the_same_val_episodes_with_stops(data_dir):
    kwargs = dict(data_dir=data_dir, split="test", answer="any_step", glimpse_cost=COST, **SMALL)
    envs = [GlimpseVectorEnv(8, **kwargs), GlimpseVectorEnv(8, device="cpu", **kwargs)]
    for e in envs:
        e.reset(options={"indices": np.arange(100, 108)})
    restarted = np.zeros(8, dtype=bool)
    for step in range(4):
        action = random_stop_policy(step)(envs[0])
        action["stop"][step] = 1  # someone answers early every step
        out_n = envs[0].step(action)
        out_t = envs[1].step({k: torch.as_tensor(v) for k, v in action.items()} if step % 2 else action)
        # an env that restarts draws a random image, from two random streams: compare the others
        restarted |= out_n[4].get("_index", np.zeros(8, bool)) & ~out_n[2]
        same = ~restarted
        np.testing.assert_allclose(out_t[0]["glimpse"].numpy()[same], out_n[0]["glimpse"][same], atol=1e-5)
        assert np.array_equal(out_t[1].numpy()[same], out_n[1][same]) and out_n[1].dtype == out_t[1].numpy().dtype
        assert np.array_equal(out_t[2].numpy(), out_n[2]) and not out_t[3].numpy().any()
        assert out_n[4].keys() == out_t[4].keys()
        ended = out_n[2] & same
        for key in ("label", "correct", "glimpses"):
            if key in out_n[4]:
                assert np.array_equal(out_n[4][key][ended], out_t[4][key].numpy()[ended]), (step, key)
    assert restarted.any() and not restarted.all()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, kind, match",
    [
        (dict(answer="sometimes"), ValueError, "answer must be 'last_step' or 'any_step', got 'sometimes'"),
        (dict(answer=None), ValueError, "answer must be 'last_step' or 'any_step', got None"),
        (dict(answer="any_step", glimpse_cost=-0.1), ValueError, "glimpse_cost must be a finite number >= 0"),
        (dict(answer="any_step", glimpse_cost=float("nan")), ValueError, "glimpse_cost must be a finite number >= 0"),
        (dict(answer="any_step", glimpse_cost=float("inf")), ValueError, "glimpse_cost must be a finite number >= 0"),
        (dict(answer="any_step", glimpse_cost="0.1"), TypeError, "glimpse_cost must be a number >= 0, got '0.1'"),
        (dict(answer="any_step", glimpse_cost=True), TypeError, "glimpse_cost must be a number >= 0, got True"),
        (dict(glimpse_cost=0.1), ValueError, "glimpse_cost=0.1 needs answer='any_step'"),
    ],
)
def test_bad_task_options_are_one_clear_error(data_dir, kwargs, kind, match):
    for make in (
        lambda: GlimpseEnv(data_dir=data_dir, **kwargs),
        lambda: GlimpseVectorEnv(2, data_dir=data_dir, **kwargs),
    ):
        assert match in error_of(make, kind)


def test_a_zero_cost_is_allowed_without_the_option(data_dir):
    assert GlimpseEnv(data_dir=data_dir, glimpse_cost=0).config.glimpse_cost == 0


@pytest.mark.parametrize("stop", [2, -1, 0.5, float("nan"), "1", None, [1], np.array([0, 1]), np.float32(1.0)])
def test_a_bad_stop_flag_is_one_clear_error(env, stop):
    env.reset(seed=0)
    message = error_of(lambda: env.step(act(stop=stop)))
    assert message.startswith("action['stop'] must be 0 (look again) or 1 (answer now), got")
    assert int(env.task.t[0]) == 1 and not env.task.done[0]  # nothing happened


BAD_STOPS = [
    ([2, 0, 0], "got [2] in envs [0]"),
    ([0, -1, 0], "got [-1] in envs [1]"),
    ([0.5, 0, 0], "integers or bools"),
    ([0, 0, float("nan")], "integers or bools"),
    ([1, 0], "must have shape (3,) (one flag per env), got shape (2,)"),
    ([[1, 0, 0]], "must have shape (3,) (one flag per env), got shape (1, 3)"),
    (["1", "0", "0"], "integers or bools"),
]


@pytest.mark.parametrize("stop, match", BAD_STOPS)
@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_bad_vector_stop_flag_is_one_clear_error(data_dir, stop, match, device):
    venv = GlimpseVectorEnv(3, data_dir=data_dir, answer="any_step", device=device)
    venv.reset(seed=0)
    action = acts([0, 0, 0], [0, 0, 0])
    action["stop"] = stop
    message = error_of(lambda: venv.step(action))
    assert message.startswith("action['stop'] must") and match in message
    if device and isinstance(stop[0], (int, float)):  # a tensor gets the same message as an array
        action["stop"] = torch.as_tensor(stop)
        assert match in error_of(lambda: venv.step(action))
    assert venv.task.t.tolist() == [1, 1, 1]


def test_the_action_keys_must_match_the_option(data_dir, env):
    env.reset(seed=0)
    message = error_of(lambda: env.step({"location": np.zeros(2, np.float32), "label": 0}))
    assert (
        message
        == "action must be a dict with exactly the keys 'location', 'label' and 'stop', got ['label', 'location']"
    )
    default = GlimpseEnv(data_dir=data_dir)
    default.reset(seed=0)
    message = error_of(lambda: default.step(act()))
    assert message.endswith("got ['label', 'location', 'stop'] ('stop' needs answer='any_step')")
    venv = GlimpseVectorEnv(2, data_dir=data_dir)
    venv.reset(seed=0)
    assert "('stop' needs answer='any_step')" in error_of(lambda: venv.step(acts([0, 0], [0, 0])))
