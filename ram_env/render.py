"""Drawing RAM episodes with pygame: ``rgb_array`` frames, the ``human`` window, GIFs and videos.

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
- the answer and the truth, green when right, red when wrong (``answer ?`` while the episode runs).

Everything draws on off-screen pygame surfaces, so ``rgb_array`` needs no display. ``human`` mode
shares one window among all the :class:`Renderer` objects of a process (their latest frames side by
side); the display is initialised when the first one draws and shut down when the last one closes, or
when the window is closed (close button or Esc).

Recording helpers take a *policy*: a callable ``policy(obs, first) -> {"location": (N, 2) float32,
"label": (N,) int64}`` on a batch of ``N`` observations of a :class:`~ram_env.vector.GlimpseVectorEnv`
(``first`` is True on the first step of new episodes, so a recurrent policy can reset its state).
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

Policy = Callable[[dict, bool], dict]

# One colour per scale (patch 0 is the finest); cycled if there are more scales.
SCALE_COLOURS = [(255, 221, 0), (0, 200, 255), (255, 70, 255), (255, 140, 0), (150, 120, 255), (255, 255, 255)]
PATH_COLOUR = (70, 120, 255)
RIGHT_COLOUR = (40, 210, 70)
WRONG_COLOUR = (240, 50, 50)
BACKGROUND = (24, 24, 28)
TEXT_COLOUR = (230, 230, 230)
MUTED_COLOUR = (140, 140, 150)
CANVAS_BORDER = (70, 70, 80)

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


@dataclass(frozen=True)
class Layout:
    """Where things are in a frame of a task (all in frame pixels, ``(x, y)`` order)."""

    canvas_size: int  # S: side of the canvas in canvas pixels
    scale: int  # k: frame pixels per canvas pixel
    canvas_origin: tuple[int, int]  # frame pixel of canvas pixel (0, 0)
    patch_origins: tuple[tuple[int, int], ...]  # top-left frame pixel of each enlarged patch
    patch_side: int  # side of an enlarged patch
    footer_y: int  # top of the answer line
    width: int
    height: int

    @property
    def canvas_side(self) -> int:
        """Side of the scaled canvas in frame pixels."""
        return self.canvas_size * self.scale

    def location_to_pixel(self, location) -> np.ndarray:
        """Frame pixel coordinates (float) of locations ``(..., 2)`` in ``[-1, 1]``: the point the retina centres on."""
        location = np.asarray(location, dtype=np.float64)
        return np.asarray(self.canvas_origin) + (location + 1.0) * (0.5 * self.canvas_side)

    def pixel_to_location(self, pixel) -> np.ndarray | None:
        """The location of the centre of frame pixel ``(px, py)``; None if the pixel is not on the canvas."""
        px, py = (int(v) for v in pixel)
        x0, y0 = self.canvas_origin
        side = self.canvas_side
        if not (x0 <= px < x0 + side and y0 <= py < y0 + side):
            return None
        centre = (np.array([px - x0, py - y0], dtype=np.float64) + 0.5) / side
        return np.clip(centre * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


def frame_layout(retina) -> Layout:
    """The layout of every frame of a task, from its :class:`~ram_env.sensor.Retina`."""
    s = int(retina.canvas_size)
    k = max(1, TARGET_CANVAS // s)
    side = s * k
    n, p = int(retina.n_patches), int(retina.patch_size)
    # Enlarged patches: an integer multiple of patch_size, all n side by side within the canvas width.
    fit = min(MAX_PATCH, (side - (n - 1) * GAP) // n)
    patch_side = p * max(1, fit // p)
    canvas_origin = (MARGIN, HEADER + MARGIN)
    patch_y = canvas_origin[1] + side + MARGIN + BORDER
    patch_origins = tuple((MARGIN + i * (patch_side + GAP), patch_y) for i in range(n))
    footer_y = patch_y + patch_side + 4
    width = max(side, n * patch_side + (n - 1) * GAP) + 2 * MARGIN
    height = footer_y + FOOTER + MARGIN // 2
    return Layout(s, k, canvas_origin, patch_origins, patch_side, footer_y, width + width % 2, height + height % 2)


_fonts: dict[int, Any] = {}


def _font(size: int):
    if not pygame.font.get_init():
        pygame.font.init()
    if size not in _fonts:
        _fonts[size] = pygame.font.Font(None, size)  # pygame's bundled default font: works offline
    return _fonts[size]


def _grey_surface(image: np.ndarray, side: int) -> pygame.Surface:
    """An ``(h, w)`` uint8 image as an RGB surface scaled (nearest neighbour) to ``side x side``."""
    rgb = np.repeat(np.ascontiguousarray(image.T)[:, :, None], 3, axis=2)  # surfarray is (x, y)
    surface = pygame.surfarray.make_surface(rgb)
    return pygame.transform.scale(surface, (side, side))


def draw_surface(state: dict, retina, n_glimpses: int, layout: Layout | None = None) -> pygame.Surface:
    """Draw a frame (see :func:`draw_frame`) on a new off-screen surface."""
    layout = layout or frame_layout(retina)
    surface = pygame.Surface((layout.width, layout.height))
    surface.fill(BACKGROUND)
    k, (x0, y0), side = layout.scale, layout.canvas_origin, layout.canvas_side
    canvas_rect = pygame.Rect(x0, y0, side, side)
    history = np.asarray(state["history"], dtype=np.float64).reshape(-1, 2)
    t = int(state["t"])
    answer, label = state.get("answer"), int(state["label"])
    done = answer is not None
    right = done and int(answer) == label

    # Header.
    step_text = f"step {max(t, 0)}/{n_glimpses}"
    surface.blit(_font(24).render(step_text, True, TEXT_COLOUR), (MARGIN, MARGIN // 2 + 2))

    # Canvas and its border (green/red at the end).
    border = (RIGHT_COLOUR if right else WRONG_COLOUR) if done else CANVAS_BORDER
    pygame.draw.rect(surface, border, canvas_rect.inflate(2 * BORDER, 2 * BORDER), BORDER)
    surface.blit(_grey_surface(np.asarray(state["canvas"], dtype=np.uint8), side), (x0, y0))

    surface.set_clip(canvas_rect)
    # Path of the fixations: lines between consecutive ones, dots on the earlier ones.
    if len(history):
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

    # The glimpse as the agent sees it.
    glimpse = np.asarray(state["glimpse"], dtype=np.float32)
    for i, (px, py) in enumerate(layout.patch_origins):
        patch = (
            np.clip(glimpse[i, 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if t >= 1
            else np.zeros(glimpse.shape[-2:], np.uint8)
        )
        rect = pygame.Rect(px, py, layout.patch_side, layout.patch_side)
        pygame.draw.rect(surface, scale_colour(i), rect.inflate(4, 4), 2)
        surface.blit(_grey_surface(patch, layout.patch_side), rect.topleft)

    # Answer and truth.
    if done:
        text, colour = f"answer {int(answer)}   truth {label}   {'right' if right else 'wrong'}", border
    else:
        text, colour = "answer ?", MUTED_COLOUR
    surface.blit(_font(24).render(text, True, colour), (MARGIN, layout.footer_y + 4))
    return surface


def surface_to_array(surface: pygame.Surface) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 copy of a surface."""
    width, height = surface.get_size()
    return np.frombuffer(pygame.image.tobytes(surface, "RGB"), dtype=np.uint8).reshape(height, width, 3).copy()


