"""The RAM agent's training step: samples per second before and after the speed-ups, exp1 and exp3, in one run.

    python bench/bench_step.py [--rounds 3] [--seconds 4] [--device cpu] [--data-dir DIR]

(MNIST from ``--data-dir`` or ``$RAM_DATA_DIR``; about two minutes on a 2-core machine.)

Each variant runs :func:`agents.training.loop.update` exactly as training does (the env from
:func:`~agents.training.config.make_envs`, the network from :func:`~agents.training.config.make_model`, Adam and
the schedule from :func:`~agents.training.loop.make_optimizer`) at the preset's batch, on the next images of a
shuffled epoch:

- ``exp1``: ``--preset exp1`` (28x28 MNIST, 6 glimpses, MLP glimpse network, rectifier RNN, batch 512);
- ``exp3``: ``--preset exp3`` (60x60 cluttered MNIST, 8 glimpses of 3 patches, convolutional glimpse network,
  LSTM core, batch 256).

Variants (``--variants``): ``fp32`` is the step as it was before (the baseline every ratio is against),
``bf16`` is ``--precision bf16`` (autocast: matmuls and convolutions in bfloat16), ``compile`` is the fp32 step with
the network's step under ``torch.compile`` (tried, not kept: see results/notes.md; pass it to see).

The variants of a setting alternate for ``--rounds`` rounds of about ``--seconds`` each, so that other work on a
shared machine weighs on all alike, and the best round of each is kept. Both this process's CPU time (what the
step costs) and the wall clock (what a busy machine gave it) are printed; ratios are of CPU time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import ram_env  # noqa: F401  (registers the ids)
from agents.training import loop
from agents.training.config import TrainConfig, make_envs, make_model

CONV_LSTM = dict(core="lstm", glimpse_net="conv", std=0.25)
SETTINGS = {
    "exp1": TrainConfig(env_id="RAM/MNIST-v0", model=dict(std=0.15), batch_size=512),
    "exp3": TrainConfig(env_id="RAM/ClutteredMNIST60-v0", model=CONV_LSTM, batch_size=256, lr=2e-3),
}


class Step:
    """One variant's training step on one setting, and its best timed round."""

    def __init__(self, config: TrainConfig, variant: str, device: torch.device, seed: int = 1):
        torch.manual_seed(seed)
        self.config = replace(config, precision="bf16" if variant == "bf16" else "fp32", device=str(device))
        self.device = device
        self.envs = make_envs(self.config, "train", config.batch_size)
        self.envs.reset(seed=seed)
        self.model = make_model(self.config, self.envs).to(device).train()
        if variant == "compile":
            self.model.forward = torch.compile(self.model.forward)
        n_images = self.envs.unwrapped.n_images
        self.optimizer, self.scheduler = loop.make_optimizer(self.config, self.model, n_images // config.batch_size)
        self.order = np.random.default_rng(seed).permutation(n_images)
        self.next, self.updates = 0, 0
        self.cpu = self.wall = float("inf")  # best seconds per update

    def step(self) -> None:
        batch = self.config.batch_size
        if self.next + batch > len(self.order):
            self.next = 0
        images = self.order[self.next : self.next + batch]
        self.next += batch
        loop.update(self.model, self.optimizer, self.scheduler, self.envs, images, self.config, self.device)

    def warm_up(self, seconds: float) -> None:
        start, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - start < 1.0:
            self.step()
            n += 1
        self.updates = max(3, int(seconds * n / (time.perf_counter() - start)))

    def round(self) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(self.updates):
            self.step()
        if self.device.type == "cuda":  # the GPU's queued work belongs to this round's time
            torch.cuda.synchronize(self.device)
        self.wall = min(self.wall, (time.perf_counter() - t0) / self.updates)
        self.cpu = min(self.cpu, (time.process_time() - c0) / self.updates)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="exp1,exp3", help="comma-separated: exp1, exp3 (default both)")
    p.add_argument("--variants", default="fp32,bf16", help="comma-separated; the first is the baseline")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="length of one timed round of one variant")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as training)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bench_step: {where} (load average {load:.1f} at start), torch {torch.__version__}, {args.threads} thread")
    variants = args.variants.split(",")
    for name in args.settings.split(","):
        config = replace(SETTINGS[name], data_dir=args.data_dir)
        steps = {v: Step(config, v, device) for v in variants}
        for s in steps.values():
            s.warm_up(args.seconds)
        for _ in range(args.rounds):
            for s in steps.values():
                s.round()
        base = steps[variants[0]]
        for v, s in steps.items():
            batch = config.batch_size
            print(
                f"{name}  {v:<8} {batch / s.cpu:8.0f} samples/s CPU time  {batch / s.wall:8.0f} wall  "
                f"{base.cpu / s.cpu:5.2f}x CPU  {base.wall / s.wall:5.2f}x wall",
                flush=True,
            )


if __name__ == "__main__":
    main()
