"""The ``human`` window: one pygame window per process, shared by the renderers of every env.

Each :class:`Renderer` draws the frames of one env (see :mod:`ram_env.render`). In ``"human"`` mode
the latest frames of all open renderers show side by side in one window; the display is initialised
when the first renderer shows a frame and shut down when the last one closes, or when the person
closes the window (close button or Esc), which closes every renderer.
"""

from __future__ import annotations

import os
import time

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from ram_env.render import BACKGROUND, GAP, draw_surface, frame_layout, surface_to_array  # noqa: E402


class _SharedWindow:
    """The one window of the process and the renderers shown in it, in the order they first drew.

    The display is shut down (``pygame.display.quit``) when the last renderer leaves, unless something
    else had initialised it first.
    """

    def __init__(self):
        self.frames: dict[int, pygame.Surface] = {}  # renderer id -> its latest frame
        self.renderers: dict[int, Renderer] = {}
        self.owns_display = False
        self.window: pygame.Surface | None = None

    def attach(self, renderer: Renderer) -> None:
        if not self.renderers:
            self.owns_display = not pygame.display.get_init()
            pygame.display.init()
        self.renderers[id(renderer)] = renderer

    def detach(self, renderer: Renderer) -> None:
        if self.renderers.pop(id(renderer), None) is None:
            return
        self.frames.pop(id(renderer), None)
        if self.renderers:
            self.present()
            return
        self.window = None
        if self.owns_display:
            pygame.display.quit()
        self.owns_display = False

    def show(self, renderer: Renderer, surface: pygame.Surface) -> None:
        self.frames[id(renderer)] = surface
        self.present()

    def present(self) -> None:
        """Blit the latest frames side by side, resizing the window to fit them."""
        shown = list(self.frames.values())
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
                    renderer.close()
                return


_WINDOW = _SharedWindow()


def wait(seconds: float) -> bool:
    """Keep the window responsive for ``seconds`` (e.g. to hold an episode's last frame).

    :return: False as soon as the window is closed (or none is open), else True
    """
    end = time.monotonic() + seconds
    while _WINDOW.renderers and time.monotonic() < end:
        _WINDOW.pump()
        time.sleep(min(0.02, max(0.0, end - time.monotonic())))
    return bool(_WINDOW.renderers)


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
            _WINDOW.attach(self)
            self._attached = True
            self._clock = pygame.time.Clock()
        _WINDOW.show(self, surface)
        _WINDOW.pump()
        if not self.closed:
            self._clock.tick(self.fps)
        return None

    def close(self) -> None:
        """Release the window (the display too when this is the last renderer). Safe to call twice."""
        if self._attached:
            self._attached = False
            _WINDOW.detach(self)
        self.closed = True
