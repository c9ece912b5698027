"""Answer kinds and several digits: K labels in reading order, their sum, the digit's centre, digit sizes.

Spaces and episode semantics for K = 1, 2, 3; reading order; reward values (fraction right, the sum, the
location formula on hand-made points); val/test episodes fixed; the numpy and torch backends equal; area
resampling exact; bad input refused in one line; the paper's tasks unchanged.
"""

import hashlib
import math

import numpy as np
import pytest

from ram_env import GlimpseEnv, GlimpseVectorEnv, objects
from ram_env.answers import FAR, Location
from ram_env.backend import NUMPY

PAIRS = dict(translated_size=100, n_objects=2, n_glimpses=3, patch_size=12, n_patches=3)
SIZES = dict(translated_size=60, digit_size=(14, 42), n_glimpses=2, patch_size=12, n_patches=3)


def play(env, answer):
    """Step a single env to its end with a fixed location; answer with ``answer(info_so_far)`` on the last step."""
    key = "point" if "point" in env.action_space.spaces else "label"
    for _ in range(env.unwrapped.config.n_glimpses):
        action = {"location": np.zeros(2, np.float32), key: answer(env)}
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    return reward, info


# ------------------------------------------------------------------------------ spaces and episodes, K = 1, 2, 3
@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_labels_space_reward_is_the_fraction_right_and_info_says_which(data_dir, k):
    env = GlimpseEnv(data_dir=data_dir, translated_size=100, n_objects=k, n_glimpses=2, split="val")
    space = env.action_space["label"]
    if k == 1:
        assert space.n == 10  # the paper's Discrete(10)
    else:
        assert tuple(space.nvec) == (10,) * k and space.dtype == np.int64
    for wrong in range(k + 1):  # answer the first `wrong` labels wrong
        env.reset(seed=0, options={"index": 7})
        truth = np.atleast_1d(env.unwrapped.task.label[0]).copy()
        answer = truth.copy()
        answer[:wrong] = (answer[:wrong] + 1) % 10
        reward, info = play(env, lambda e: answer if k > 1 else int(answer[0]))
        assert reward == pytest.approx((k - wrong) / k)
        assert info["correct"] == (wrong == 0)
        assert np.array_equal(np.atleast_1d(info["label"]), truth)
        if k > 1:
            assert info["right"].tolist() == [i >= wrong for i in range(k)]


def test_the_vector_env_pays_and_reports_as_the_single_one(data_dir):
    k, n = 3, 5
    vec = GlimpseVectorEnv(num_envs=n, data_dir=data_dir, split="test", translated_size=100, n_objects=k, n_glimpses=2)
    vec.reset(options={"indices": np.arange(n)})
    truth = vec.task.label.copy()
    assert truth.shape == (n, k)
    answer = truth.copy()
    answer[1, 0] = (answer[1, 0] + 1) % 10
    answer[2] = (answer[2] + 1) % 10
    for _ in range(2):
        _, reward, terminated, _, info = vec.step({"location": np.zeros((n, 2), np.float32), "label": answer})
    assert terminated.all()
    assert reward.tolist() == pytest.approx([1, 2 / 3, 0, 1, 1])
    assert info["correct"].tolist() == [True, False, False, True, True]
    assert info["right"].shape == (n, k) and info["right"][1].tolist() == [False, True, True]
    assert np.array_equal(info["label"], truth) and info["_right"].all()
    single = GlimpseEnv(data_dir=data_dir, split="test", translated_size=100, n_objects=k, n_glimpses=2)
    single.reset(options={"index": 1})
    assert play(single, lambda e: answer[1])[0] == pytest.approx(2 / 3)


def test_reading_order_is_left_to_right_by_centre_then_top_to_bottom():
    rng = np.random.default_rng(0)
    placed = objects.sample(100, 3, (14, 42), np.arange(500), 500, rng, NUMPY)
    centre = 2 * placed.offset + placed.size[..., None]  # twice the centres, exact
    x, y = centre[..., 0], centre[..., 1]
    assert ((x[:, :-1] < x[:, 1:]) | ((x[:, :-1] == x[:, 1:]) & (y[:, :-1] < y[:, 1:]))).all()
    # hand-made: three boxes; the middle one by x is the lowest; a tie in x goes top to bottom
    made = objects.Objects(
        index=np.array([[10, 11, 12], [20, 21, 22]]),
        offset=np.array([[[50, 0], [0, 60], [20, 0]], [[5, 60], [5, 0], [60, 30]]]),
        size=np.array([[20, 20, 30], [28, 28, 28]]),
    )
    ordered = objects._reading_order(made, 100, NUMPY)
    assert ordered.index.tolist() == [[11, 12, 10], [21, 20, 22]]


