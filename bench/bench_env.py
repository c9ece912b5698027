"""Environment speed: the retina against the reference's glimpse loop, single-env steps/s, vector glimpse-steps/s.

    RAM_DATA_DIR=../shared/data .venv/bin/python bench/bench_env.py [--seconds 2] [--device cuda]

1. Glimpse extraction at 128 images on the 60x60 / 3-patch and 100x100 / 4-patch settings (12 px patches,
   scale 2). Two honest baselines of the reference's method, both checked to give the same numbers as ours:

   - ``reference (torch)``: the reference's sensor as written (kevinzakka/recurrent-visual-attention, which the
     reference follows): for each scale, zero-pad the whole batch by half the patch, slice every image's patch
     in a Python loop, stack, then ``avg_pool2d`` down to the patch size;
   - ``loop (numpy)``: for each image, zero-pad it once, then for each patch slice it and average its
     blocks (``reshape(...).mean``).

   Ours is timed three ways: the retina alone on prebuilt block sums (what an env step costs: the
   sums are built once per canvas at reset and serve all its glimpses); an episode (sums once, then
   8 glimpses), per glimpse; and sums + retina for every glimpse (as if every glimpse were on a fresh
   canvas; the least favourable case for us).
2. Single-env steps/s on ``RAM/MNIST-v0`` (episodes of 6 steps, resets included), through ``gym.make``
   (Gymnasium's default wrappers) and on the unwrapped env.
3. Vector-env glimpse-steps/s (steps x envs, autoreset steps included) with 256 envs on
   ``RAM/TranslatedMNIST60-v0`` through ``gym.make_vec(..., vectorization_mode="vector_entry_point")``: the
   numpy backend, then the torch backend (``device=``, actions handed over as tensors on the device), and
   their ratio. ``--device cuda`` on a GPU machine (``--num-envs`` for a bigger batch); ``cpu`` by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import ram_env  # noqa: F401  (registers the ids)
from ram_env.sensor import Retina


def timeit(fn, seconds: float, min_runs: int = 3) -> tuple[float, float]:
    """Seconds per call, wall-clock and CPU time of this process: the best of 5 timed batches filling ``seconds``.

    On a machine shared with other work the wall-clock figure also counts the time this process waited
    for a core; the CPU-time figure does not (it still pays for caches shared with the others).
    """
    fn()
    start, runs = time.perf_counter(), 0
    while runs < min_runs or time.perf_counter() - start < seconds / 6:
        fn()
        runs += 1
    per = (time.perf_counter() - start) / runs
    reps = max(1, int(seconds / 6 / per))
    wall = cpu = float("inf")
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(reps):
            fn()
        wall = min(wall, (time.perf_counter() - t0) / reps)
        cpu = min(cpu, (time.process_time() - c0) / reps)
    return wall, cpu


# ------------------------------------------------------------------------------------ the reference's sensor
def reference_torch(
    images: torch.Tensor, locations: torch.Tensor, patch_size: int, n_patches: int, scale: int, canvas_size: int
):
    """The reference's glimpse sensor (kevinzakka/recurrent-visual-attention ``Retina.foveate``), batch (B, 1, S, S).

    Images in [0, 1].

    One change: patch centres are rounded the way our retina rounds them (the reference truncated), so that
    both give the same numbers; this costs nothing.
    """
    phi = []
    size = patch_size
    centre = (locations.double() + 1.0) * (0.5 * canvas_size)
    for _ in range(n_patches):
        start = torch.floor(centre - size / 2 + 0.5).long() + size // 2  # in the padded image
        end = start + size
        padded = F.pad(images, (size // 2, size // 2, size // 2, size // 2))
        patch = []
        for i in range(images.shape[0]):
            patch.append(padded[i, :, start[i, 1] : end[i, 1], start[i, 0] : end[i, 0]])
        phi.append(torch.stack(patch))
        size = int(scale * size)
    for i in range(1, len(phi)):
        k = phi[i].shape[-1] // patch_size
        phi[i] = F.avg_pool2d(phi[i], k)
    return torch.stack(phi, dim=1)  # (B, n_patches, 1, p, p)


def loop_numpy(canvases: np.ndarray, locations: np.ndarray, patch_size: int, n_patches: int, scale: int) -> np.ndarray:
    """The straightforward per-image loop: pad each canvas once, then slice and block-average each patch."""
    b, s, _ = canvases.shape
    sizes = [patch_size * scale**i for i in range(n_patches)]
    margin = sizes[-1]
    out = np.empty((b, n_patches, 1, patch_size, patch_size), np.float32)
    for k in range(b):
        padded = np.pad(canvases[k], margin).astype(np.float32) / 255.0
        cx, cy = (locations[k].astype(np.float64) + 1.0) * (0.5 * s)
        for i, size in enumerate(sizes):
            x0 = int(np.floor(cx - size / 2 + 0.5)) + margin
            y0 = int(np.floor(cy - size / 2 + 0.5)) + margin
            block = size // patch_size
            patch = padded[y0 : y0 + size, x0 : x0 + size]
            out[k, i, 0] = patch.reshape(patch_size, block, patch_size, block).mean(axis=(1, 3))
    return out


def bench_retina(seconds: float, data_dir, n_glimpses: int = 8) -> None:
    print(
        "1. glimpse extraction, 128 images (MNIST test digits on cluttered canvases), patch 12, scale 2; "
        "glimpses a second"
    )
    print(
        f"   {'setting':<19}{'clock':<6}{'retina':>9}{'episode':>9}{'worst':>9}{'ref':>9}{'loop':>9}"
        "   speed-up over the faster baseline: retina / episode / worst"
    )
    for size, n_patches in ((60, 3), (100, 4)):
        env = ram_env.GlimpseVectorEnv(
            num_envs=128,
            split="test",
            data_dir=data_dir,
            translated_size=size,
            n_clutter=4,
            n_patches=n_patches,
            patch_size=12,
        )
        env.reset(seed=0, options={"indices": np.arange(128)})
        canvases = env.task.canvases[:, 0].copy()  # (B, S, S): the digits are gray
        rng = np.random.default_rng(0)
        locations = rng.uniform(-1, 1, (128, 2)).astype(np.float32)
        retina = Retina(size, 12, n_patches, 2)
        sums = retina.block_sums(canvases)
        out = np.empty((128, n_patches, 1, 12, 12), np.float32)
        ours = retina(sums, locations)
        images_t = torch.from_numpy(canvases).float().div(255.0)[:, None]
        locations_t = torch.from_numpy(locations)
        reference_out = reference_torch(images_t, locations_t, 12, n_patches, 2, size).numpy()
        loop_out = loop_numpy(canvases, locations, 12, n_patches, 2)
        assert np.allclose(ours, reference_out, atol=1e-6) and np.allclose(ours, loop_out, atol=1e-6), (
            "baselines disagree with the retina"
        )

        def episode():  # the block sums of a canvas are built once, at reset, and serve every glimpse of the episode
            retina.block_sums(canvases, out=sums)
            for _ in range(n_glimpses):
                retina(sums, locations, out=out)

        t_ret = timeit(lambda: retina(sums, locations, out=out), seconds)
        t_ep = tuple(t / n_glimpses for t in timeit(episode, seconds))
        t_worst = timeit(lambda: retina(retina.block_sums(canvases, out=sums), locations, out=out), seconds)
        t_reference = timeit(lambda: reference_torch(images_t, locations_t, 12, n_patches, 2, size), seconds)
        t_loop = timeit(lambda: loop_numpy(canvases, locations, 12, n_patches, 2), seconds)
        for clock, name in ((0, "wall"), (1, "cpu")):
            base = min(t_reference[clock], t_loop[clock])

            def rate(t, clock=clock):
                return f"{128 / t[clock] / 1e3:8.1f}k"

            print(
                f"   {f'{size}x{size}, {n_patches} patches':<19}{name:<6}"
                f"{rate(t_ret)}{rate(t_ep)}{rate(t_worst)}{rate(t_reference)}{rate(t_loop)}"
                f"   {base / t_ret[clock]:5.1f}x / {base / t_ep[clock]:5.1f}x / {base / t_worst[clock]:5.1f}x"
                f"   ({t_ret[clock] * 1e3:.2f} / {t_ep[clock] * 1e3:.2f} / {t_worst[clock] * 1e3:.2f} ms"
                f" vs {base * 1e3:.2f} ms a batch)"
            )
    print(
        "   retina: a batch of glimpses on built block sums (an env step); "
        f"episode: sums once + {n_glimpses} glimpses, per glimpse;\n"
        "   worst: sums rebuilt for every glimpse; reference: its torch sensor; loop: per-image numpy loop.\n"
        "   wall = wall-clock; cpu = this process's CPU time (excludes waiting for a core on a shared machine)"
    )


# ------------------------------------------------------------------------------------ environments
def bench_single(seconds: float, data_dir) -> None:
    print("2. single env, RAM/MNIST-v0 (6 steps an episode; reset time included)")
    rng = np.random.default_rng(0)
    actions = [
        {"location": rng.uniform(-1, 1, 2).astype(np.float32), "label": int(rng.integers(10))} for _ in range(600)
    ]
    for name, env in (
        ("gym.make", gym.make("RAM/MNIST-v0", data_dir=data_dir)),
        ("unwrapped", gym.make("RAM/MNIST-v0", data_dir=data_dir).unwrapped),
    ):
        env.reset(seed=0)

        def episodes():
            for i in range(0, 600, 6):
                env.reset()
                for a in actions[i : i + 6]:
                    env.step(a)

        wall, cpu = timeit(episodes, seconds)
        print(
            f"   {name:<10} {600 / wall:10,.0f} steps/s wall-clock   {600 / cpu:10,.0f} steps/s of CPU time"
            f"  ({wall / 600 * 1e6:.1f} / {cpu / 600 * 1e6:.1f} us a step)"
        )


def bench_vector(seconds: float, data_dir, num_envs: int = 256, device: str = "cpu") -> None:
    print(
        f"3. vector env, RAM/TranslatedMNIST60-v0, {num_envs} envs (8 glimpses an episode; NEXT_STEP autoreset "
        f"steps included): numpy backend against torch backend on {device!r}"
    )
    rates = {}
    for name, backend in (("numpy", {}), (f"torch {device}", {"device": device})):
        env = gym.make_vec(
            "RAM/TranslatedMNIST60-v0",
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            data_dir=data_dir,
            **backend,
        )
        rng = np.random.default_rng(0)
        actions = [
            {"location": rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32), "label": rng.integers(0, 10, num_envs)}
            for _ in range(9)
        ]
        if backend:  # a learner on the device hands the env tensors on the device
            actions = [{k: torch.as_tensor(v, device=device) for k, v in a.items()} for a in actions]
        sync = torch.cuda.synchronize if backend and torch.device(device).type == "cuda" else lambda: None
        env.reset(seed=0)

        def steps():
            for a in actions:  # one episode plus its autoreset step
                env.step(a)
            sync()

        wall, cpu = timeit(steps, seconds)
        rates[name] = 9 * num_envs / wall
        print(
            f"   {name:<12}{9 * num_envs / wall:10,.0f} glimpse-steps/s wall-clock   "
            f"{9 * num_envs / cpu:10,.0f} glimpse-steps/s of CPU time  "
            f"({wall / 9 * 1e3:.2f} / {cpu / 9 * 1e3:.2f} ms a step of {num_envs} envs)"
        )
        env.close()
    torch_rate, numpy_rate = rates[f"torch {device}"], rates["numpy"]
    print(f"   torch {device} / numpy: {torch_rate / numpy_rate:.2f}x (wall-clock glimpse-steps/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget of each measurement")
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw/ (default: $RAM_DATA_DIR, else ./data)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the torch backend in part 3 (cpu, cuda)")
    parser.add_argument("--num-envs", type=int, default=256, help="envs of the vector env in part 3")
    args = parser.parse_args()
    torch.set_num_threads(1)  # like numpy here: one core each, on a machine shared with other work
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench_env: {platform.machine()}, {os.cpu_count()} CPUs (load average {load:.1f} at start), "
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} thread)"
    )
    t0 = time.perf_counter()
    bench_retina(args.seconds, args.data_dir)
    bench_single(args.seconds, args.data_dir)
    bench_vector(args.seconds, args.data_dir, args.num_envs, args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"({time.perf_counter() - t0:.0f} s; load average {load:.1f} at the end)")


if __name__ == "__main__":
    main()
