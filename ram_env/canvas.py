"""Batched placement of images on canvases, with clutter.

plain       the image itself (the canvas has the image's shape)
translated  the image at a uniformly random position on a larger ``height x width`` canvas
cluttered   first ``n_clutter`` random ``clutter_size`` crops of other random images at random positions,
            then the target image; overlapping pieces combine by taking the brighter value (per channel).

Images are ``(N, C, h, w)`` uint8 (C = 1 or 3; ``(N, h, w)`` is one channel) and canvases ``(B, C, H, W)``
(``(B, H, W)`` for ``(N, h, w)`` images). The digits of the paper are 28x28 and one channel, the default.

A :class:`Layout` holds every random choice for a batch, so drawing is a pure function of
(images, layout): the val and test layouts are drawn once per split from a fixed seed, which makes the
canvas of image ``i`` a pure function of (data, split, ``i``).

The arithmetic is written once against a backend ``xp`` (:mod:`ram_env.backend`): numpy arrays by default,
torch tensors on a device for the torch backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ram_env import objects
from ram_env.backend import NUMPY

DIGIT = 28
MAX_SIDE = 2048


def check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")


def side_or_pair(name: str, value):
    """``value`` as an int side, a ``(height, width)`` tuple (an int where square), or None; else a TypeError."""
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in pair):
        raise TypeError(f"{name} must be an integer side or a (height, width) pair (or None), got {value!r}")
    return int(pair[0]) if pair[0] == pair[1] else (int(pair[0]), int(pair[1]))


@dataclass(frozen=True)
class CanvasSpec:
    """Geometry of a canvas: its side (or ``(height, width)``), the clutter put on it, and the images' ``(h, w)``."""

    size: int | tuple[int, int] = DIGIT
    n_clutter: int = 0
    clutter_size: int = 8
    n_objects: int = 1  # images on the canvas, placed without overlap (see ram_env.objects)
    digit_size: tuple[int, int] | None = None  # smallest and largest side an image is resampled to; None: its own
    image_shape: tuple[int, int] = (DIGIT, DIGIT)

    @property
    def several(self) -> bool:
        """Whether the images go through :mod:`ram_env.objects` (several, or resized); the paper's tasks do not."""
        return self.n_objects != 1 or self.digit_size not in (None, tuple(self.image_shape))

    def __post_init__(self):
        h, w = self.image_shape
        what = "digit" if (h, w) == (DIGIT, DIGIT) else "image"
        if max(self.shape) > MAX_SIDE:
            raise ValueError(f"translated_size {self.size} is too large (at most {MAX_SIDE})")
        if self.several:
            self._check_several()
        elif self.height < h or self.width < w:
            raise ValueError(f"translated_size {self.size} is smaller than the {h}x{w} {what}")
        if self.n_clutter < 0:
            raise ValueError(f"n_clutter must be >= 0, got {self.n_clutter}")
        if self.n_clutter and self.plain:
            raise ValueError(f"clutter needs a translated canvas: set translated_size > {max(h, w)} when n_clutter > 0")
        if self.n_clutter and not 1 <= self.clutter_size <= min(h, w):
            raise ValueError(f"clutter_size must be in 1..{min(h, w)} (the {h}x{w} {what}), got {self.clutter_size}")

    def _check_several(self) -> None:
        """Several or resized images (:mod:`ram_env.objects`): square images on a square canvas, all fitting."""
        h, w = self.image_shape
        if h != w or not isinstance(self.size, int):
            raise ValueError(
                f"n_objects and digit_size need square images on a square canvas, got {h}x{w} images on "
                f"{self.height}x{self.width}"
            )
        lo, hi = self.digit_size or (h, h)
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

    @property
    def digit_range(self) -> tuple[int, int]:
        """The smallest and largest side of an image on the canvas."""
        return tuple(self.digit_size) if self.digit_size is not None else (self.image_shape[0], self.image_shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the canvas."""
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def plain(self) -> bool:
        """The canvas is the image itself."""
        return self.shape == tuple(self.image_shape)


@dataclass
class Layout:
    """Random choices for a batch of canvases; all arrays are int64 and indexed by batch row."""

    index: Any  # (B,) image index of the target
    offset: Any  # (B, 2) top-left (x, y) of the image on the canvas
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


def _positions(xp, rng, high_x: int, high_y: int, size: tuple):
    """Uniform top-left ``(x, y)`` pairs, ``size + (2,)``, with x in ``[0, high_x)`` and y in ``[0, high_y)``.

    A square range draws both coordinates in one call, as the digit tasks always have (their episodes stay the
    same); an oblong one draws the columns one after the other.
    """
    if high_x == high_y:
        return xp.integers(rng, high_x, (*size, 2))
    x, y = xp.integers(rng, high_x, size), xp.integers(rng, high_y, size)
    return xp.stack([x, y], -1)


def sample_layout(spec: CanvasSpec, index, n_images: int, rng, xp=NUMPY) -> Layout:
    """Draw the random part of the canvases of the images ``index`` (clutter comes from ``n_images`` images).

    Every choice is uniform: the image's top-left over all positions that keep it on the canvas, each
    clutter piece's source image, its crop inside that image and its position on the canvas. ``rng`` is
    the random stream of the backend ``xp`` (:meth:`~ram_env.backend.NumpyBackend.generator`).
    """
    b, c, cs = len(index), spec.n_clutter, spec.clutter_size
    several = None
    if spec.several:  # drawn first; the paper's tasks skip it, so their draws are unchanged
        several = objects.sample(spec.size, spec.n_objects, spec.digit_range, index, n_images, rng, xp)
    (h, w), (hh, ww) = spec.image_shape, spec.shape
    return Layout(
        index=xp.asarray(index, dtype=xp.int64),
        offset=several.offset[:, 0] if several is not None else _positions(xp, rng, ww - w + 1, hh - h + 1, (b,)),
        clutter_index=xp.integers(rng, n_images, (b, c)),
        clutter_crop=_positions(xp, rng, w - cs + 1, h - cs + 1, (b, c)),
        clutter_offset=_positions(xp, rng, ww - cs + 1, hh - cs + 1, (b, c)),
        objects=several,
    )


def as_image(planes):
    """A host canvas ``(C, H, W)`` as an image: ``(H, W)`` gray or ``(H, W, 3)`` colour (a view)."""
    return planes[0] if planes.shape[0] == 1 else planes.transpose(1, 2, 0)


def _paste_max(canvas, patches, top_left, first: bool, xp) -> None:
    """canvas[b, :, y:y+h, x:x+w] = max(canvas[...], patches[b]) for every row b at its own top-left (x, y).

    ``first``: nothing has been drawn yet, so the max is a plain copy.
    """
    b, c, h, w = patches.shape
    height, width = canvas.shape[-2:]
    windows = xp.windows(canvas.reshape(-1), width, h, w, c, height * width)
    start = xp.arange(b) * (c * height * width) + top_left[:, 1] * width + top_left[:, 0]
    if first:
        windows[start] = patches
    else:
        windows[start] = xp.maximum(windows[start], patches)


def draw(spec: CanvasSpec, images, layout: Layout, out=None, xp=NUMPY):
    """Canvases ``(B, [C,] H, W)`` uint8 from source ``images`` ``(N, [C,] h, w)`` and a layout, in backend ``xp``.

    Written into ``out`` (a C-contiguous uint8 array of that shape) when given.
    """
    if images.ndim == 3:  # one channel: draw through a (N, 1, h, w) view
        b = len(layout.index)
        flat = None if out is None else out.reshape(b, 1, *out.shape[1:])
        drawn = draw(spec, images.reshape(len(images), 1, *images.shape[1:]), layout, flat, xp)
        return drawn.reshape(b, *spec.shape) if out is None else out
    b, cs = len(layout.index), spec.clutter_size
    n, c, h, w = images.shape
    if out is None:
        out = xp.zeros((b, c, *spec.shape), xp.uint8)
    else:
        out[...] = 0
    if spec.plain and layout.objects is None:  # the plain task: the image is the canvas
        out[...] = images[layout.index]
        return out
    crops = xp.windows(images.reshape(-1), w, cs, cs, c, h * w)
    for j in range(spec.n_clutter):  # a loop over clutter pieces, vectorised over the batch
        start = (
            layout.clutter_index[:, j] * (c * h * w) + layout.clutter_crop[:, j, 1] * w + layout.clutter_crop[:, j, 0]
        )
        _paste_max(out, crops[start], layout.clutter_offset[:, j], j == 0, xp)
    if layout.objects is not None:
        objects.paste(out, images, layout.objects, xp)
        return out
    _paste_max(out, images[layout.index], layout.offset, spec.n_clutter == 0, xp)
    return out
