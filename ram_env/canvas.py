"""Batched placement of 28x28 digits on square canvases, with clutter.

plain       the digit itself, 28x28
translated  the digit at a uniformly random position on a ``size x size`` canvas
cluttered   first ``n_clutter`` random ``clutter_size`` crops of other random digits at random positions,
            then the target digit; overlapping strokes combine by taking the brighter pixel.

A :class:`Layout` holds every random choice for a batch, so drawing is a pure function of
(images, layout): the val and test layouts are drawn once per split from a fixed seed, which makes the
canvas of image ``i`` a pure function of (split, ``i``).

The arithmetic is written once against a backend ``xp`` (:mod:`ram_env.backend`): numpy arrays by default,
torch tensors on a device for the torch backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ram_env import objects
from ram_env.backend import NUMPY

DIGIT = 28


@dataclass(frozen=True)
class CanvasSpec:
    """Geometry of a canvas: its side, and the clutter put on it."""

    size: int = DIGIT
    n_clutter: int = 0
    clutter_size: int = 8
    n_objects: int = 1  # digits on the canvas, placed without overlap (see ram_env.objects)
    digit_size: tuple[int, int] = (DIGIT, DIGIT)  # smallest and largest side a digit is resampled to

    @property
    def several(self) -> bool:
        """Whether the digits go through :mod:`ram_env.objects` (several, or resized); the paper's tasks do not."""
        return self.n_objects != 1 or self.digit_size != (DIGIT, DIGIT)

    def __post_init__(self):
        if self.size > 2048:
            raise ValueError(f"translated_size {self.size} is too large (at most 2048)")
        lo, hi = self.digit_size
        if not 1 <= lo <= hi:
            raise ValueError(f"digit_size must be a side >= 1 or a range (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}")
        if self.size < hi:
            digit = f"{hi}x{hi} digit" if hi == DIGIT else f"largest digit ({hi} px, digit_size={self.digit_size})"
            raise ValueError(f"translated_size {self.size} is smaller than the {digit}; set translated_size >= {hi}")
        if self.n_objects < 1:
            raise ValueError(f"n_objects must be at least 1 (digits per canvas), got {self.n_objects}")
        if not objects.fits(self.size, self.n_objects, hi):
            need = math.ceil(math.sqrt(self.n_objects)) * hi
            raise ValueError(
                f"a {self.size} px canvas is too small for {self.n_objects} digits of up to {hi} px without overlap; "
                f"set translated_size >= {need}, or ask for fewer or smaller digits"
            )
        if self.n_clutter < 0:
            raise ValueError(f"n_clutter must be >= 0, got {self.n_clutter}")
        if self.n_clutter and self.size == DIGIT:
            raise ValueError("clutter needs a translated canvas: set translated_size > 28 when n_clutter > 0")
        if self.n_clutter and not 1 <= self.clutter_size <= DIGIT:
            raise ValueError(f"clutter_size must be in 1..{DIGIT}, got {self.clutter_size}")


@dataclass
class Layout:
    """Random choices for a batch of canvases; all arrays are int64 and indexed by batch row."""

    index: Any  # (B,) image index of the target digit
    offset: Any  # (B, 2) top-left (x, y) of the digit on the canvas
    clutter_index: Any  # (B, n_clutter) image the clutter is cut from
    clutter_crop: Any  # (B, n_clutter, 2) top-left (x, y) of the crop inside that image
    clutter_offset: Any  # (B, n_clutter, 2) top-left (x, y) of the crop on the canvas
    objects: Any = None  # several or resized digits (ram_env.objects.Objects); then they, not index/offset, are drawn

    def __getitem__(self, rows) -> "Layout":
        return Layout(*(None if v is None else v[rows] for v in self._fields()))

    def to(self, xp) -> "Layout":
        """The same layout as arrays of the backend ``xp`` (on its device)."""
        *arrays, several = self._fields()
        return Layout(*(xp.asarray(v) for v in arrays), None if several is None else several.to(xp))

    def _fields(self) -> list:
        return [getattr(self, f) for f in self.__dataclass_fields__]


def sample_layout(spec: CanvasSpec, index, n_images: int, rng, xp=NUMPY) -> Layout:
    """Draw the random part of the canvases of the digits ``index`` (clutter comes from ``n_images`` images).

    Every choice is uniform: the digit's top-left over all positions that keep it on the canvas, each
    clutter piece's source image, its crop inside that image and its position on the canvas. ``rng`` is
    the random stream of the backend ``xp`` (:meth:`~ram_env.backend.NumpyBackend.generator`).
    """
    b, c, cs = len(index), spec.n_clutter, spec.clutter_size
    several = None
    if spec.several:  # drawn first; the paper's tasks skip it, so their draws are unchanged
        several = objects.sample(spec.size, spec.n_objects, spec.digit_size, index, n_images, rng, xp)
    return Layout(
        index=xp.asarray(index, dtype=xp.int64),
        offset=several.offset[:, 0] if several is not None else xp.integers(rng, spec.size - DIGIT + 1, (b, 2)),
        clutter_index=xp.integers(rng, n_images, (b, c)),
        clutter_crop=xp.integers(rng, DIGIT - cs + 1, (b, c, 2)),
        clutter_offset=xp.integers(rng, spec.size - cs + 1, (b, c, 2)),
        objects=several,
    )


def _paste_max(canvas, patches, top_left, first: bool, xp) -> None:
    """canvas[b, y:y+h, x:x+w] = max(canvas[...], patches[b]) for every row b at its own top-left (x, y).

    ``first``: nothing has been drawn yet, so the max is a plain copy.
    """
    b, h, w = patches.shape
    size = canvas.shape[-1]
    windows = xp.windows(canvas.reshape(-1), size, h, w)
    start = xp.arange(b) * (size * size) + top_left[:, 1] * size + top_left[:, 0]
    if first:
        windows[start] = patches
    else:
        windows[start] = xp.maximum(windows[start], patches)


def draw(spec: CanvasSpec, images, layout: Layout, out=None, xp=NUMPY):
    """Canvases ``(B, size, size)`` uint8 from source ``images`` ``(N, 28, 28)`` and a layout, in backend ``xp``.

    Written into ``out`` (a C-contiguous uint8 array of that shape) when given.
    """
    b, cs = len(layout.index), spec.clutter_size
    if out is None:
        out = xp.zeros((b, spec.size, spec.size), xp.uint8)
    else:
        out[...] = 0
    if spec.size == DIGIT and layout.objects is None:  # the plain task: the digit is the canvas
        out[...] = images[layout.index]
        return out
    crops = xp.windows(images.reshape(-1), DIGIT, cs, cs)
    for j in range(spec.n_clutter):  # a loop over clutter pieces, vectorised over the batch
        start = (
            layout.clutter_index[:, j] * (DIGIT * DIGIT)
            + layout.clutter_crop[:, j, 1] * DIGIT
            + layout.clutter_crop[:, j, 0]
        )
        _paste_max(out, crops[start], layout.clutter_offset[:, j], j == 0, xp)
    if layout.objects is not None:
        objects.paste(out, images, layout.objects, xp)
        return out
    _paste_max(out, images[layout.index], layout.offset, spec.n_clutter == 0, xp)
    return out
