"""Training speed on two processes: ``torchrun --nproc_per_node 2`` against one process, one torch thread each.

    python bench/bench_torchrun.py [--settings exp1 exp2] [--batch 512] [--updates 40] [--warmup 3] [--rounds 5]

(MNIST from ``$RAM_DATA_DIR``, e.g. ``RAM_DATA_DIR=../shared/data``; about three minutes.)

For each setting (the paper's exp1 and exp2, as in ``bench/bench_train.py``) it starts, one after the other,
``python bench/bench_torchrun.py --worker SETTING`` (one process) and the same under
``torchrun --standalone --nproc_per_node 2`` (two ranks, gloo), each with one torch thread per process. A worker
runs :func:`agents.training.loop.update` exactly as :func:`agents.training.loop.train` does (the global ``--batch``
split over the ranks, DistributedDataParallel averaging the gradients), times ``--updates`` updates after ``--warmup``,
and reports training samples (images) per second. The runs alternate for ``--rounds`` rounds, and the
median of the rounds' ratios is printed last. The two-rank worker also times averaging the network's gradients
alone, back to back, by gloo's all-reduce and through shared memory (what the training uses when every rank is
on this machine, :mod:`agents.shared_memory`), to show how much of an update the communication costs.

Each round also runs the two ranks with no gradient averaging (``--no-average``: each trains its own copy on its
half of the batch, so nothing waits for the other rank): the most that two processes can give on this machine,
against which the two ranks' synchronisation cost can be read. On a machine with two cores that ceiling is at
most 2x; the fixed cost of an update, which two ranks each pay in full, and other work on the machine lower it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from agents import distributed, shared_memory
from agents.training import loop
from agents.training.config import TrainConfig, make_envs, make_model

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import EPOCH, SETTINGS  # noqa: E402  (this folder is no package)


def worker(setting: str, batch: int, updates: int, warmup: int, average: bool = True) -> None:
    """One rank: time ``updates`` training updates of the global ``batch``; rank 0 prints the numbers as JSON.
    ``average=False`` leaves the model out of DistributedDataParallel: the ranks meet only before and after."""
    torch.set_num_threads(1)
    device = distributed.setup("cpu")
    world = distributed.world_size()
    s = SETTINGS[setting]
    env_kwargs = {k: s[k] for k in ("translated_size", "n_glimpses", "patch_size", "n_patches", "scale")}
    config = TrainConfig(
        env_id=s["env_id"], env_kwargs=env_kwargs, model={"std": s["std"]}, batch_size=batch, device="cpu"
    )
    envs = make_envs(config, "train", batch // world)
    envs.reset(seed=distributed.rank_seed(config.seed))
    torch.manual_seed(config.seed)
    model = make_model(config, envs)
    optimizer, scheduler = loop.make_optimizer(config, model, EPOCH // batch)
    net = distributed.wrap(model, device) if average else model
    order = np.random.default_rng(config.seed).permutation(EPOCH)

    def step(k: int) -> None:
        images = order[k * batch : (k + 1) * batch]
        loop.update(net, optimizer, scheduler, envs, distributed.shard(images), config, device)

    for k in range(warmup):
        step(k)
    distributed.barrier()
    start = time.perf_counter()
    for k in range(warmup, warmup + updates):
        step(k)
    distributed.barrier()
    seconds = time.perf_counter() - start
    result = {"samples_per_second": updates * batch / seconds, "update_ms": 1000 * seconds / updates}
    if distributed.active() and average:
        result.update(averaging_ms(sum(p.numel() for p in model.parameters()), device))
    if distributed.is_main():
        print(json.dumps(result), flush=True)


def averaging_ms(n_floats: int, device: torch.device, repeats: int = 20) -> dict[str, float]:
    """Milliseconds of averaging ``n_floats`` float32 (the gradients of an update) over the ranks, back to back:
    gloo's all-reduce, and where it applies the shared-memory average that the training uses instead."""
    grads, ways = torch.zeros(n_floats), {"allreduce_ms": lambda: dist.all_reduce(grads)}
    if shared_memory.applies(device, distributed.world_size()):
        state = shared_memory.SharedMemoryAverage.create(n_floats, distributed.TIMEOUT)
        ways["shared_ms"] = lambda: state.average(grads)
    timings = {}
    for name, average in ways.items():
        average()
        distributed.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            average()
        timings[name] = 1000 * (time.perf_counter() - start) / repeats
    return timings


def measure(launcher: list[str], setting: str, args: argparse.Namespace, average: bool = True) -> dict:
    """Run a worker under ``launcher`` and return what its rank 0 printed."""
    script = [str(Path(__file__).resolve()), "--worker", setting]
    flags = ["--batch", str(args.batch), "--updates", str(args.updates), "--warmup", str(args.warmup)]
    flags += [] if average else ["--no-average"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(launcher + script + flags, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"{' '.join(launcher)} {setting} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def averaging(timings: dict) -> str:
    shared = f", {timings['shared_ms']:.1f} ms in shared memory (used)" if "shared_ms" in timings else ""
    return f"{timings['allreduce_ms']:.1f} ms by gloo's all-reduce{shared}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["exp1", "exp2"])
    p.add_argument("--batch", type=int, default=TrainConfig().batch_size, help="global batch (default 512)")
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5, help="rounds of measurements per setting (default 5)")
    p.add_argument("--worker", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    p.add_argument("--no-average", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.updates, args.warmup, average=not args.no_average)
        distributed.finish()  # with the worker's DistributedDataParallel model gone
        return
    one_process, two_ranks = [sys.executable], [str(Path(sys.executable).with_name("torchrun")), "--standalone"]
    two_ranks += ["--nproc_per_node", "2"]
    print(f"training samples/s, global batch {args.batch}, one torch thread per process, {os.cpu_count()} CPUs")
    for setting in args.settings:
        ratios, ceilings = [], []
        for r in range(args.rounds):  # alternated, so that a machine that slows down or speeds up hits all alike
            one, two = measure(one_process, setting, args), measure(two_ranks, setting, args)
            free = measure(two_ranks, setting, args, average=False)
            ratios.append(two["samples_per_second"] / one["samples_per_second"])
            ceilings.append(free["samples_per_second"] / one["samples_per_second"])
            print(
                f"  {setting} round {r + 1}: 1 process {one['samples_per_second']:7.0f}/s ({one['update_ms']:.0f} ms "
                f"an update)   torchrun x2 {two['samples_per_second']:7.0f}/s ({two['update_ms']:.0f} ms; averaging "
                f"the gradients alone: {averaging(two)})   ratio {ratios[-1]:.2f}x   "
                f"unaveraged {free['update_ms']:.0f} ms, {ceilings[-1]:.2f}x"
            )
        print(
            f"  {setting}: median ratio {np.median(ratios):.2f}x over {args.rounds} rounds (two ranks that never "
            f"wait for each other: {np.median(ceilings):.2f}x)"
        )


if __name__ == "__main__":
    main()
