"""Take the agent's place: click where to look next, then give the answer.

    ram-play [--task RAM/MNIST-v0] [--data-dir DIR] [--split test] [--episodes N] [--seed S] [--answer any_step]
             [--n-objects K] [--target label|sum|location] [--data NAME | --image-folder DIR]
    python -m ram_env.play ...      (the same)

Each episode starts with the first glimpse at the task's start location. Click on the canvas to take
each of the next ``n_glimpses - 1`` glimpses there; then answer what the task asks:

- a class (``target="label"``): type it (0-9, keypad too); with more than ten classes, or the sum of several digits
  (``target="sum"``), type the number and press Enter; with several digits (``--n-objects``), one class each, left
  to right. Backspace takes back a key;
- where the digit is (``target="location"``): click on its centre.

The frame shows what the agent would see; the status line keeps the score. After an answer, click or press
space/Enter for the next image. Esc or closing the window quits. With ``--answer any_step`` (early answers)
typing answers at once (or Enter, for a location), after as few glimpses as you like.
``--data`` (a set by name, such as ``CIFAR10``) or ``--image-folder`` (your own images) plays on other images:
``RAM/Images-v0`` with the glimpse settings that suit them, or the ``--task`` given, with its images replaced.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import gymnasium as gym  # noqa: E402
import pygame  # noqa: E402

from ram_env import DRAM_TASKS, TASKS, answers, render, sources, task_id  # noqa: E402  (registers the tasks)
from ram_env.datasets import DATASETS, DatasetError  # noqa: E402

STATUS = 52  # height of the status lines under the frame

DIGIT_KEYS = {getattr(pygame, f"K_{d}"): d for d in range(10)} | {getattr(pygame, f"K_KP{d}"): d for d in range(10)}
ENTER_KEYS = (pygame.K_SPACE, pygame.K_RETURN, pygame.K_KP_ENTER)


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
        self.any_step = task.any_step  # an answer may come before the last glimpse
        self.kind = task.answer
        self.clicks_answer = isinstance(self.kind, answers.Location)
        self.noun = "digit" if task.data.name in ("MNIST", "ColourClutteredMNIST") else "class"
        self.n_numbers = self.kind.n_objects if isinstance(self.kind, answers.Labels) else 1  # typed per answer
        self.layout = render.frame_layout(task.retina)
        self.n_episodes = n_episodes
        self.fps = fps
        self.score = 0
        self.played = 0
        self.running = True
        self.phase = "look"  # "look": click to glimpse; "answer": type or click the answer; "result": see it
        self.correct: bool | None = None
        self.typed: list[int] = []  # the numbers of the answer typed so far (several digits: one each)
        self.entry = ""  # the keys of the number being typed
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
        self.typed, self.entry = [], ""
        self.phase = "answer" if self._t() >= self.n_glimpses else "look"
        self.dirty = True

    def look(self, location: np.ndarray) -> None:
        """Take the next glimpse at ``location``."""
        if self.phase != "look":
            return
        blank = np.zeros(2, np.float32) if self.clicks_answer else np.zeros(self.kind.truth_shape, np.int64)
        self.obs, *_ = self.env.step(self._action(np.asarray(location, dtype=np.float32), blank, stop=0))
        if self._t() >= self.n_glimpses:
            self.phase = "answer"
        self.dirty = True

    def _action(self, location: np.ndarray, answer, stop: int) -> dict:
        action = {"location": location, self.kind.key: int(answer) if np.ndim(answer) == 0 else answer}
        return {**action, "stop": stop} if self.any_step else action

    def _may_answer(self) -> bool:
        return self.phase == "answer" or (self.any_step and self.phase == "look")

    def answer(self, value) -> None:
        """Give the whole answer (a class or sum, K classes, or a point): once every glimpse is taken, or at any
        time on a task with early answers."""
        if not self._may_answer():
            return
        if not self.clicks_answer and np.ndim(value):
            value = np.asarray(value, np.int64)
        self.obs, reward, terminated, _, info = self.env.step(self._action(self.obs["location"], value, stop=1))
        assert terminated
        self.correct = bool(info["correct"])
        self.score += int(self.correct)
        self.played += 1
        self.phase = "result"
        self.dirty = True

    def type_key(self, digit: int) -> None:
        """One typed digit of the answer. A number is complete when no digit more could stay in range (each key,
        with ten classes or fewer), or at Enter; a key that would leave the range is ignored."""
        if self.clicks_answer or not self._may_answer():
            return
        entry = self.entry + str(digit)
        if int(entry) >= self.kind.n_answers:
            return
        self.phase, self.entry, self.dirty = "answer", entry, True
        if entry == "0" or 10 * int(entry) >= self.kind.n_answers:
            self.enter()

    def enter(self) -> None:
        """Enter: the number typed so far is complete; the answer goes once it has all its numbers."""
        if self.clicks_answer and self.phase == "look" and self.any_step:
            self.phase, self.dirty = "answer", True  # a click now answers
        if not self.entry:
            return
        self.typed.append(int(self.entry))
        self.entry, self.dirty = "", True
        if len(self.typed) == self.n_numbers:
            typed, self.typed = self.typed, []
            self.answer(typed if self.n_numbers > 1 else typed[0])

    def back(self) -> None:
        """Backspace: take back the last key (of the number being typed, else the last number)."""
        if self.entry:
            self.entry = self.entry[:-1]
        elif self.typed:
            self.entry = str(self.typed.pop())[:-1]
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
                self.type_key(DIGIT_KEYS[event.key])
            elif event.key == pygame.K_BACKSPACE:
                self.back()
            elif event.key in ENTER_KEYS:
                self.next() if self.phase == "result" else self.enter()
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self.click(event.pos)
        elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
            self.dirty = True

    def click(self, pos: tuple[int, int]) -> None:
        """A click: a glimpse there, the answer there (a location task), or the next image after a result."""
        if self.phase == "result":
            self.next()
            return
        location = self.layout.pixel_to_location(pos)
        if location is None:
            return
        if self.phase == "look":
            self.look(location)
        elif self.clicks_answer:
            self.answer(location)

    # -- the screen -----------------------------------------------------------------------------------

    def what(self) -> str:
        """What to type: "the digit (0-9)", "the sum (0-18), then Enter", "the 2 digits, left to right (0-9)"."""
        k, n = self.kind.n_objects, self.kind.n_answers
        noun = "sum" if isinstance(self.kind, answers.Sum) else self.noun
        if isinstance(self.kind, answers.Labels):
            noun = f"{k} {noun}es" if noun == "class" else f"{k} {noun}s"
            return f"the {noun}, left to right (0-{n - 1}{', Enter after each' if n > 10 else ''})"
        return f"the {noun} (0-{n - 1}){', then Enter' if n > 10 else ''}"

    def prompt(self) -> tuple[str, tuple[int, int, int]]:
        if self.phase == "look":
            early = ""
            if self.any_step:
                early = " or press Enter to answer" if self.clicks_answer else " or type the answer"
                early = f" or type the {self.noun}" if type(self.kind) is answers.Label else early
            return f"click where to look ({self._t() + 1}/{self.n_glimpses}){early}", render.TEXT_COLOUR
        if self.phase == "answer":
            if self.clicks_answer:
                return f"click on the centre of the {'digit' if self.noun == 'digit' else 'object'}", (
                    render.SCALE_COLOURS[0]
                )
            typed = " ".join(map(str, self.typed)) + (" " if self.typed and self.entry else "") + self.entry
            return f"type {self.what()}" + (f": {typed}_" if typed else ""), render.SCALE_COLOURS[0]
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
    tasks = [task_id(pattern, dataset) for dataset in DATASETS for pattern in {**TASKS, **DRAM_TASKS}]
    p = argparse.ArgumentParser(prog="ram-play", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--task",
        default=None,
        choices=[*tasks, "RAM/Images-v0"],
        metavar="TASK",
        help="a RAM task id (default: RAM/MNIST-v0; with --data or --image-folder, RAM/Images-v0)",
    )
    p.add_argument("--data-dir", default=None, help="folder with <dataset>/raw/ (default: $RAM_DATA_DIR, else ./data)")
    images = p.add_mutually_exclusive_group()
    images.add_argument("--data", choices=sources.NAMED, metavar="NAME", help="play on a set by name, e.g. CIFAR10")
    images.add_argument("--image-folder", metavar="DIR", help="play on your images: DIR/<class>/<image> (ImageFolder)")
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
    p.add_argument("--n-objects", type=positive_int, default=None, help="digits per canvas (default: the task's)")
    p.add_argument("--target", default=None, choices=answers.TARGETS, help="what the answer says (default: the task's)")
    return p


def make_env(args: argparse.Namespace) -> gym.Env:
    """The env the command line asks for, rendering frames for the game."""
    own = args.data is not None or args.image_folder is not None
    task = args.task or ("RAM/Images-v0" if own else "RAM/MNIST-v0")
    options = dict(n_objects=args.n_objects, target=args.target, dataset=args.data, image_folder=args.image_folder)
    options = {key: value for key, value in options.items() if value is not None}
    return gym.make(
        task, render_mode="rgb_array", split=args.split, data_dir=args.data_dir, answer=args.answer, **options
    )


def main(argv: list[str] | None = None) -> int:
    """Play from the command line; 0 when the game ends, 2 (and one line on stderr) on bad input."""
    args = parser().parse_args(argv)
    try:
        env = make_env(args)
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
