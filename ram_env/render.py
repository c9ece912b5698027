"""Drawing RAM episodes with pygame: the layout of a frame, the frame itself, and grids of frames.

A frame (see :func:`draw_frame`) shows, top to bottom:

- ``step t/T``: glimpses taken so far out of the episode's ``n_glimpses``;
- the canvas, scaled up by an integer factor (:attr:`Layout.scale`) so that canvas pixel ``(x, y)``
  is the block of frame pixels ``[x0 + x*k, x0 + (x+1)*k) x [y0 + y*k, y0 + (y+1)*k)``, with
  ``(x0, y0) = Layout.canvas_origin`` and ``k = Layout.scale``. On it: the earlier fixations (dots joined
  by lines, :data:`PATH_COLOUR`) and the current glimpse's patches as nested boxes, one colour per
  scale (:data:`SCALE_COLOURS`): each box's outline lies on the border blocks of the canvas pixels its
  patch covers, and parts that leave the canvas are not drawn. At the end of an episode the canvas
  gets a green (right) or red (wrong) border;
- the glimpse as the agent sees it: each patch enlarged side by side, framed in its scale's colour;
- the answer and the truth, green when right, red when wrong (``answer ?`` while the episode runs); K labels
  are listed in reading order, and with ``target="location"`` the canvas shows the true centre (a
  cross, :data:`CENTRE_COLOUR`) and, at the end, the answered point (a ring in the right/wrong colour).

Everything draws on off-screen pygame surfaces, so drawing needs no display. The ``human`` window is
:mod:`ram_env.window`; GIFs, videos and watching a policy play are :mod:`ram_env.recording`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

# One colour per scale (patch 0 is the finest); cycled if there are more scales.
SCALE_COLOURS = [(255, 221, 0), (0, 200, 255), (255, 70, 255), (255, 140, 0), (150, 120, 255), (255, 255, 255)]
PATH_COLOUR = (70, 120, 255)
RIGHT_COLOUR = (40, 210, 70)
WRONG_COLOUR = (240, 50, 50)
BACKGROUND = (24, 24, 28)
TEXT_COLOUR = (230, 230, 230)
MUTED_COLOUR = (140, 140, 150)
CANVAS_BORDER = (70, 70, 80)
CENTRE_COLOUR = (0, 230, 230)  # the true centre with target="location"

TARGET_CANVAS = 300  # the canvas is scaled up by the largest integer factor that keeps it within this many pixels
MARGIN = 10
HEADER = 26  # height of the "step t/T" line
FOOTER = 26  # height of the answer line
GAP = 10  # between the glimpse's patches
MAX_PATCH = 120  # largest side of an enlarged patch
BORDER = 3  # width of the right/wrong border around the canvas


def scale_colour(i: int) -> tuple[int, int, int]:
    """The colour of scale ``i``'s box and patch frame."""
    return SCALE_COLOURS[i % len(SCALE_COLOURS)]


_fonts: dict[int, pygame.font.Font] = {}


def font(size: int) -> pygame.font.Font:
    """pygame's bundled default font at ``size`` pixels (works offline), made once per size."""
    if not pygame.font.get_init():
        pygame.font.init()
    if size not in _fonts:
        _fonts[size] = pygame.font.Font(None, size)
    return _fonts[size]


