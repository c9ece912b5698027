"""Canvases: digit placement, clutter only when asked, uint8, fixed val/test canvases, varying train canvases."""

import numpy as np
import pytest

from ram_env import GlimpseEnv, GlimpseVectorEnv
from ram_env.canvas import DIGIT, CanvasSpec, Layout, draw, sample_layout


@pytest.fixture(scope="module")
def digits():
    """Synthetic 'digits': image k is filled with the value k + 1 (never 0), so placement is visible."""
    values = np.arange(1, 51, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None], (50, DIGIT, DIGIT)).copy()


def test_plain_canvas_is_the_digit(digits):
    spec = CanvasSpec()
    layout = sample_layout(spec, np.array([3, 7, 7]), len(digits), np.random.default_rng(0))
    out = draw(spec, digits, layout)
    assert out.dtype == np.uint8 and out.shape == (3, DIGIT, DIGIT)
    assert np.array_equal(out, digits[[3, 7, 7]])


def test_translated_digit_sits_at_its_offset_and_nothing_else_is_drawn(digits):
    spec = CanvasSpec(size=60)
    rng = np.random.default_rng(1)
    layout = sample_layout(spec, rng.integers(0, 50, 400), len(digits), rng)
    out = draw(spec, digits, layout)
    assert out.dtype == np.uint8 and out.shape == (400, 60, 60)
    for b in range(0, 400, 7):
        x, y = layout.offset[b]
        mask = np.zeros((60, 60), bool)
        mask[y : y + DIGIT, x : x + DIGIT] = True
        assert (out[b][mask] == layout.index[b] + 1).all()
        assert (out[b][~mask] == 0).all()  # no clutter unless asked
    # Offsets are uniform over every position that keeps the digit on the canvas: both extremes occur.
    assert layout.offset.min() == 0 and layout.offset.max() == 60 - DIGIT


def test_real_digit_is_copied_exactly():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (10, DIGIT, DIGIT)).astype(np.uint8)
    spec = CanvasSpec(size=100)
    layout = Layout(
        index=np.array([4]),
        offset=np.array([[72, 5]]),
        clutter_index=np.zeros((1, 0), np.int64),
        clutter_crop=np.zeros((1, 0, 2), np.int64),
        clutter_offset=np.zeros((1, 0, 2), np.int64),
    )
    out = draw(spec, images, layout)[0]
    assert np.array_equal(out[5:33, 72:100], images[4])  # x is the column, y the row
    out[5:33, 72:100] = 0
    assert not out.any()


def test_clutter_pieces_are_crops_of_other_digits_under_the_target():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (10, DIGIT, DIGIT)).astype(np.uint8)
    spec = CanvasSpec(size=60, n_clutter=2, clutter_size=8)
    layout = Layout(
        index=np.array([0]),
        offset=np.array([[30, 30]]),
        clutter_index=np.array([[5, 6]]),
        clutter_crop=np.array([[[3, 10], [20, 0]]]),
        clutter_offset=np.array([[[0, 0], [4, 2]]]),
    )
    out = draw(spec, images, layout)[0]
    piece_a = images[5, 10:18, 3:11]  # crop (x=3, y=10)
    piece_b = images[6, 0:8, 20:28]  # crop (x=20, y=0)
    expect = np.zeros((60, 60), np.uint8)
    expect[0:8, 0:8] = piece_a
    expect[2:10, 4:12] = np.maximum(expect[2:10, 4:12], piece_b)  # overlapping strokes: the brighter pixel
    expect[30:58, 30:58] = np.maximum(expect[30:58, 30:58], images[0])
    assert np.array_equal(out, expect)


def test_clutter_present_only_when_asked(digits):
    rng = np.random.default_rng(4)
    for n_clutter in (0, 4):
        spec = CanvasSpec(size=60, n_clutter=n_clutter, clutter_size=8)
        layout = sample_layout(spec, rng.integers(0, 50, 200), len(digits), rng)
        out = draw(spec, digits, layout)
        outside = []
        for b in range(200):
            x, y = layout.offset[b]
            c = out[b].copy()
            c[y : y + DIGIT, x : x + DIGIT] = 0
            outside.append(int(c.astype(bool).sum()))
        if n_clutter == 0:
            assert max(outside) == 0
        else:
            assert np.mean(outside) > 64  # four 8x8 pieces, partly hidden under the digit
            assert layout.clutter_index.shape == (200, 4) and layout.clutter_offset.max() <= 60 - 8


