"""Batched multi-scale glimpse extraction (the "retina").

A location ``(x, y)`` in ``[-1, 1]^2`` maps to the continuous pixel point ``((x + 1) / 2 * S, (y + 1) / 2 * S)``
of an ``S x S`` canvas; patch ``i`` is the square of side ``patch_size * scale**i`` whose top-left pixel is
that point minus half the side, rounded to the nearest pixel. Each patch is area-averaged down to
``patch_size x patch_size``; pixels outside the canvas read as 0.

Area averages come from a summed-area table (integral image) built once per canvas: every output pixel
is four lookups, whatever the scale, and clamping the lookups to the canvas is exactly zero padding.
"""

from __future__ import annotations

import numpy as np


def integral_image(canvases: np.ndarray) -> np.ndarray:
    """Summed-area tables ``(B, S+1, S+1)`` int32 of uint8 canvases ``(B, S, S)``, with a zero first row and column."""
    b, h, w = canvases.shape
    table = np.zeros((b, h + 1, w + 1), dtype=np.int32)
    np.cumsum(canvases, axis=1, dtype=np.int32, out=table[:, 1:, 1:])
    np.cumsum(table[:, 1:, 1:], axis=2, out=table[:, 1:, 1:])
    return table


class Retina:
    """Extracts ``n_patches`` concentric patches around each of a batch of locations.

    :param canvas_size: side ``S`` of the square canvases
    :param patch_size: side of every patch after downscaling
    :param n_patches: number of patches (scales)
    :param scale: each patch covers ``scale`` times the side of the previous one
    """

    def __init__(self, canvas_size: int, patch_size: int, n_patches: int, scale: int):
        for name, value in (("patch_size", patch_size), ("n_patches", n_patches), ("scale", scale)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if patch_size > canvas_size:
            raise ValueError(f"patch_size {patch_size} is larger than the {canvas_size}x{canvas_size} canvas")
        self.canvas_size = int(canvas_size)
        self.patch_size = int(patch_size)
        self.n_patches = int(n_patches)
        self.blocks = scale ** np.arange(n_patches)  # pixels per output pixel, per patch
        self.sizes = patch_size * self.blocks  # side of each patch in canvas pixels
        # Corner offsets of every output pixel inside each patch: (n_patches, patch_size + 1).
        self._corners = np.arange(patch_size + 1)[None, :] * self.blocks[:, None]
        self._norm = (1.0 / (255.0 * self.blocks**2)).astype(np.float32)[None, :, None, None]

    def top_left(self, locations: np.ndarray) -> np.ndarray:
        """Top-left pixel ``(x, y)`` of each patch: ``(B, n_patches, 2)`` int64 for locations ``(B, 2)``."""
        centre = (np.asarray(locations, dtype=np.float64) + 1.0) * (0.5 * self.canvas_size)
        return np.floor(centre[:, None, :] - self.sizes[None, :, None] / 2 + 0.5).astype(np.int64)

    def __call__(self, tables: np.ndarray, locations: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Glimpses ``(B, n_patches, 1, patch_size, patch_size)`` float32 in ``[0, 1]``.

        :param tables: summed-area tables ``(N, S+1, S+1)`` from :func:`integral_image`
        :param locations: ``(B, 2)`` locations in ``[-1, 1]``
        :param rows: which table each location looks at (default: location ``k`` looks at table ``k``)
        """
        side = self.canvas_size + 1
        rows = np.arange(len(locations)) if rows is None else rows
        tl = self.top_left(locations)
        xs = np.clip(tl[:, :, 0, None] + self._corners, 0, self.canvas_size)  # (B, n, p+1)
        ys = np.clip(tl[:, :, 1, None] + self._corners, 0, self.canvas_size)
        flat = (rows * side * side)[:, None, None, None] + ys[:, :, :, None] * side + xs[:, :, None, :]
        c = tables.reshape(-1).take(flat)  # (B, n, p+1, p+1) corner sums
        sums = c[:, :, 1:, 1:] - c[:, :, :-1, 1:] - c[:, :, 1:, :-1] + c[:, :, :-1, :-1]
        return (sums * self._norm)[:, :, None].astype(np.float32, copy=False)