def test_digits_never_overlap_and_sizes_cover_the_range():
    rng = np.random.default_rng(1)
    placed = objects.sample(56, 4, (14, 28), np.arange(2000), 2000, rng, NUMPY)  # a tight canvas
    assert not objects._overlap(placed.offset, placed.size, NUMPY).any()
    assert placed.size.min() == 14 and placed.size.max() == 28
    assert (placed.offset >= 0).all() and (placed.offset + placed.size[..., None] <= 56).all()


# ------------------------------------------------------------------------------ the sum and the location
def test_sum_is_paid_only_when_right_and_info_carries_the_digits(data_dir):
    env = GlimpseEnv(data_dir=data_dir, split="val", target="sum", **PAIRS)
    assert env.action_space["label"].n == 19
    for delta, paid in ((0, 1.0), (1, 0.0)):
        env.reset(options={"index": 3})
        reward, info = play(env, lambda e: int(e.unwrapped.task.label[0]) + delta)
        assert reward == paid and info["correct"] == bool(paid)
        assert info["label"] == info["labels"].sum() and info["labels"].shape == (2,)


@pytest.mark.parametrize(
    "point, centre, half, reward, inside",
    [
        ((0.2, -0.3), (0.2, -0.3), 0.1, 1.0, True),  # exact
        ((-1.0, -1.0), (1.0, 1.0), 0.1, 0.0, False),  # corner to corner
        ((0.5, 0.0), (0.2, 0.4), 0.5, 1 - 0.5 / FAR, True),  # a 3-4-5 triangle, inside the box
        ((0.5, 0.0), (0.2, 0.4), 0.35, 1 - 0.5 / FAR, False),  # the same distance, outside a smaller box
    ],
)
def test_location_reward_on_hand_made_points(point, centre, half, reward, inside):
    kind = Location(10, 1, NUMPY)
    assert kind.score_one(np.array(point), np.array(centre), half) == (pytest.approx(reward), inside)
    r, right = kind.score(np.array([point], np.float32), np.array([centre], np.float32), np.array([half]))
    assert r[0] == pytest.approx(reward, abs=1e-6) and right[0] == inside
    assert math.isclose(FAR, 2 * math.sqrt(2))


def test_location_task_pays_one_for_the_centre_and_shows_both_points(data_dir):
    env = GlimpseEnv(data_dir=data_dir, split="test", translated_size=60, target="location", render_mode="rgb_array")
    assert env.action_space["point"].shape == (2,) and "label" not in env.action_space.spaces
    env.reset(options={"index": 0})
    task = env.unwrapped.task
    x, y = task.fixed_layout.offset[0]
    expect = np.array([(2 * x + 28) / 60 - 1, (2 * y + 28) / 60 - 1], np.float32)  # the digit's box centre
    assert np.array_equal(task.centre[0], expect)
    before = env.render()
    reward, info = play(env, lambda e: expect)
    assert reward == 1.0 and info["correct"] and np.array_equal(info["centre"], expect) and info["distance"] == 0
    assert info["label"] == task.labels[0]
    assert not np.array_equal(env.render(), before)
    env.reset(options={"index": 0})
    reward, info = play(env, lambda e: np.clip(expect + [0.6, 0.0], -1, 1).astype(np.float32))
    assert reward == pytest.approx(1 - 0.6 / FAR, abs=1e-6) and not info["correct"]


