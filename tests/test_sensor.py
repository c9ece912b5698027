"""The retina on small synthetic canvases: exact pixels, the location convention, zero padding, area averages."""

import numpy as np
import pytest

from ram_env.sensor import Retina


def glimpse(canvas: np.ndarray, location, patch_size=4, n_patches=3, scale=2) -> np.ndarray:
    """The glimpse ``(n_patches, p, p)`` of one uint8 canvas at one location, through the batched path."""
    retina = Retina(canvas.shape[0], patch_size, n_patches, scale)
    g = retina(retina.block_sums(canvas[None]), np.array([location], dtype=np.float32))
    assert g.shape == (1, n_patches, 1, patch_size, patch_size) and g.dtype == np.float32
    return g[0, :, 0]


def at_pixel(px: float, size: int) -> float:
    """The location coordinate of the centre of pixel ``px`` on a canvas ``size`` pixels wide."""
    return (px + 0.5) / size * 2.0 - 1.0


def reference(canvas: np.ndarray, top_left, patch_size: int, block: int) -> np.ndarray:
    """The reference's method for one patch: zero-pad, slice, average ``block x block`` blocks."""
    pad = patch_size * block * 2
    padded = np.pad(canvas.astype(np.float64), pad)
    x0, y0 = int(top_left[0]) + pad, int(top_left[1]) + pad
    side = patch_size * block
    patch = padded[y0 : y0 + side, x0 : x0 + side]
    return patch.reshape(patch_size, block, patch_size, block).mean(axis=(1, 3)) / 255.0


# ------------------------------------------------------------------------------------ block sums
@pytest.mark.parametrize(
    "shape, patch, n, scale, dtype",
    [
        ((2, 1, 5, 7), 2, 2, 2, np.int16),
        ((3, 3, 20, 16), 4, 3, 2, np.int16),
        ((2, 2, 30, 30), 3, 3, 3, np.int16),
        ((2, 1, 9, 9), 3, 2, 1, np.int16),
        ((2, 1, 40, 36), 2, 5, 2, np.int32),
    ],  # 255 * 16**2 does not fit int16
)
def test_block_sums_are_every_block_sum_zero_padded(shape, patch, n, scale, dtype):
    canvases = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    retina = Retina(shape[2:], patch, n, scale)
    sums = retina.block_sums(canvases)
    pad, (b, c, h, w) = retina.pad, shape
    assert pad == scale ** (n - 1) and sums.dtype == dtype
    assert sums.shape == (b, n, h + 2 * pad, c, w + 2 * pad)
    padded = np.pad(canvases.astype(np.int64), ((0, 0), (0, 0), (pad, 2 * pad), (pad, 2 * pad)))
    for i in range(n):
        k = scale**i
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
        windows = windows[:, :, : h + 2 * pad, : w + 2 * pad]
        assert np.array_equal(sums[:, i].transpose(0, 2, 1, 3), windows.sum(axis=(4, 5))), i
    out = retina.zeros(b, c)
    assert retina.block_sums(canvases, out=out) is out and np.array_equal(out, sums)
    assert np.array_equal(retina.block_sums(canvases[:, :1].reshape(b, h, w)), sums[:, :, :, :1])


# ------------------------------------------------------------------------------------ coordinates
def test_location_convention_top_left_bottom_right_centre():
    retina = Retina(16, 4, 3, 2)
    assert retina.sizes.tolist() == [4, 8, 16]
    tl = retina.top_left(np.array([[-1, -1], [1, 1], [0, 0], [-1, 1]], dtype=np.float32))
    # Each patch is centred on the location's point: (-1,-1) is the canvas corner (0, 0), (1,1) the corner
    # (16, 16), (0,0) the centre (8, 8); x is the column, y the row.
    assert tl[0].tolist() == [[-2, -2], [-4, -4], [-8, -8]]
    assert tl[1].tolist() == [[14, 14], [12, 12], [8, 8]]
    assert tl[2].tolist() == [[6, 6], [4, 4], [0, 0]]
    assert tl[3].tolist() == [[-2, 14], [-4, 12], [-8, 8]]


def test_single_lit_pixel_each_scale():
    canvas = np.zeros((16, 16), np.uint8)
    canvas[5, 9] = 255  # row y=5, column x=9
    g = glimpse(canvas, (at_pixel(9, 16), at_pixel(5, 16)))
    # Centred on the pixel, every patch's top-left is the pixel minus (size/2 - 1): the lit pixel sits at
    # patch pixel (size/2 - 1), i.e. output pixel (1, 1) at every scale, averaged over 1, 4 and 16 pixels.
    for i, value in enumerate([1.0, 0.25, 0.0625]):
        expect = np.zeros((4, 4), np.float32)
        expect[1, 1] = value
        assert (g[i] == expect).all(), i