def draw_frame(state: dict, retina, n_glimpses: int) -> np.ndarray:
    """The picture of one episode's state as an ``(H, W, 3)`` uint8 array.

    :param state: ``env.frame_state()``: ``canvas`` (S, S) uint8, ``history`` (t, 2) fixations so far
        (the last one is the current glimpse), ``glimpse`` (n_patches, 1, p, p) float32, ``t`` glimpses
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


# ---------------------------------------------------------------------------------------------- human mode


class _Display:
    """The one pygame window of the process, shared by all human-mode renderers (their frames side by side).

    The display is initialised when the first renderer shows a frame and shut down (``pygame.display.quit``)
    when the last one leaves, unless something else had initialised it first. Closing the window (or Esc)
    closes every renderer attached to it.
    """

    def __init__(self):
        self.frames: dict[int, pygame.Surface | None] = {}  # renderer id -> latest frame, in attach order
        self.renderers: dict[int, Renderer] = {}
        self.owns_display = False
        self.window: pygame.Surface | None = None

    def attach(self, renderer: Renderer) -> None:
        if not self.renderers:
            self.owns_display = not pygame.display.get_init()
            pygame.display.init()
        self.renderers[id(renderer)] = renderer
        self.frames[id(renderer)] = None

    def detach(self, renderer: Renderer) -> None:
        if self.renderers.pop(id(renderer), None) is None:
            return
        self.frames.pop(id(renderer), None)
        if not self.renderers:
            self.window = None
            if self.owns_display:
                pygame.display.quit()
            self.owns_display = False
        else:
            self._present()

    def show(self, renderer: Renderer, surface: pygame.Surface) -> None:
        self.frames[id(renderer)] = surface
        self._present()

    def _present(self) -> None:
        shown = [s for s in self.frames.values() if s is not None]
        if not shown:
            return
        size = (sum(s.get_width() for s in shown) + GAP * (len(shown) - 1), max(s.get_height() for s in shown))
        if self.window is None or self.window.get_size() != size:
            self.window = pygame.display.set_mode(size)
            pygame.display.set_caption("RAM gym")
        self.window.fill(BACKGROUND)
        x = 0
        for s in shown:
            self.window.blit(s, (x, 0))
            x += s.get_width() + GAP
        pygame.display.flip()

    def pump(self) -> None:
        """Handle the window's events; the close button or Esc closes every renderer."""
        if not pygame.display.get_init():
            return
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                for renderer in list(self.renderers.values()):
                    renderer.close(by_user=True)
                return


