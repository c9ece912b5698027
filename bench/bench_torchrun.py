"""Training speed on two processes: ``torchrun --nproc_per_node 2`` against one process, one torch thread each.

    python bench/bench_torchrun.py [--settings exp1 exp2] [--batch 512] [--updates 40] [--warmup 3] [--rounds 3]

(MNIST from ``$RAM_DATA_DIR``, e.g. ``RAM_DATA_DIR=../shared/data``; about two minutes.)

For each setting (the paper's exp1 and exp2, as in ``bench/bench_train.py``) it starts, one after the other,
``python bench/bench_torchrun.py --worker SETTING`` (one process) and the same under
``torchrun --standalone --nproc_per_node 2`` (two ranks, gloo), each with one torch thread per process. A worker
runs :func:`agents.reinforce.update` exactly as :func:`agents.reinforce.train` does (the global ``--batch`` split
over the ranks, DistributedDataParallel averaging the gradients), times ``--updates`` updates after ``--warmup``,
and reports training samples (images) per second. The two runs alternate for ``--rounds`` pairs, and the
median of the pairs' ratios is printed last. The two-rank worker also times a bare all-reduce of the
network's gradients, to show how much of an update the communication costs.

On a machine with two cores, two ranks can at best double the speed; other work on the machine lowers it.
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

from agents import distributed, reinforce

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import EPOCH, SETTINGS  # noqa: E402  (this folder is no package)


def worker(setting: str, batch: int, updates: int, warmup: int) -> None:
    """One rank: time ``updates`` training updates of the global ``batch``; rank 0 prints the numbers as JSON."""
    torch.set_num_threads(1)
    device = distributed.setup("cpu")
    world = distributed.world_size()
    s = SETTINGS[setting]
    env_kwargs = {k: s[k] for k in ("translated_size", "n_glimpses", "patch_size", "n_patches", "scale")}
    config = reinforce.TrainConfig(
        env_id=s["env_id"], env_kwargs=env_kwargs, model={"std": s["std"]}, batch_size=batch, device="cpu"
    )
    envs = reinforce.make_envs(config, "train", batch // world)
    envs.reset(seed=distributed.rank_seed(config.seed))
    torch.manual_seed(config.seed)
    model = reinforce.make_model(config, envs)
    optimizer, scheduler = reinforce.make_optimizer(config, model, EPOCH // batch)
    net = distributed.wrap(model, device)
    order = np.random.default_rng(config.seed).permutation(EPOCH)

    def step(k: int) -> None:
        images = order[k * batch : (k + 1) * batch]
        reinforce.update(net, optimizer, scheduler, envs, distributed.shard(images), config, device)

    for k in range(warmup):
        step(k)
    distributed.barrier()
    start = time.perf_counter()
    for k in range(warmup, warmup + updates):
        step(k)
    distributed.barrier()
    seconds = time.perf_counter() - start
    result = {"samples_per_second": updates * batch / seconds, "update_ms": 1000 * seconds / updates}
    if distributed.active():
        result["allreduce_ms"] = allreduce_ms(sum(p.numel() for p in model.parameters()))
    if distributed.is_main():
        print(json.dumps(result), flush=True)


def allreduce_ms(n_floats: int, repeats: int = 20) -> float:
    """Milliseconds of one all-reduce of ``n_floats`` float32 (the gradients DDP averages each update)."""
    import torch.distributed as dist

    grads = torch.zeros(n_floats)
    dist.all_reduce(grads)
    distributed.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(grads)
    return 1000 * (time.perf_counter() - start) / repeats


def measure(launcher: list[str], setting: str, args: argparse.Namespace) -> dict:
    """Run a worker under ``launcher`` and return what its rank 0 printed."""
    script = [str(Path(__file__).resolve()), "--worker", setting]
    flags = ["--batch", str(args.batch), "--updates", str(args.updates), "--warmup", str(args.warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(launcher + script + flags, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"{' '.join(launcher)} {setting} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["exp1", "exp2"])
    p.add_argument("--batch", type=int, default=reinforce.TrainConfig().batch_size, help="global batch (default 512)")
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="pairs of measurements per setting (default 3)")
    p.add_argument("--worker", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.updates, args.warmup)
        distributed.finish()  # with the worker's DistributedDataParallel model gone
        return
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    launchers = {"1 process": [sys.executable], "torchrun x2": [torchrun, "--standalone", "--nproc_per_node", "2"]}
    print(f"training samples/s, global batch {args.batch}, one torch thread per process, {os.cpu_count()} CPUs")
    for setting in args.settings:
        ratios = []
        for r in range(args.rounds):  # alternated, so that a machine that slows down or speeds up hits both alike
            one, two = (measure(launcher, setting, args) for launcher in launchers.values())
            ratios.append(two["samples_per_second"] / one["samples_per_second"])
            print(
                f"  {setting} round {r + 1}: 1 process {one['samples_per_second']:7.0f}/s ({one['update_ms']:.0f} ms "
                f"an update)   torchrun x2 {two['samples_per_second']:7.0f}/s ({two['update_ms']:.0f} ms, of which a "
                f"bare gradient all-reduce {two['allreduce_ms']:.1f} ms)   ratio {ratios[-1]:.2f}x"
            )
        print(f"  {setting}: median ratio {np.median(ratios):.2f}x over {args.rounds} rounds")


if __name__ == "__main__":
    main()
