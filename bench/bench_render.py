"""Does rendering cost anything when it is off? Steps per second of one env, three ways, in one process.

    python bench/bench_render.py [--task RAM/MNIST-v0] [--steps 3000] [--repeats 5]

- ``render_mode=None``: what training uses;
- ``render_mode="rgb_array"``, ``render()`` never called: the mode is set but nothing draws;
- ``render_mode="rgb_array"``, ``render()`` after every reset and step: a frame per step.

The three are timed in turns (``--repeats`` rounds) and the median of each is printed, so that other
work on a shared machine weighs on them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import ram_env  # noqa: E402,F401


def steps_per_second(env, actions: list[dict], draw: bool) -> float:
    env.reset(seed=0)
    if draw:
        env.render()
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, _, _ = env.step(action)
        if draw:
            env.render()
        if terminated:
            env.reset()
            if draw:
                env.render()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="RAM/MNIST-v0")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    cases = {
        "render_mode=None": (None, False),
        "rgb_array, render() never called": ("rgb_array", False),
        "rgb_array, render() every step": ("rgb_array", True),
    }
    envs = {
        name: gym.make(args.task, render_mode=mode, data_dir=args.data_dir).unwrapped
        for name, (mode, _) in cases.items()
    }
    space = envs["render_mode=None"].action_space
    space.seed(0)
    actions = [space.sample() for _ in range(args.steps)]
    for action in actions:
        action["location"] = np.asarray(action["location"], dtype=np.float32)
    draw_steps = max(1, args.steps // 10)  # drawing is slow: fewer steps are enough to time it
    for name, (_, draw) in cases.items():  # warm up (dataset cache, fonts)
        steps_per_second(envs[name], actions[:50], draw)

    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (_, draw) in cases.items():
            rates[name].append(steps_per_second(envs[name], actions[:draw_steps] if draw else actions, draw))

    base = statistics.median(rates["render_mode=None"])
    print(f"{args.task}: steps/s of the single env (median of {args.repeats} rounds)")
    for name, values in rates.items():
        median = statistics.median(values)
        spread = f"range {min(values):.0f}-{max(values):.0f}"
        print(f"  {name:36s} {median:10.0f}   ({median / base:6.1%} of render_mode=None; {spread})")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