# ------------------------------------------------------------------------------ sizes, determinism, backends
def test_area_resampling_is_exact():
    image = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 251
    half = objects.resample(image.astype(np.uint8), 14, NUMPY)[0]
    blocks = image[0].reshape(14, 2, 14, 2).sum((1, 3))
    assert np.array_equal(half, (blocks + 2) // 4)  # 2x2 means, halves rounded up
    flat = np.full((2, 28, 28), 200, np.uint8)
    for side in (14, 20, 36, 42):
        assert (objects.resample(flat, side, NUMPY) == 200).all()


@pytest.mark.parametrize("kwargs", [SIZES, dict(PAIRS, n_clutter=4), dict(PAIRS, target="location", n_objects=1)])
def test_val_and_test_episodes_are_fixed_and_equal_on_both_backends(data_dir, kwargs):
    torch = pytest.importorskip("torch")
    picks = np.array([4, 9, 4999, 0])
    a = GlimpseVectorEnv(num_envs=4, split="val", data_dir=data_dir, **kwargs)
    a.reset(seed=0, options={"indices": picks})
    b = GlimpseVectorEnv(num_envs=2, split="val", data_dir=data_dir, device="cpu", **kwargs)
    b.reset(seed=5, options={"indices": torch.as_tensor(picks[[2, 0]])})
    assert np.array_equal(b.task.canvases.numpy(), a.task.canvases[[2, 0]])
    assert np.array_equal(b.task.truth.numpy(), a.task.truth[[2, 0]])
    single = GlimpseEnv(split="val", data_dir=data_dir, **kwargs)
    single.reset(seed=9, options={"index": 9})
    assert np.array_equal(single.task.canvases[0], a.task.canvases[1])
    key = "point" if "point" in a.single_action_space.spaces else "label"
    answer = a.task.truth.copy()
    for _ in range(a.task.n_glimpses):
        out_a = a.step({"location": np.full((4, 2), 0.25, np.float32), key: answer})
        out_b = b.step({"location": torch.full((2, 2), 0.25), key: torch.as_tensor(answer[[2, 0]])})
    np.testing.assert_allclose(out_b[0]["glimpse"].numpy(), out_a[0]["glimpse"][[2, 0]], atol=1e-6)
    np.testing.assert_allclose(out_b[1].numpy(), out_a[1][[2, 0]], atol=1e-12)
    assert out_a[1].tolist() == [1.0] * 4


def test_train_digits_vary_in_size_reproducibly(data_dir):
    env = GlimpseVectorEnv(num_envs=64, data_dir=data_dir, **SIZES)
    env.reset(seed=2)
    sizes = env.task.fixed_layout  # None on train
    assert sizes is None
    inked = [int(np.count_nonzero(c.any(0))) for c in env.task.canvases]  # columns with ink: about the digit's side
    assert max(inked) - min(inked) > 10
    again = GlimpseVectorEnv(num_envs=64, data_dir=data_dir, **SIZES)
    again.reset(seed=2)
    assert np.array_equal(again.task.canvases, env.task.canvases)


def test_the_papers_tasks_keep_their_episodes(data_dir):
    """The same episodes as before answer kinds existed (hashes taken from the code before them)."""
    env = GlimpseVectorEnv(num_envs=8, split="test", data_dir=data_dir, translated_size=60, n_clutter=4)
    env.reset(options={"indices": np.arange(8)})
    assert hashlib.sha256(env.task.canvases.tobytes()).hexdigest()[:16] == TEST_CANVASES
    env = GlimpseVectorEnv(num_envs=8, data_dir=data_dir, translated_size=60, n_clutter=4)
    env.reset(seed=0)
    assert hashlib.sha256(env.task.canvases.tobytes()).hexdigest()[:16] == TRAIN_CANVASES
    explicit = GlimpseVectorEnv(
        num_envs=8, data_dir=data_dir, translated_size=60, n_clutter=4, n_objects=1, digit_size=28, target="label"
    )
    explicit.reset(seed=0)
    assert np.array_equal(explicit.task.canvases, env.task.canvases)


TEST_CANVASES = "40e290fd9028ba76"
TRAIN_CANVASES = "d2b92a7dde6ab1bf"


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_objects=0), r"n_objects must be an integer >= 1"),
        (dict(n_objects=2), r"a 28 px canvas is too small for 2 digits of up to 28 px .* translated_size >= 56"),
        (dict(translated_size=60, n_objects=5), r"too small for 5 digits .* translated_size >= 84"),
        (dict(digit_size=(14, 42)), r"translated_size 28 is smaller than the largest digit \(42 px"),
        (dict(translated_size=60, digit_size=(30, 20)), r"digit_size \(lo, hi\) needs lo <= hi"),
        (dict(translated_size=60, digit_size=0), r"digit_size must be a side in px"),
        (dict(translated_size=60, digit_size=(1, 2, 3)), r"digit_size must be a side in px"),
        (dict(translated_size=100, n_objects=2, target="location"), r"target='location' finds one digit"),
        (dict(target="count"), r"target must be one of 'label', 'sum', 'location'"),
    ],
)
def test_impossible_tasks_are_refused_in_one_line(data_dir, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        GlimpseEnv(data_dir=data_dir, **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs, key, value, match",
    [
        (PAIRS, "label", 3, r"action\['label'\] must be 2 integer classes in \[0, 10\) \(reading order\)"),
        (PAIRS, "label", np.array([3, 10]), r"action\['label'\] must be 2 classes in \[0, 10\), got \[3, 10\]"),
        (dict(PAIRS, target="sum"), "label", 19, r"action\['label'\] must be a sum in \[0, 19\), got 19"),
        (dict(SIZES, target="location"), "point", np.array([0.0, 1.5]), r"action\['point'\] must be finite"),
        (dict(SIZES, target="location"), "point", np.zeros(3), r"action\['point'\] must have shape \(2,\)"),
    ],
)
def test_bad_answers_are_refused_in_one_line(data_dir, kwargs, key, value, match):
    env = GlimpseEnv(data_dir=data_dir, **kwargs)
    env.reset(seed=0)
    for _ in range(env.unwrapped.config.n_glimpses - 1):
        env.step(env.action_space.sample())
    with pytest.raises(ValueError, match=match):
        env.step({"location": np.zeros(2, np.float32), key: value})
    vec = GlimpseVectorEnv(num_envs=2, data_dir=data_dir, **kwargs)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=rf"action\['{key}'\]"):
        vec.step({"location": np.zeros((2, 2), np.float32), key: np.stack([value, value])})


