"""Batched multi-scale glimpse extraction (the "retina").

A location ``(x, y)`` in ``[-1, 1]^2`` maps to the continuous pixel point ``((x + 1) / 2 * W, (y + 1) / 2 * H)``
of an ``H x W`` canvas; patch ``i`` is the square of side ``patch_size * scale**i`` whose top-left pixel is
that point minus half the side, rounded to the nearest pixel (halves round up). Each patch is area-averaged
down to ``patch_size x patch_size`` (every output pixel is the mean of a ``scale**i x scale**i`` block) and
divided by 255; pixels outside the canvas read as 0. Each channel (C = 1 gray, 3 colour) is averaged on its own
and the glimpse is ``(n_patches, C, p, p)``.

Area averages come from block sums built once per canvas (:meth:`Retina.block_sums`): for each patch's block
side ``k``, the sum of the ``k x k`` block at every top-left pixel, on a frame padded with zeros by the largest
block on every side. Level ``k`` is ``scale x scale`` blocks of level ``k / scale``, so each level costs
``2 (scale - 1)`` shifted additions of whole contiguous buffers; every output pixel is then one lookup, and
clamping a lookup into the padding is exactly zero padding. The sums are exact integers (int16 while
``255 * k**2`` fits, else int32); the only rounding is the final float32 division (exactly the correctly rounded
mean for canvases up to 256 px, whose sums fit float32's 24-bit mantissa).

The batched arithmetic is written once against a backend ``xp`` (:mod:`ram_env.backend`): numpy arrays by
default, torch tensors on a device for the torch backend; both give the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ram_env.backend import NUMPY

MAX_CANVAS = 2048  # 255 * 2048**2 < 2**31: int32 block sums cannot overflow
INT16_BLOCK = 11  # 255 * 11**2 < 2**15: blocks up to 11 px are summed in int16 (half the memory traffic)


def _canvas_shape(canvas_size) -> tuple[int, int]:
    """``(height, width)`` from a side or a pair, or a ValueError."""
    pair = tuple(canvas_size) if isinstance(canvas_size, (tuple, list)) else (canvas_size, canvas_size)
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"canvas_size must be a positive integer or a (height, width) pair, got {canvas_size!r}")
    if len(pair) != 2:
        raise ValueError(f"canvas_size must be a positive integer or a (height, width) pair, got {canvas_size!r}")
    return int(pair[0]), int(pair[1])


def suited(canvas_shape: tuple[int, int], scale: int = 2) -> dict:
    """Glimpse settings that suit a canvas: the paper's patches for 60 and 100 px, and alike in between.

    At 28 px this gives two 8 px patches where the paper's MNIST task (``RAM/MNIST-v0``) reads one.

    ``patch_size`` 8 below 48 px, 12 up to 128, a tenth of the side beyond; ``n_patches`` the fewest whose largest
    patch, doubled, covers the longer side; ``n_glimpses`` 6 up to 32 px, 8 beyond.
    """
    side = max(canvas_shape)
    patch = 8 if side < 48 else 12 if side <= 128 else side // 10
    patch = min(patch, min(canvas_shape))
    n = 1
    while 2 * patch * scale ** (n - 1) < side and n < 8:
        n += 1
    return dict(n_glimpses=6 if side <= 32 else 8, patch_size=patch, n_patches=n, scale=scale)


class Retina:
    """Extracts ``n_patches`` concentric patches around each of a batch of locations.

    :param canvas_size: side ``S`` of square canvases, or ``(height, width)``
    :param patch_size: side of every patch after downscaling
    :param n_patches: number of patches (scales)
    :param scale: each patch covers ``scale`` times the side of the previous one
    :param xp: the array backend of the block sums, locations and glimpses (:mod:`ram_env.backend`); :meth:`one`
        is numpy's alone

    The channels come with the canvases: ``(N, C, H, W)`` gives glimpses of C channels, ``(N, H, W)`` one.
    """

    def __init__(self, canvas_size, patch_size: int, n_patches: int, scale: int, xp=NUMPY):
        height, width = _canvas_shape(canvas_size)
        for name, value in (("patch_size", patch_size), ("n_patches", n_patches), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if patch_size > min(height, width):
            raise ValueError(f"patch_size {patch_size} is larger than the {height}x{width} canvas")
        if max(height, width) > MAX_CANVAS:
            raise ValueError(
                f"canvas_size {max(height, width)} is too large: the block sums are int32, so at most {MAX_CANVAS}"
            )
        if int(scale) ** (int(n_patches) - 1) > max(height, width):
            raise ValueError(
                f"the largest patch averages blocks of scale**(n_patches - 1) = {scale}**{n_patches - 1} pixels, "
                f"more than the {height}x{width} canvas is wide: use fewer patches or a smaller scale"
            )
        self.xp = xp
        self.height, self.width = height, width
        self.canvas_size = height if height == width else (height, width)
        self.patch_size = int(patch_size)
        self.n_patches = int(n_patches)
        self.scale = int(scale)
        self.blocks = self.scale ** np.arange(self.n_patches, dtype=np.int64)  # canvas pixels per output pixel
        self.sizes = self.patch_size * self.blocks  # side of each patch in canvas pixels
        # The block sums' frame: the canvas padded by the largest block on every side.
        self.pad = pad = int(self.blocks[-1])
        self.frame = (height + 2 * pad, width + 2 * pad)
        self.dtype = xp.int16 if pad <= INT16_BLOCK else xp.int32
        plane = self.frame[0] * self.frame[1]
        # Offsets of every output pixel's block inside each patch: (n_patches, patch_size).
        offsets = np.arange(self.patch_size, dtype=np.int64)[None, :] * self.blocks[:, None]
        half = self.sizes / 2.0  # float64, as in top_left
        denom = (255.0 * self.blocks**2).astype(np.float32)  # per-patch divisor, exact in float32
        self._offsets, self._half, self._denom = xp.asarray(offsets), xp.asarray(half), xp.asarray(denom)
        self._level_start = xp.asarray(np.arange(self.n_patches, dtype=np.int64)[:, None] * plane)  # (n, 1), C = 1
        self._scale_xy = xp.asarray(np.array([0.5 * width, 0.5 * height]))
        self._buffers: dict[tuple, tuple] = {}
        # For the one-location path: scalars per patch, and the clamped frame coordinates for every top-left
        # coordinate ``v`` a location in [-1, 1] can give, ``lut[v - lo]`` (saves np.clip calls), per axis.
        self._patches = []
        for i, (k, size, h) in enumerate(zip(self.blocks, self.sizes, half)):
            luts = []
            for side in (width, height):
                lo = math.floor(-h + 0.5)
                hi = math.floor(side - h + 0.5)
                luts.append((lo, np.clip(np.arange(lo, hi + 1)[:, None] + offsets[i], -pad, side + pad - 1) + pad))
            (lo_x, lut_x), (lo_y, lut_y) = luts
            self._patches.append((int(k), int(size), float(h), lo_x, lut_x, lo_y, lut_y[:, :, None], denom[i]))

    def zeros(self, n: int, channels: int = 1):
        """Zeroed block sums ``(n, n_patches, H + 2 pad, C, W + 2 pad)`` to fill with :meth:`block_sums`."""
        return self.xp.zeros((n, self.n_patches, self.frame[0], channels, self.frame[1]), self.dtype)

    def block_sums(self, canvases, out=None):
        """The block sums of uint8 canvases ``(B, [C,] H, W)``: ``(B, n_patches, H + 2 pad, C, W + 2 pad)``.

        ``sums[b, i, pad + y, c, pad + x]`` is the sum of ``canvases[b, c, y : y + k, x : x + k]`` for the block
        side ``k = scale**i``, pixels outside the canvas counting 0. Written into ``out`` when given (from
        :meth:`zeros` or a previous call: only the canvas of level 0 is written there, its padding must be 0).
        The channels of a row lie side by side, so that a colour glimpse reads neighbouring memory.
        """
        xp, h, w, pad = self.xp, self.height, self.width, self.pad
        if canvases.ndim == 3:
            canvases = canvases[:, None]
        b, c = canvases.shape[:2]
        if out is None:
            out = self.zeros(b, c)
        out[:, 0, pad : pad + h, :, pad : pad + w] = canvases.swapaxes(1, 2)
        if self.n_patches == 1:
            return out
        row = c * self.frame[1]
        part = self._scratch(("sums", b, c), lambda: (xp.empty((b, self.frame[0] * row), self.dtype),))[0]
        for i in range(1, self.n_patches):
            # Level k from level k / s: s blocks side by side, then s of those stacked. Whole buffers are shifted
            # (an env's rows one after the other): a shift that runs past a row's end lands in the next row's
            # left padding, which is wider than the shift, so reads 0, as past the canvas it should.
            step = int(self.blocks[i - 1])
            prev, level = out[:, i - 1].reshape(b, -1), out[:, i].reshape(b, -1)  # views: the levels are contiguous
            self._shifted_sum(prev, step, part)
            self._shifted_sum(part, step * row, level)
        return out

    def _shifted_sum(self, src, shift: int, out) -> None:
        """``out[:, m] = sum of src[:, m + j * shift] for j < scale`` over rows of flat buffers; past the end adds 0."""
        if self.scale == 1:
            out[...] = src
            return
        n = src.shape[1] - shift
        self.xp.add(src[:, :n], src[:, shift:], out=out[:, :n])
        out[:, n:] = src[:, n:]
        for j in range(2, self.scale):
            out[:, : -j * shift] += src[:, j * shift :]

    def top_left(self, locations):
        """Top-left pixel ``(x, y)`` of each patch: ``(B, n_patches, 2)`` int64 for locations ``(B, 2)``."""
        xp = self.xp
        centre = (xp.asarray(locations, dtype=xp.float64) + 1.0) * self._scale_xy
        return xp.astype(xp.floor(centre[:, None, :] - self._half[None, :, None] + 0.5), xp.int64)

    def __call__(self, sums, locations, rows=None, out=None):
        """Glimpses ``(B, n_patches, C, patch_size, patch_size)`` float32 in ``[0, 1]``.

        :param sums: block sums ``(N, n_patches, ...)`` from :meth:`block_sums`
        :param locations: ``(B, 2)`` locations in ``[-1, 1]``
        :param rows: which canvas each location looks at (default: location ``k`` looks at canvas ``k``)
        :param out: optional float32 array ``(B, n_patches, C, p, p)`` to write the glimpses into
        """
        xp = self.xp
        p, n, pad = self.patch_size, self.n_patches, self.pad
        c = sums.shape[3]
        row, plane = c * self.frame[1], self.frame[0] * self.frame[1]
        b = len(locations)
        if out is None:
            out = xp.empty((b, n, c, p, p), xp.float32)
        if b == 0:
            return out
        tl = self.top_left(locations)
        # Frame coordinates of every block; clamping into the padding is zero padding.
        xs = xp.clip_(tl[:, :, 0, None] + self._offsets, -pad, self.width + pad - 1)  # (B, n, p)
        ys = xp.clip_(tl[:, :, 1, None] + self._offsets, -pad, self.height + pad - 1)
        ys *= row
        base = xp.arange(b) if rows is None else xp.asarray(rows, dtype=xp.int64)
        ys += (base * (n * c * plane) + pad * (row + 1))[:, None, None] + self._level_start * c
        index, got = self._scratch(("glimpse", b, c), lambda: self._glimpse_buffers(b, c))
        xp.add(ys[..., None], xs[:, :, None, :], out=index)  # (B, n, p, p) of channel 0
        flat = sums.reshape(-1)
        for k in range(c):  # channel k is a row further on: the same indices into a view that starts there
            xp.take(flat[k * self.frame[1] :], index, out=got[k])
        patches = got.swapaxes(0, 1).swapaxes(1, 2)  # (B, n, C, p, p), each p x p patch contiguous
        xp.divide(patches, self._denom[None, :, None, None, None], out=out)
        return out

    def _glimpse_buffers(self, b: int, c: int) -> tuple:
        xp, n, p = self.xp, self.n_patches, self.patch_size
        return xp.empty((b, n, p, p), xp.int64), xp.empty((c, b, n, p, p), self.dtype)

    def _scratch(self, key: tuple, make) -> tuple:
        """Scratch arrays kept between calls (fresh ones fault): ``make()`` the first time a ``key`` is asked for."""
        buffers = self._buffers.get(key)
        if buffers is None:
            if len(self._buffers) >= 4:  # the env's batch, plus a partial reset or two
                self._buffers.clear()
            buffers = self._buffers[key] = make()
        return buffers

    def one(self, sums: np.ndarray, x: float, y: float, out: np.ndarray | None = None) -> np.ndarray:
        """The glimpse ``(n_patches, C, p, p)`` at one location ``(x, y)`` of one canvas's block sums; numpy.

        ``sums`` is one canvas's :meth:`block_sums`, ``(n_patches, H + 2 pad, C, W + 2 pad)``. Same numbers as
        :meth:`__call__` without the batch overhead: a patch that lies inside the frame is read as a strided view.
        """
        p, pad, width, height = self.patch_size, self.pad, self.width, self.height
        if out is None:
            out = np.empty((self.n_patches, sums.shape[2], p, p), dtype=np.float32)
        cx = (float(x) + 1.0) * (0.5 * width)
        cy = (float(y) + 1.0) * (0.5 * height)
        for i, (k, size, half, lo_x, lut_x, lo_y, lut_y, denom) in enumerate(self._patches):
            x0 = math.floor(cx - half + 0.5)
            y0 = math.floor(cy - half + 0.5)
            if x0 >= -pad and y0 >= -pad and x0 + size - k < width + pad and y0 + size - k < height + pad:
                block = sums[i, y0 + pad : y0 + pad + size : k, :, x0 + pad : x0 + pad + size : k].swapaxes(0, 1)
            elif 0 <= x0 - lo_x < len(lut_x) and 0 <= y0 - lo_y < len(lut_y):
                block = sums[i, lut_y[y0 - lo_y], :, lut_x[x0 - lo_x]].transpose(2, 0, 1)
            else:  # a location outside [-1, 1]: the environment never asks for one, but stay exact
                offsets = np.arange(p) * k
                ys = np.clip(offsets + y0, -pad, height + pad - 1) + pad
                xs = np.clip(offsets + x0, -pad, width + pad - 1) + pad
                block = sums[i, ys[:, None], :, xs].transpose(2, 0, 1)
            np.divide(block, denom, out=out[i], dtype=np.float32)
        return out
