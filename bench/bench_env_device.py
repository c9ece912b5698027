"""Training speed with the episodes on the numpy backend against the torch backend on the training device.

    python bench/bench_env_device.py                  # both networks on the CPU; episodes: numpy vs torch on the CPU
    python bench/bench_env_device.py --device cuda    # network on the GPU; episodes: numpy (host) vs GPU-resident

Each loop is the RAM agent's own update (:func:`agents.training.loop.update`) at the default batch, on the exp2 and
exp3 tasks; the loops take turns in timed rounds and the best round of each is kept. Prints samples (training
episodes) per second, the ratio torch/numpy, and on a GPU the peak GPU memory of each loop.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from agents.training.config import TrainConfig, make_envs, make_model
from agents.training.loop import make_optimizer, update

TASKS = {
    "exp2": dict(env_id="RAM/TranslatedMNIST60-v0", model={"std": 0.25, "core": "lstm"}),
    "exp3": dict(env_id="RAM/ClutteredMNIST60-v0", model={"std": 0.25, "core": "lstm"}),
}


class Loop:
    """The RAM agent's training updates on one task, with the episodes on ``env_device`` (None: numpy)."""

    def __init__(self, task: dict, batch: int, device: torch.device, env_device: torch.device | None, data_dir):
        torch.manual_seed(1)
        self.config = TrainConfig(**task, batch_size=batch, device=str(device), data_dir=data_dir)
        self.device = device
        self.envs = make_envs(self.config, "train", batch, env_device)
        self.envs.reset(seed=1)
        self.model = make_model(self.config, self.envs).to(device).train()
        self.optimizer, self.scheduler = make_optimizer(self.config, self.model, 100)
        self.rng = np.random.default_rng(1)
        self.best = float("inf")  # seconds per update

    def step(self) -> None:
        images = self.rng.choice(self.envs.unwrapped.n_images, self.config.batch_size, replace=False)
        update(self.model, self.optimizer, self.scheduler, self.envs, images, self.config, self.device)

    def round(self, updates: int) -> None:
        self.sync()
        start = time.perf_counter()
        for _ in range(updates):
            self.step()
        self.sync()
        self.best = min(self.best, (time.perf_counter() - start) / updates)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def peak_memory(loop: Loop, updates: int) -> str:
    """Peak GPU memory of a few updates of ``loop`` alone (nothing on a CPU)."""
    if loop.device.type != "cuda":
        return ""
    torch.cuda.reset_peak_memory_stats(loop.device)
    loop.round(updates)
    return f"  peak GPU memory {torch.cuda.max_memory_allocated(loop.device) / 2**20:,.0f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", type=torch.device, default=torch.device("cpu"), help="the network's (default cpu)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="default: TrainConfig's")
    p.add_argument("--updates", type=int, default=10, help="updates a timed round (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of each loop, in turns (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default $RAM_DATA_DIR, else ./data)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else platform.processor() or "cpu"
    print(f"bench_env_device: network on {args.device} ({where}), {os.cpu_count()} CPUs, batch {args.batch_size}")
    for name in args.tasks:
        loops = {
            "numpy": Loop(TASKS[name], args.batch_size, args.device, None, args.data_dir),
            "torch": Loop(TASKS[name], args.batch_size, args.device, args.device, args.data_dir),
        }
        for loop in loops.values():
            loop.round(2)  # warm-up
        for _ in range(args.repeats):
            for loop in loops.values():
                loop.round(args.updates)
        for backend, loop in loops.items():
            rate = args.batch_size / loop.best
            print(f"{name}  episodes on {backend:<5} {rate:10,.0f} samples/s{peak_memory(loop, 2)}")
        print(f"{name}  torch backend / numpy backend: {loops['numpy'].best / loops['torch'].best:.2f}x")


if __name__ == "__main__":
    main()
