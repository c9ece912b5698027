"""Colour tasks against the grayscale 60x60 one: vector glimpse-steps/s and cost per pixel of canvas, and memory.

    .venv/bin/python bench/bench_colour.py [--seconds 3] [--num-envs 256]

Three tasks on ``RAM/Images-v0`` (numpy backend, ``--num-envs`` episodes, autoreset steps included), timed in
this process one after the other, rounds alternated (the best round of each counts):

- ``gray 60x60``: 28x28 gray images on a 60x60 canvas with 4 clutter pieces of 8 px, 12 px patches, 3 scales,
  8 glimpses (the paper's cluttered task; ``RAM/ClutteredMNIST60-v0``'s settings);
- ``colour 32x32``: 32x32 colour images, the canvas the image, the settings that suit it (8 px, 2 scales, 6 glimpses);
- ``colour 64x64``: 64x64 colour images, likewise (12 px, 3 scales, 8 glimpses).

Images are random (the speed does not depend on what they show). Printed per task: glimpse-steps/s, then the time
per step per canvas pixel (H x W) and per canvas value (H x W x C), each as a ratio to gray 60x60's: the issue's
target is at most 3x per pixel. Then the memory a colour set holds: the uint8 images (exactly ``N x H x W x C``
bytes: nothing is copied as floats) and the env's per-episode arrays, computed from the arrays the env holds.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import ram_env  # noqa: F401  (registers the ids)

TASKS = {
    "gray 60x60": dict(shape=(28, 28), kwargs=dict(translated_size=60, n_clutter=4, clutter_size=8)),
    "colour 32x32": dict(shape=(32, 32, 3), kwargs={}),
    "colour 64x64": dict(shape=(64, 64, 3), kwargs={}),
}


def make(shape: tuple, kwargs: dict, num_envs: int, n_images: int = 2000):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, *shape)).astype(np.uint8)
    labels = rng.integers(0, 10, n_images)
    return gym.make_vec(
        "RAM/Images-v0", num_envs, vectorization_mode="vector_entry_point", images=images, labels=labels, **kwargs
    )


def steps_per_second(envs, seconds: float) -> float:
    """Glimpse-steps/s (env steps x envs) over about ``seconds`` of stepping with random actions."""
    rng = np.random.default_rng(1)
    n = envs.num_envs
    actions = [
        {"location": rng.uniform(-1, 1, (n, 2)).astype(np.float32), "label": rng.integers(0, 10, n)} for _ in range(64)
    ]
    envs.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions[:16]:
            envs.step(action)
        steps += 16
    return steps * n / (time.perf_counter() - start)


def memory(shape: tuple, n_images: int, num_envs: int) -> tuple[float, float]:
    """MB of the uint8 images of a set of ``n_images`` images of ``shape`` and MB of one env's episode arrays."""
    envs = make(shape, {}, num_envs, n_images=4)  # the episode arrays do not depend on the number of images
    task = envs.unwrapped.task
    per_episode = sum(a.nbytes for a in (task.canvases, task.sums, task.glimpse, task.location, task.index))
    return n_images * int(np.prod(shape)) / 1e6, per_episode / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per timed round and task")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, tasks alternated within each")
    parser.add_argument("--num-envs", type=int, default=256)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy backend, {args.num_envs} envs, RAM/Images-v0")
    envs = {name: make(t["shape"], t["kwargs"], args.num_envs) for name, t in TASKS.items()}
    best = dict.fromkeys(TASKS, 0.0)
    for _ in range(args.rounds):
        for name, env in envs.items():
            best[name] = max(best[name], steps_per_second(env, args.seconds))
    base = envs["gray 60x60"].unwrapped.task
    base_pixels = base.spec.height * base.spec.width
    for name, env in envs.items():
        task = env.unwrapped.task
        pixels = task.spec.height * task.spec.width
        per_pixel = (best["gray 60x60"] * base_pixels) / (best[name] * pixels)
        per_value = per_pixel * base.channels / task.channels
        c = task.config
        print(
            f"{name:13s} {best[name]:>10,.0f} glimpse-steps/s  ({c.patch_size} px x {c.n_patches} scales x "
            f"{task.channels} ch)  time per step per canvas pixel: {per_pixel:.2f}x gray 60x60's, "
            f"per canvas value: {per_value:.2f}x"
        )
    for n, shape in ((50_000, (32, 32, 3)), (100_000, (64, 64, 3))):
        images, episodes = memory(shape, n, args.num_envs)
        print(
            f"memory: {n:,} images {shape[0]}x{shape[1]} colour: {images:,.1f} MB of uint8 images; "
            f"{episodes:,.1f} MB of episode arrays for {args.num_envs} envs (canvases, block sums, glimpses)"
        )


if __name__ == "__main__":
    main()