_DISPLAY = _Display()


class Renderer:
    """Draws the frames of one env: returns arrays (``"rgb_array"``) or shows them in the shared window (``"human"``).

    :param retina: the task's retina
    :param n_glimpses: glimpses per episode
    :param render_mode: ``"human"`` or ``"rgb_array"``
    :param fps: frames per second of the human window (``draw`` waits to keep that pace)
    """

    def __init__(self, retina, n_glimpses: int, render_mode: str, fps: float):
        if render_mode not in ("human", "rgb_array"):
            raise ValueError(f"render_mode must be 'human' or 'rgb_array', got {render_mode!r}")
        self.retina = retina
        self.n_glimpses = n_glimpses
        self.render_mode = render_mode
        self.fps = fps
        self.layout = frame_layout(retina)
        self.closed = False  # True once closed, by close() or by the person closing the window
        self.closed_by_user = False
        self._attached = False
        self._clock: pygame.time.Clock | None = None

    def draw(self, state: dict) -> np.ndarray | None:
        """Draw ``state``; the frame array in ``"rgb_array"`` mode, None in ``"human"`` mode."""
        if self.render_mode == "human" and self.closed:
            return None
        surface = draw_surface(state, self.retina, self.n_glimpses, self.layout)
        if self.render_mode == "rgb_array":
            return surface_to_array(surface)
        if not self._attached:
            _DISPLAY.attach(self)
            self._attached = True
            self._clock = pygame.time.Clock()
        _DISPLAY.show(self, surface)
        _DISPLAY.pump()
        if not self.closed:
            self._clock.tick(self.fps)
        return None

    def wait(self, seconds: float) -> bool:
        """Keep the window responsive for ``seconds`` (e.g. to hold an episode's last frame); False once it is closed."""
        end = time.monotonic() + seconds
        while not self.closed and time.monotonic() < end:
            _DISPLAY.pump()
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))
        return not self.closed

    def close(self, by_user: bool = False) -> None:
        """Release the window (the display too when this is the last renderer). Safe to call twice."""
        if self._attached:
            self._attached = False
            _DISPLAY.detach(self)
        self.closed = True
        self.closed_by_user = self.closed_by_user or by_user


