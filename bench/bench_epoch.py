"""One exp1 epoch end to end: ``train_agent.py`` against the reference implementation's own ``train.py``.

    python bench/bench_epoch.py --reference DIR [--rounds 2] [--threads 1] [--precision fp32,bf16] [--data-dir DIR]

``DIR`` is a checkout of the reference (github.com/bentrevett/recurrent-attention-model; its code is not part of
this project). Both run the reference's exp1 command line with one epoch, each as its own process, one after the
other for ``--rounds`` rounds, and the best round of each is kept:

    python train.py       --data MNIST --n_glimpses 6 --patch_size 8 --n_patches 1 --scale 2 --std 0.15 --seed 1
                          --n_epochs 1
    python train_agent.py (the same flags) --no-gif --no-tensorboard --out <temporary folder> [--precision ...]

The reference's epoch: 60,000 training images at batch 32, then its test set with 10 rollouts (its validation).
Ours: 55,000 training images at batch 512, validation on 5,000 with one rollout (the default), then the test set
with ten rollouts and with one. Everything each process does counts: start-up, reading the data, training,
scoring. Both get ``--threads`` torch threads (``OMP_NUM_THREADS``; ours also ``--threads``). Printed: wall clock
and the child's CPU time (on a shared machine the CPU time is the steadier of the two), and their ratios.
Without ``--reference`` only ours is timed. ``--precision fp32,bf16`` times ours at each precision in every round.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXP1 = "--data MNIST --n_glimpses 6 --patch_size 8 --n_patches 1 --scale 2 --std 0.15 --seed 1 --n_epochs 1".split()


def timed(command: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float]:
    """Run ``command``; its wall-clock seconds and CPU seconds (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        sys.exit(f"bench_epoch: {' '.join(command)} failed (exit {code}); see {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def reference_folder(reference: Path, data_dir: Path, work: Path) -> Path:
    """A scratch copy of the reference (it writes ``checkpoints/`` where it runs) reading the same data files."""
    if not (reference / "train.py").is_file():
        sys.exit(f"bench_epoch: {reference} holds no train.py; give a checkout of the reference implementation")
    folder = work / "reference"
    shutil.copytree(reference, folder, ignore=shutil.ignore_patterns(".git", "checkpoints", "data", "images"))
    (folder / "data").symlink_to(data_dir.resolve())
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, help="a checkout of the reference implementation")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="fp32", help="ours: --precision, or several, comma-separated (fp32,bf16)")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RAM_DATA_DIR", "data")))
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "RAM_DATA_DIR": str(args.data_dir.resolve())}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = {}
        if args.reference:
            folder = reference_folder(args.reference, args.data_dir, work)
            runs["reference train.py"] = ([sys.executable, "train.py", *EXP1], folder)
        ours = [sys.executable, str(ROOT / "train_agent.py"), *EXP1, "--no-gif", "--no-tensorboard"]
        for precision in args.precision.split(","):
            flags = ["--threads", str(args.threads), "--precision", precision]
            runs[f"train_agent.py {precision}"] = (ours + flags, ROOT)
        wall, cpu = {}, {}  # the best round of each
        for k in range(args.rounds):
            for i, (name, (command, cwd)) in enumerate(runs.items()):
                out = ["--out", str(work / f"ours-{k}-{i}")] if name.startswith("train_agent.py") else []
                w, c = timed(command + out, cwd, env, work / f"{name.replace(' ', '-')}-{k}.log")
                print(f"round {k + 1}: {name:<23} {w:6.1f} s wall  {c:6.1f} s CPU", flush=True)
                wall[name], cpu[name] = min(wall.get(name, w), w), min(cpu.get(name, c), c)
        ref = "reference train.py"
        for us in (name for name in runs if args.reference and name != ref):
            print(
                f"one exp1 epoch end to end, {us} against the reference: {wall[ref] / wall[us]:.2f}x wall clock, "
                f"{cpu[ref] / cpu[us]:.2f}x CPU time (best of {args.rounds} rounds, {args.threads} thread(s) each)"
            )


if __name__ == "__main__":
    main()