def test_single_lit_pixel_x_is_the_column():
    canvas = np.zeros((16, 16), np.uint8)
    canvas[5, 9] = 255
    g = glimpse(canvas, (at_pixel(10, 16), at_pixel(5, 16)), n_patches=1)  # one pixel to the right of it
    expect = np.zeros((4, 4), np.float32)
    expect[1, 0] = 1.0
    assert (g[0] == expect).all()
    g = glimpse(canvas, (at_pixel(9, 16), at_pixel(6, 16)), n_patches=1)  # one pixel below it
    expect = np.zeros((4, 4), np.float32)
    expect[0, 1] = 1.0
    assert (g[0] == expect).all()


@pytest.mark.parametrize(
    "location, pixel, where",
    [((-1, -1), (0, 0), (2, 2)), ((1, 1), (15, 15), (1, 1)), ((0, 0), (8, 8), (2, 2)), ((1, -1), (15, 0), (2, 1))],
)
def test_corners_and_centre(location, pixel, where):
    canvas = np.zeros((16, 16), np.uint8)
    canvas[pixel[1], pixel[0]] = 255
    g = glimpse(canvas, location, n_patches=1)
    expect = np.zeros((4, 4), np.float32)
    expect[where[0], where[1]] = 1.0  # (row, column) in the patch
    assert (g[0] == expect).all()


# ------------------------------------------------------------------------------------ borders
def test_constant_image_at_the_corner_reads_zero_outside():
    canvas = np.full((16, 16), 200, np.uint8)
    g = glimpse(canvas, (-1, -1))
    # Every patch is centred on the corner, so only its bottom-right quarter of output pixels lies on
    # the canvas; every other output pixel's rows or columns are all outside and read 0.
    inside = np.float32(200 / 255)
    for i in range(3):
        expect = np.zeros((4, 4), np.float32)
        expect[2:, 2:] = inside
        assert np.array_equal(g[i], expect), i


def test_constant_image_blocks_that_straddle_the_border_average_in_zeros():
    canvas = np.full((16, 16), 255, np.uint8)
    # Centre on the canvas point (1, 1): the 8-pixel patch (2x2 blocks) covers pixels -3..4, so block 1
    # holds one pixel outside and one inside; the 4-pixel patch covers -1..2.
    g = glimpse(canvas, (at_pixel(0.5, 16), at_pixel(0.5, 16)))
    fraction = {0: np.array([0, 1, 1, 1.0]), 1: np.array([0, 0.5, 1, 1]), 2: np.array([0, 0.25, 1, 1])}
    # patch 2: 16 pixels from -7..8 in blocks of 4: block 1 is -3..0, one of its four columns inside.
    for i in range(3):
        assert np.allclose(g[i], np.outer(fraction[i], fraction[i]), atol=1e-7), i


def test_far_outside_reads_zero_and_full_white_reads_exactly_one():
    canvas = np.full((16, 16), 255, np.uint8)
    g = glimpse(canvas, (0, 0), n_patches=2)
    assert (g[0] == 1.0).all() and (g[1] == 1.0).all()  # patch 1 is 8 px: entirely inside
    g = glimpse(canvas, (0, 0), n_patches=3)
    assert (g[2] == 1.0).all()  # 16 px at (0, 0): exactly the canvas
    g = glimpse(canvas, (0, 0), n_patches=4)
    expect = np.zeros((4, 4), np.float32)
    expect[1:3, 1:3] = 1.0  # 32 px: the canvas is the middle quarter
    assert np.array_equal(g[3], expect)


# ------------------------------------------------------------------------------------ area averages
def test_each_scale_is_the_block_average():
    canvas = np.zeros((8, 8), np.uint8)
    canvas[0::2, 0::2] = 255  # a checkerboard: pixel (x, y) is lit when x + y is even,
    canvas[1::2, 1::2] = 255  # so every aligned 2x2 or 4x4 block averages to exactly 1/2
    g = glimpse(canvas, (0, 0), patch_size=2, n_patches=3, scale=2)  # sizes 2, 4, 8
    assert np.array_equal(g[0], np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))  # pixels (3..4, 3..4)
    assert (g[1] == 0.5).all() and (g[2] == 0.5).all()


