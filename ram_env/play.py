"""Take the agent's place: click where to look next, then type the digit.

    ram-play [--task RAM/MNIST-v0] [--data-dir DIR] [--split test] [--episodes N] [--seed S] [--answer any_step]
    python -m ram_env.play ...      (the same)

Each episode starts with the first glimpse at the task's start location. Click on the canvas to take
each of the next ``n_glimpses - 1`` glimpses there; then type the class (0-9, keypad too). The frame
shows what the agent would see; the status line keeps the score. After an answer, click or press
space/Enter for the next image. Esc or closing the window quits. With ``--answer any_step`` (early answers)
typing a digit answers at once, after as few glimpses as you like.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import gymnasium as gym  # noqa: E402
import pygame  # noqa: E402

from ram_env import TASKS, render, task_id  # noqa: E402  (importing ram_env registers the tasks)
from ram_env.datasets import DATASETS, DatasetError  # noqa: E402

STATUS = 52  # height of the status lines under the frame

DIGIT_KEYS = {getattr(pygame, f"K_{d}"): d for d in range(10)} | {getattr(pygame, f"K_KP{d}"): d for d in range(10)}


class Game:
    """One person playing episodes of a single env made with ``render_mode="rgb_array"``.

    :param env: the env (its frames are drawn by :mod:`ram_env.render`)
    :param n_episodes: stop after this many answers (None: until Esc or the window is closed)
    :param seed: seed of the first reset
    """

    def __init__(self, env: gym.Env, n_episodes: int | None = None, seed: int | None = None, fps: int = 30):
        if env.render_mode != "rgb_array":
            raise ValueError(f"Game needs an env made with render_mode='rgb_array', got {env.render_mode!r}")
        self.env = env
        task = env.unwrapped.task
        self.n_glimpses = task.n_glimpses
        self.any_step = task.any_step  # a digit answers at once, whatever the glimpses taken
        self.layout = render.frame_layout(task.retina)
        self.n_episodes = n_episodes
        self.fps = fps
        self.score = 0
        self.played = 0
        self.running = True
        self.phase = "look"  # "look": click to glimpse; "answer": type the digit; "result": see the answer
        self.correct: bool | None = None
        self.owns_display = not pygame.display.get_init()
        pygame.display.init()
        self.window = pygame.display.set_mode((self.layout.width, self.layout.height + STATUS))
        pygame.display.set_caption(f"RAM gym: {env.spec.id if env.spec else 'play'}")
        self._new_episode(seed)

    # -- the rules ------------------------------------------------------------------------------------

    def _t(self) -> int:
        return int(self.env.unwrapped.task.t[0])

    def _new_episode(self, seed: int | None = None) -> None:
        self.obs, _ = self.env.reset(seed=seed)
        self.correct = None
        self.phase = "answer" if self._t() >= self.n_glimpses else "look"
        self.dirty = True

    def look(self, location: np.ndarray) -> None:
        """Take the next glimpse at ``location``."""
        if self.phase != "look":
            return
        self.obs, *_ = self.env.step(self._action(np.asarray(location, dtype=np.float32), 0, stop=0))
        if self._t() >= self.n_glimpses:
            self.phase = "answer"
        self.dirty = True

    def _action(self, location: np.ndarray, label: int, stop: int) -> dict:
        action = {"location": location, "label": int(label)}
        return {**action, "stop": stop} if self.any_step else action

    def answer(self, digit: int) -> None:
        """Answer ``digit``: once every glimpse is taken, or at any time on a task with early answers."""
        if self.phase != "answer" and not (self.any_step and self.phase == "look"):
            return
        self.obs, reward, terminated, _, info = self.env.step(self._action(self.obs["location"], digit, stop=1))
        assert terminated
        self.correct = bool(info["correct"])
        self.score += int(self.correct)
        self.played += 1
        self.phase = "result"
        self.dirty = True

    def next(self) -> None:
        if self.phase != "result":
            return
        if self.n_episodes is not None and self.played >= self.n_episodes:
            self.running = False
        else:
            self._new_episode()

    def handle(self, event: pygame.event.Event) -> None:
        """React to one pygame event."""
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN:
            if event.key == pygame.K_ESCAPE:
                self.running = False
            elif event.key in DIGIT_KEYS:
                self.answer(DIGIT_KEYS[event.key])
            elif event.key in (pygame.K_SPACE, pygame.K_RETURN, pygame.K_KP_ENTER):
                self.next()
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            if self.phase == "look":
                location = self.layout.pixel_to_location(event.pos)
                if location is not None:
                    self.look(location)
            elif self.phase == "result":
                self.next()
        elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
            self.dirty = True

    # -- the screen -----------------------------------------------------------------------------------

    def prompt(self) -> tuple[str, tuple[int, int, int]]:
        if self.phase == "look":
            early = " or type the digit" if self.any_step else ""
            return f"click where to look ({self._t() + 1}/{self.n_glimpses}){early}", render.TEXT_COLOUR
        if self.phase == "answer":
            return "type the digit (0-9)", render.SCALE_COLOURS[0]
        if self.correct:
            return "right! click or space: next", render.RIGHT_COLOUR
        return "wrong. click or space: next", render.WRONG_COLOUR

    def draw(self) -> None:
        frame = self.env.render()
        self.window.fill(render.BACKGROUND)
        self.window.blit(pygame.surfarray.make_surface(frame.transpose(1, 0, 2)), (0, 0))
        text, colour = self.prompt()
        y = self.layout.height
        self.window.blit(render.font(22).render(text, True, colour), (render.MARGIN, y + 2))
        score = f"score {self.score}/{self.played}    Esc quits"
        self.window.blit(render.font(22).render(score, True, render.MUTED_COLOUR), (render.MARGIN, y + 26))
        pygame.display.flip()
        self.dirty = False

    def run(self, max_frames: int | None = None) -> tuple[int, int]:
        """The event loop, until Esc, the window is closed, ``n_episodes`` are answered or ``max_frames`` pass.

        :return: ``(score, played)``
        """
        clock = pygame.time.Clock()
        frames = 0
        try:
            while self.running and (max_frames is None or frames < max_frames):
                for event in pygame.event.get():
                    self.handle(event)
                    if not self.running:
                        break
                if self.running and self.dirty:
                    self.draw()
                clock.tick(self.fps)
                frames += 1
        finally:
            self.close()
        return self.score, self.played

    def close(self) -> None:
        if self.owns_display and pygame.display.get_init():
            pygame.display.quit()
        self.owns_display = False


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    tasks = [task_id(pattern, dataset) for dataset in DATASETS for pattern in TASKS]
    p = argparse.ArgumentParser(prog="ram-play", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--task", default="RAM/MNIST-v0", choices=tasks, metavar="TASK", help="a RAM task id (default: %(default)s)"
    )
    p.add_argument("--data-dir", default=None, help="folder with <dataset>/raw/ (default: $RAM_DATA_DIR, else ./data)")
    p.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="images to play (default: %(default)s)"
    )
    p.add_argument(
        "--episodes", type=positive_int, default=None, help="stop after this many images (default: until Esc)"
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the first image")
    p.add_argument(
        "--answer",
        default="last_step",
        choices=["last_step", "any_step"],
        help="any_step: answer early, after as few glimpses as you like (default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Play from the command line; 0 when the game ends, 2 (and one line on stderr) on bad input."""
    args = parser().parse_args(argv)
    try:
        env = gym.make(args.task, render_mode="rgb_array", split=args.split, data_dir=args.data_dir, answer=args.answer)
    except (DatasetError, ValueError) as e:
        print(f"ram-play: error: {e}", file=sys.stderr)
        return 2
    try:
        score, played = Game(env, args.episodes, args.seed).run()
    except pygame.error as e:  # no display to open a window on
        print(f"ram-play: error: cannot open a window ({e})", file=sys.stderr)
        return 2
    finally:
        env.close()
    print(f"score: {score}/{played}" + (f" ({100 * score / played:.0f}% right)" if played else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