# ------------------------------------------------------------------------------ wrappers (SB3's flat action)
@pytest.mark.parametrize(
    "kwargs, size, key",
    [
        (PAIRS, 2 + 20, "label"),
        (dict(PAIRS, n_objects=3), 2 + 30, "label"),
        (dict(SIZES, target="location"), 4, "point"),
    ],
)
def test_flat_action_holds_k_label_blocks_or_a_point(data_dir, kwargs, size, key):
    from ram_env.wrappers import FlatActionWrapper

    env = FlatActionWrapper(GlimpseEnv(data_dir=data_dir, **kwargs))
    assert env.action_space.shape == (size,)
    flat = np.zeros((5, size), np.float32)
    if key == "label":
        k = (size - 2) // 10
        flat[:, 2:] = -1
        for j in range(k):
            flat[:, 2 + 10 * j + (j + 3)] = 1  # block j's arg-max is j + 3
        native = env.to_native(flat)
        assert native["label"].shape == (5, k) and native["label"][0].tolist() == [j + 3 for j in range(k)]
    else:
        flat[:, 2:] = [0.25, -0.5]
        native = env.to_native(flat)
        assert np.array_equal(native["point"], np.tile([0.25, -0.5], (5, 1)))
    assert np.array_equal(env.from_native(native), flat)  # reversible
    env.reset(seed=0)
    for _ in range(env.unwrapped.config.n_glimpses):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
    assert terminated and 0 <= reward <= 1 and "correct" in info


def test_one_label_wrappers_refuse_other_answers_in_one_line(data_dir):
    from ram_env.wrappers import DiscreteActionWrapper, FlatActionWrapper, GradedRewardWrapper

    with pytest.raises(ValueError, match="DiscreteActionWrapper is for one label per episode; this env answers 2"):
        DiscreteActionWrapper(GlimpseEnv(data_dir=data_dir, **PAIRS))
    with pytest.raises(ValueError, match="GradedRewardWrapper is for one label per episode; this env answers a point"):
        GradedRewardWrapper(FlatActionWrapper(GlimpseEnv(data_dir=data_dir, target="location", **SIZES)))


@pytest.mark.parametrize(
    "kwargs", [dict(PAIRS, n_objects=3), dict(PAIRS, target="sum"), dict(SIZES, target="location"), SIZES]
)
def test_gymnasium_check_env_passes(data_dir, kwargs):
    from gymnasium.utils.env_checker import check_env

    check_env(GlimpseEnv(data_dir=data_dir, **kwargs), skip_render_check=True)