# ------------------------------------------------------------------------------------- policies and recording


def random_policy(action_space, seed: int | None = None) -> Policy:
    """A policy that looks at uniformly random places and guesses a uniformly random class.

    :param action_space: the single env's action space (``Dict(location=Box, label=Discrete)``)
    """
    rng = np.random.default_rng(seed)
    low = np.asarray(action_space["location"].low, dtype=np.float32)
    high = np.asarray(action_space["location"].high, dtype=np.float32)
    n_classes = int(action_space["label"].n)

    def policy(obs: dict, first: bool) -> dict:
        n = len(obs["location"])
        return {
            "location": rng.uniform(low, high, size=(n, 2)).astype(np.float32),
            "label": rng.integers(0, n_classes, size=n, dtype=np.int64),
        }

    return policy


def _act(policy: Policy, obs: dict, first: bool) -> dict:
    action = policy(obs, first)
    return {
        "location": np.asarray(action["location"], dtype=np.float32),
        "label": np.asarray(action["label"]).astype(np.int64),
    }


def record_episodes(vec_env, policy: Policy, indices=None) -> list[np.ndarray]:
    """Run one episode in every env of a ``GlimpseVectorEnv`` (``render_mode="rgb_array"``); return the tiled frames.

    One frame after the reset and one after every step, so ``n_glimpses + 1`` frames.

    :param indices: image indices, one per env (as ``reset(options={"indices": ...})``); None: random images
    """
    if getattr(vec_env, "render_mode", None) != "rgb_array":
        raise ValueError(
            f"record_episodes needs a vector env made with render_mode='rgb_array', got {getattr(vec_env, 'render_mode', None)!r}"
        )
    options = None if indices is None else {"indices": np.asarray(indices, dtype=np.int64)}
    obs, _ = vec_env.reset(options=options)
    frames = [vec_env.render()]
    first, n_steps = True, vec_env.unwrapped.core.n_glimpses
    for _ in range(n_steps):
        obs, _, terminated, truncated, _ = vec_env.step(_act(policy, obs, first))
        first = False
        frames.append(vec_env.render())
        if np.all(terminated | truncated):
            break
    return frames


def save_gif(frames: list[np.ndarray], path, fps: float = 4, hold: float = 1.5, max_side: int | None = None) -> Path:
    """Write frames as an animated GIF that loops forever, holding the last frame ``hold`` extra seconds.

    :param max_side: shrink the frames (keeping their aspect) so that neither side exceeds this many pixels
    """
    from PIL import Image

    if not frames:
        raise ValueError("save_gif() needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if max_side is not None and max(images[0].size) > max_side:
        ratio = max_side / max(images[0].size)
        size = (max(1, round(images[0].width * ratio)), max(1, round(images[0].height * ratio)))
        images = [im.resize(size, Image.Resampling.LANCZOS) for im in images]
    step_ms = int(round(1000 / fps))
    durations = [step_ms] * len(images)
    durations[-1] += int(round(1000 * hold))
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1)
    return path


def record_gif(
    vec_env, policy: Policy, path, indices=None, fps: float | None = None, max_side: int | None = None
) -> Path:
    """Record one episode in every env of ``vec_env`` (tiled, e.g. 25 envs make a 5x5 grid) as a GIF at ``path``.

    :param max_side: shrink the GIF so that neither side exceeds this many pixels (smaller files)
    """
    frames = record_episodes(vec_env, policy, indices)
    fps = fps or vec_env.metadata.get("render_fps", 4)
    return save_gif(frames, path, fps, max_side=max_side)