@pytest.mark.parametrize("size, patch, n, scale", [(28, 8, 1, 2), (60, 12, 3, 2), (100, 12, 4, 2), (30, 5, 3, 3)])
def test_batched_retina_matches_the_seed_method_everywhere(size, patch, n, scale):
    rng = np.random.default_rng(size)
    canvases = rng.integers(0, 256, (5, size, size)).astype(np.uint8)
    retina = Retina(size, patch, n, scale)
    locations = np.concatenate([rng.uniform(-1, 1, (40, 2)), [[-1, -1], [1, 1], [-1, 1], [1, -1], [0, 0]]]).astype(
        np.float32
    )
    rows = rng.integers(0, 5, len(locations))
    sums = retina.block_sums(canvases)
    g = retina(sums, locations, rows)
    tl = retina.top_left(locations)
    for k in range(len(locations)):
        for i in range(n):
            expect = reference(canvases[rows[k]], tl[k, i], patch, scale**i)
            assert np.allclose(g[k, i, 0], expect, atol=1e-6, rtol=0), (k, i)
        # the one-location path gives bit-identical numbers
        assert np.array_equal(retina.one(sums[rows[k]], *locations[k].tolist()), g[k])
    assert g.min() >= 0.0 and g.max() <= 1.0
    out = np.empty_like(g)
    assert retina(sums, locations, rows, out=out) is out and np.array_equal(out, g)


def test_default_rows_is_one_canvas_per_location():
    rng = np.random.default_rng(1)
    canvases = rng.integers(0, 256, (3, 20, 20)).astype(np.uint8)
    retina = Retina(20, 4, 2, 2)
    locations = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
    sums = retina.block_sums(canvases)
    assert np.array_equal(retina(sums, locations), retina(sums, locations, np.arange(3)))
    assert retina(sums, np.zeros((0, 2), np.float32)).shape == (0, 2, 1, 4, 4)


def test_one_location_outside_the_unit_square_is_still_zero_padded():
    canvas = np.full((16, 16), 255, np.uint8)
    retina = Retina(16, 4, 2, 2)
    sums = retina.block_sums(canvas[None])
    for location in [(-3.0, 0.0), (0.0, 2.5), (1.2, -1.3)]:
        batched = retina(sums, np.array([location]))[0]
        assert np.array_equal(retina.one(sums[0], *location), batched)
    assert (retina.one(sums[0], -3.0, 0.0) == 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(canvas_size=28, patch_size=30, n_patches=1, scale=2), "patch_size 30 is larger than the 28x28 canvas"),
        (dict(canvas_size=28, patch_size=8, n_patches=0, scale=2), "n_patches must be a positive integer, got 0"),
        (dict(canvas_size=28, patch_size=8, n_patches=2, scale=1.5), "scale must be a positive integer, got 1.5"),
        (dict(canvas_size=28, patch_size=-1, n_patches=2, scale=2), "patch_size must be a positive integer"),
    ],
)
def test_impossible_retina_geometry(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Retina(**kwargs)


def test_results_are_fresh_arrays_whatever_the_batch_size():
    """The retina keeps scratch buffers between calls; what it returns must never alias them."""
    rng = np.random.default_rng(2)
    canvases = rng.integers(0, 256, (6, 30, 30)).astype(np.uint8)
    retina = Retina(30, 6, 3, 2)
    sums = retina.block_sums(canvases)
    calls = [(rng.uniform(-1, 1, (b, 2)).astype(np.float32), rng.integers(0, 6, b)) for b in (6, 2, 6, 1, 5, 3, 6)]
    results = [retina(sums, loc, rows) for loc, rows in calls]
    for (loc, rows), got in zip(calls, results):
        assert np.array_equal(got, retina(sums, loc, rows))
        for k in range(len(loc)):
            assert np.array_equal(got[k], retina.one(sums[rows[k]], *loc[k].tolist()))


def test_absurd_sizes_are_refused():
    with pytest.raises(ValueError, match="canvas_size 4096 is too large"):
        Retina(4096, 8, 1, 2)
    with pytest.raises(
        ValueError, match=r"blocks of scale\*\*\(n_patches - 1\) = 2\*\*5 pixels, more than the 28x28 canvas is wide"
    ):
        Retina(28, 8, 6, 2)
    Retina(28, 8, 5, 2)  # blocks of 16 px: the largest patch is 128 px, mostly padding, but it works