@dataclass(frozen=True)
class Layout:
    """Where things are in a frame of a task (all in frame pixels, ``(x, y)`` order)."""

    canvas_shape: tuple[int, int]  # (H, W) of the canvas in canvas pixels
    scale: int  # k: frame pixels per canvas pixel
    canvas_origin: tuple[int, int]  # frame pixel of canvas pixel (0, 0)
    patch_origins: tuple[tuple[int, int], ...]  # top-left frame pixel of each enlarged patch
    patch_side: int  # side of an enlarged patch
    footer_y: int  # top of the answer line
    width: int
    height: int

    @property
    def canvas_extent(self) -> tuple[int, int]:
        """``(width, height)`` of the scaled canvas in frame pixels."""
        return self.canvas_shape[1] * self.scale, self.canvas_shape[0] * self.scale

    @property
    def canvas_side(self) -> int:
        """Width of the scaled canvas in frame pixels (its side, when square)."""
        return self.canvas_extent[0]

    def location_to_pixel(self, location) -> np.ndarray:
        """Frame pixel coordinates (float) of locations ``(..., 2)`` in ``[-1, 1]``: the point the retina centres on."""
        location = np.asarray(location, dtype=np.float64)
        return np.asarray(self.canvas_origin) + (location + 1.0) * (0.5 * np.asarray(self.canvas_extent))

    def pixel_to_location(self, pixel) -> np.ndarray | None:
        """The location of the centre of frame pixel ``(px, py)``; None if the pixel is not on the canvas."""
        px, py = (int(v) for v in pixel)
        x0, y0 = self.canvas_origin
        width, height = self.canvas_extent
        if not (x0 <= px < x0 + width and y0 <= py < y0 + height):
            return None
        centre = (np.array([px - x0, py - y0], dtype=np.float64) + 0.5) / np.array([width, height])
        return np.clip(centre * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


def frame_layout(retina) -> Layout:
    """The layout of every frame of a task, from its :class:`~ram_env.sensor.Retina`."""
    h, w = int(retina.height), int(retina.width)
    k = max(1, TARGET_CANVAS // max(h, w))
    side = w * k
    n, p = int(retina.n_patches), int(retina.patch_size)
    # Enlarged patches: an integer multiple of patch_size, all n side by side within the canvas width.
    fit = min(MAX_PATCH, (max(side, 200) - (n - 1) * GAP) // n)
    patch_side = p * max(1, fit // p)
    canvas_origin = (MARGIN, HEADER + MARGIN)
    patch_y = canvas_origin[1] + h * k + MARGIN + BORDER
    patch_origins = tuple((MARGIN + i * (patch_side + GAP), patch_y) for i in range(n))
    footer_y = patch_y + patch_side + 4
    width = max(side, n * patch_side + (n - 1) * GAP) + 2 * MARGIN
    height = footer_y + FOOTER + MARGIN // 2
    return Layout((h, w), k, canvas_origin, patch_origins, patch_side, footer_y, width + width % 2, height + height % 2)


def _image_surface(image: np.ndarray, size: tuple[int, int]) -> pygame.Surface:
    """An ``(h, w)`` gray or ``(h, w, 3)`` colour uint8 image as a surface scaled (nearest neighbour) to ``size``."""
    image = image[:, :, None] if image.ndim == 2 else image
    rgb = np.ascontiguousarray(np.broadcast_to(image, (*image.shape[:2], 3)).transpose(1, 0, 2))  # surfarray: (x, y)
    return pygame.transform.scale(pygame.surfarray.make_surface(rgb), size)


def _grey_surface(image: np.ndarray, side: int) -> pygame.Surface:
    """An image as a ``side x side`` surface (see :func:`_image_surface`)."""
    return _image_surface(image, (side, side))


def _draw_canvas(surface: pygame.Surface, layout: Layout, canvas: np.ndarray, border: tuple[int, int, int]) -> None:
    """The scaled canvas inside its border."""
    (x0, y0), (width, height) = layout.canvas_origin, layout.canvas_extent
    rect = pygame.Rect(x0, y0, width, height)
    pygame.draw.rect(surface, border, rect.inflate(2 * BORDER, 2 * BORDER), BORDER)
    surface.blit(_image_surface(np.asarray(canvas, dtype=np.uint8), (width, height)), (x0, y0))


def _draw_fixations(surface: pygame.Surface, layout: Layout, retina, history: np.ndarray) -> None:
    """The path of the fixations and the current glimpse's boxes, clipped to the canvas."""
    if not len(history):
        return
    k, (x0, y0), (width, height) = layout.scale, layout.canvas_origin, layout.canvas_extent
    surface.set_clip(pygame.Rect(x0, y0, width, height))
    # Lines between consecutive fixations, dots on the earlier ones.
    points = [tuple(p) for p in layout.location_to_pixel(history)]
    if len(points) > 1:
        pygame.draw.lines(surface, PATH_COLOUR, False, points, 2)
    for point in points[:-1]:
        pygame.draw.circle(surface, PATH_COLOUR, point, max(3, k // 3))
    # The current glimpse: nested boxes, the coarsest first so the finest is on top.
    top_left = retina.top_left(history[-1:])[0]  # (n_patches, 2) canvas pixels
    line = max(2, k // 5)
    for i in reversed(range(retina.n_patches)):
        size = int(retina.sizes[i]) * k
        box = pygame.Rect(x0 + int(top_left[i, 0]) * k, y0 + int(top_left[i, 1]) * k, size, size)
        pygame.draw.rect(surface, scale_colour(i), box, line)
    pygame.draw.circle(surface, scale_colour(0), points[-1], max(3, k // 3))
    surface.set_clip(None)


def _draw_points(surface: pygame.Surface, layout: Layout, centre, point, colour) -> None:
    """``target="location"``: the true centre as a cross and, once answered, the answer as a ring."""
    k = layout.scale
    cx, cy = layout.location_to_pixel(np.asarray(centre, dtype=np.float64))
    arm = max(4, k * 2)
    pygame.draw.line(surface, CENTRE_COLOUR, (cx - arm, cy), (cx + arm, cy), 3)
    pygame.draw.line(surface, CENTRE_COLOUR, (cx, cy - arm), (cx, cy + arm), 3)
    if point is not None:
        px, py = layout.location_to_pixel(np.asarray(point, dtype=np.float64))
        pygame.draw.circle(surface, colour, (px, py), max(5, k * 2), 3)


def _draw_glimpse(surface: pygame.Surface, layout: Layout, glimpse: np.ndarray, taken: bool) -> None:
    """The glimpse as the agent sees it: each patch enlarged, framed in its scale's colour (black before reset)."""
    glimpse = np.asarray(glimpse, dtype=np.float32)
    for i, (px, py) in enumerate(layout.patch_origins):
        if taken:  # (C, p, p) -> (p, p) gray or (p, p, 3) colour
            patch = np.clip(glimpse[i].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            patch = patch[:, :, 0] if patch.shape[2] == 1 else patch
        else:
            patch = np.zeros(glimpse.shape[-2:], np.uint8)
        rect = pygame.Rect(px, py, layout.patch_side, layout.patch_side)
        pygame.draw.rect(surface, scale_colour(i), rect.inflate(4, 4), 2)
        surface.blit(_grey_surface(patch, layout.patch_side), rect.topleft)


def draw_surface(state: dict, retina, n_glimpses: int, layout: Layout | None = None) -> pygame.Surface:
    """Draw a frame (see :func:`draw_frame`) on a new off-screen surface."""
    layout = layout or frame_layout(retina)
    surface = pygame.Surface((layout.width, layout.height))
    surface.fill(BACKGROUND)
    t = int(state["t"])
    answer, label = state.get("answer"), state["label"]
    done = answer is not None
    right = done and (state["right"] if "right" in state else int(answer) == int(label))
    border = (RIGHT_COLOUR if right else WRONG_COLOUR) if done else CANVAS_BORDER

    surface.blit(font(24).render(f"step {max(t, 0)}/{n_glimpses}", True, TEXT_COLOUR), (MARGIN, MARGIN // 2 + 2))
    _draw_canvas(surface, layout, state["canvas"], border)
    _draw_fixations(surface, layout, retina, np.asarray(state["history"], dtype=np.float64).reshape(-1, 2))
    _draw_glimpse(surface, layout, state["glimpse"], taken=t >= 1)
    if state.get("centre") is not None:
        _draw_points(surface, layout, state["centre"], state.get("point"), border)
    if done:
        said = state.get("text") or f"answer {int(answer)}   truth {int(label)}"
        text, colour = f"{said}   {'right' if right else 'wrong'}", border
    else:
        text, colour = "answer ?", MUTED_COLOUR
    surface.blit(font(24).render(text, True, colour), (MARGIN, layout.footer_y + 4))
    return surface


def surface_to_array(surface: pygame.Surface) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 copy of a surface."""
    width, height = surface.get_size()
    return np.frombuffer(pygame.image.tobytes(surface, "RGB"), dtype=np.uint8).reshape(height, width, 3).copy()


def draw_frame(state: dict, retina, n_glimpses: int) -> np.ndarray:
    """The picture of one episode's state as an ``(H, W, 3)`` uint8 array.

    :param state: ``env.frame_state()``: ``canvas`` (H, W) gray or (H, W, 3) colour uint8, ``history`` (t, 2)
        fixations so far (the last one is the current glimpse), ``glimpse`` (n_patches, C, p, p) float32, ``t`` glimpses
        taken, ``answer`` (None until the last step) and ``label`` (the truth)
    :param retina: the task's :class:`~ram_env.sensor.Retina` (where patches lie, how big they are)
    :param n_glimpses: glimpses per episode (for "step t/T")
    """
    return surface_to_array(draw_surface(state, retina, n_glimpses))


def tile(
    frames: list[np.ndarray], cols: int | None = None, pad: int = 4, fill: tuple[int, int, int] = (0, 0, 0)
) -> np.ndarray:
    """Frames of one size in a grid, row by row (``cols`` defaults to ``ceil(sqrt(n))``); one frame comes back as is."""
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("tile() needs at least one frame")
    if len(frames) == 1:
        return frames[0]
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    cols = cols or math.ceil(math.sqrt(len(frames)))
    rows = math.ceil(len(frames) / cols)
    grid = np.empty((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), dtype=np.uint8)
    grid[:] = fill
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        grid[r * (h + pad) : r * (h + pad) + frame.shape[0], c * (w + pad) : c * (w + pad) + frame.shape[1]] = frame
    return grid