def _single_policy(policy: Policy, obs: dict, first: bool) -> dict:
    """Call a batch policy on one observation; the action of that one env."""
    action = _act(policy, {k: np.asarray(v)[None] for k, v in obs.items()}, first)
    return {"location": action["location"][0], "label": int(action["label"][0])}


def watch(env, policy: Policy, n_episodes: int = 10, indices=None, hold: float = 1.0) -> list[bool]:
    """Play episodes on a single env made with ``render_mode="human"``; stop early if the window is closed.

    :param indices: the image of each episode (``len(indices)`` episodes are played); None: ``n_episodes`` random ones
    :param hold: seconds to keep each episode's last frame (its answer) on screen
    :return: whether each finished episode was answered right
    """
    if env.render_mode != "human":
        raise ValueError(f"watch() needs an env made with render_mode='human', got {env.render_mode!r}")
    episodes = list(indices) if indices is not None else [None] * n_episodes
    results: list[bool] = []

    def window_closed() -> bool:
        renderer = getattr(env.unwrapped, "_renderer", None)
        return renderer is not None and renderer.closed

    for index in episodes:
        obs, _ = env.reset(options=None if index is None else {"index": int(index)})
        first, terminated = True, False
        while not terminated and not window_closed():
            obs, _, terminated, truncated, info = env.step(_single_policy(policy, obs, first))
            first = False
        if window_closed():
            break
        results.append(bool(info["correct"]))
        renderer = env.unwrapped._renderer
        if hold > 0 and not renderer.wait(hold):
            break
    return results


def record_video(
    env,
    policy: Policy,
    folder,
    n_episodes: int = 1,
    indices=None,
    name_prefix: str = "ram",
    hold: float = 1.0,
    **env_kwargs,
) -> list[Path]:
    """Record episodes as MP4 files in ``folder`` through Gymnasium's ``RecordVideo`` (needs moviepy).

    :param env: a single env made with ``render_mode="rgb_array"``, or a registered id to make one (with ``env_kwargs``)
    :param indices: the image of each episode; None: ``n_episodes`` random images
    :param hold: seconds the last frame (the answer) stays in each video
    :return: the video files written, one per episode
    """
    if importlib.util.find_spec("moviepy") is None:
        import gymnasium as gym

        raise gym.error.DependencyNotInstalled("recording videos needs moviepy: pip install -e '.[video]'")
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    owned = isinstance(env, str)
    if owned:
        env = gym.make(env, render_mode="rgb_array", **env_kwargs)
    if env.render_mode != "rgb_array":
        raise ValueError(f"record_video() needs an env made with render_mode='rgb_array', got {env.render_mode!r}")
    folder = Path(folder)
    before = set(folder.glob(f"{name_prefix}-episode-*.mp4")) if folder.is_dir() else set()
    fps = env.metadata.get("render_fps", 4)
    recorder = RecordVideo(
        env, str(folder), episode_trigger=lambda _: True, name_prefix=name_prefix, fps=fps, disable_logger=True
    )
    episodes = list(indices) if indices is not None else [None] * n_episodes
    try:
        for index in episodes:
            obs, _ = recorder.reset(options=None if index is None else {"index": int(index)})
            first, terminated = True, False
            while not terminated:
                obs, _, terminated, truncated, _ = recorder.step(_single_policy(policy, obs, first))
                first = False
            if recorder.recording and recorder.recorded_frames:
                recorder.recorded_frames += [recorder.recorded_frames[-1]] * int(round(hold * fps))
            if recorder.recording:
                recorder.stop_recording()
    finally:
        if owned:
            recorder.close()
    return sorted(set(folder.glob(f"{name_prefix}-episode-*.mp4")) - before)