def test_draw_into_out_overwrites_it(digits):
    spec = CanvasSpec(size=60, n_clutter=3)
    layout = sample_layout(spec, np.arange(5), len(digits), np.random.default_rng(5))
    out = np.full((5, 60, 60), 9, np.uint8)
    assert draw(spec, digits, layout, out=out) is out
    assert np.array_equal(out, draw(spec, digits, layout))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=20), "translated_size 20 is smaller than the 28x28 digit"),
        (dict(size=28, n_clutter=4), "clutter needs a translated canvas"),
        (dict(size=60, n_clutter=-1), "n_clutter must be >= 0"),
        (dict(size=60, n_clutter=2, clutter_size=40), "clutter_size must be in 1..28"),
    ],
)
def test_impossible_canvas_geometry(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CanvasSpec(**kwargs)


# ------------------------------------------------------------------------ fixed val/test canvases (real data)
TASK = dict(translated_size=60, n_clutter=4, clutter_size=8, n_glimpses=8, patch_size=12, n_patches=3, scale=2)


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_and_test_canvases_are_a_function_of_the_image_only(data_dir, split):
    picks = np.array([10, 11, 12, 13, 4999])
    a = GlimpseVectorEnv(num_envs=5, split=split, data_dir=data_dir, **TASK)
    a.reset(seed=0, options={"indices": picks})
    b = GlimpseVectorEnv(num_envs=2, split=split, data_dir=data_dir, **TASK)  # another instance, other batches
    b.reset(seed=123, options={"indices": picks[[4, 2]]})
    assert np.array_equal(b.task.canvases, a.task.canvases[[4, 2]])
    b.reset(options={"indices": picks[[1, 0]]})
    assert np.array_equal(b.task.canvases, a.task.canvases[[1, 0]])
    single = GlimpseEnv(split=split, data_dir=data_dir, **TASK)
    single.reset(seed=7, options={"index": 12})
    assert np.array_equal(single.task.canvases[0], a.task.canvases[2])
    assert a.task.canvases.dtype == np.uint8
    # ... and really translated and cluttered: not all images sit at the same place
    assert len({tuple(np.argwhere(c).min(0)) for c in a.task.canvases}) > 1


def test_val_canvases_differ_between_tasks_but_not_between_runs(data_dir):
    plain = dict(TASK, n_clutter=0)
    a = GlimpseEnv(split="val", data_dir=data_dir, **plain)
    a.reset(options={"index": 3})
    first = a.task.canvases[0].copy()
    for seed in (1, 2):
        a.reset(seed=seed, options={"index": 3})
        assert np.array_equal(a.task.canvases[0], first)


def test_train_canvases_vary(data_dir):
    env = GlimpseEnv(split="train", data_dir=data_dir, **TASK)
    seen = set()
    for _ in range(5):
        env.reset(options={"index": 0})
        seen.add(env.task.canvases[0].tobytes())
    assert len(seen) == 5
    # but reproducibly under a seed
    env.reset(seed=11, options={"index": 0})
    again = GlimpseEnv(split="train", data_dir=data_dir, **TASK)
    again.reset(seed=11, options={"index": 0})
    assert np.array_equal(env.task.canvases, again.task.canvases)


def test_the_target_digit_is_on_the_canvas(data_dir):
    env = GlimpseEnv(split="test", data_dir=data_dir, **TASK)
    env.reset(options={"index": 5})
    layout = env.task.fixed_layout[np.array([5])]
    x, y = layout.offset[0]
    digit = env.task.images[5, 0]
    # the digit is drawn last: every one of its pixels shows at least its own brightness
    assert (env.task.canvases[0, 0, y : y + DIGIT, x : x + DIGIT] >= digit).all()
