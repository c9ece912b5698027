"""The training loop: epochs of updates on the training split, each followed by a score on val and the checkpoints.

Read top to bottom from :func:`train`. Under ``torchrun`` (see :mod:`agents.distributed`) the same code trains one
model on several processes: ``batch_size`` is the global batch, each rank plays its slice, gradients are
averaged, validation and test images are split across the ranks, and rank 0 alone writes the run folder and
prints. The loss of a batch is :mod:`agents.training.rollout`'s; what a run folder holds and how a run resumes
is :mod:`agents.training.run_state`'s.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agents import distributed
from agents.ram import RecurrentAttentionModel
from agents.training.config import (
    TrainConfig,
    autocast,
    data_record,
    make_envs,
    make_model,
    precision_on,
    resolve_device,
    resolve_env_device,
)
from agents.training.policy import write_gif
from agents.training.report import print_main, report_epoch
from agents.training.rollout import rollout_loss
from agents.training.run_state import Progress, load_model, open_run_folder, resume_run, save_checkpoints
from agents.training.scoring import error_with_interval, evaluate_split, score_val


def make_optimizer(config: TrainConfig, model: RecurrentAttentionModel, steps_per_epoch: int):
    """Adam and the learning-rate schedule, stepped once per update."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)  # fused: one kernel per step
    if config.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.n_epochs * steps_per_epoch)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, scheduler


def update(
    model: torch.nn.Module, optimizer, scheduler, envs, images: np.ndarray, config: TrainConfig, device
) -> tuple[float, float, float]:
    """One gradient step on the summed loss of a batch of training images; returns (loss, fraction right, mean
    glimpses per episode).

    Under torchrun ``images`` are this rank's slice and ``model`` the DistributedDataParallel wrapper, whose
    backward averages the gradients of all ranks: the step is the one a single process takes on the whole batch.
    """
    with autocast(config, device):  # the backward pass runs in the dtypes the forward chose
        terms, reward, glimpses = rollout_loss(model, envs, np.repeat(images, config.train_rollouts), config, device)
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item(), reward, glimpses


def join(config: TrainConfig) -> tuple[torch.device, int]:
    """This process's device and the number of processes training (torchrun's, else 1); the run's precision set to
    what the device takes, in ``config`` (hence in config.json), with a line where bf16 falls back to fp32."""
    device, world = distributed.setup(config.device), distributed.world_size()
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} is split over {world} processes: make it a multiple of {world}"
        )
    config.precision, why = precision_on(config, device)
    if why:
        print_main(why)
    return device, world


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train, writing ``config.json``, ``metrics.csv``, ``last.pt`` and ``best.pt`` (lowest val error) to ``run_dir``.

    With ``resume=True`` the run continues from ``run_dir/last.pt`` after its last finished epoch; a
    larger ``n_epochs`` than the run was started with extends it (the cosine schedule stretched).
    Under torchrun every rank calls this; rank 0 alone writes and prints.
    """
    run_dir, (device, world) = Path(run_dir), join(config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # the epochs' image orders: the same on every rank
    on = resolve_env_device(config, device)
    envs = make_envs(config, "train", config.batch_size // world * config.train_rollouts, on)
    val_envs = make_envs(config, "val", max(1, config.eval_batch // config.val_rollouts) * config.val_rollouts, on)
    config.data = data_record(config, envs, val_envs)
    envs.reset(seed=distributed.rank_seed(config.seed))
    model = make_model(config, envs).to(device)
    n_train = min(config.train_images or envs.unwrapped.n_images, envs.unwrapped.n_images)
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {n_train} training images")
    optimizer, scheduler = make_optimizer(config, model, steps_per_epoch)
    run = Progress()
    if resume:
        run = resume_run(run_dir, config, model, optimizer, scheduler, rng, envs, val_envs, device)
    log = open_run_folder(run_dir, config, run.epoch if resume else None)
    net = distributed.wrap(model, device)
    episodes = steps_per_epoch * config.batch_size * config.train_rollouts  # per epoch, all ranks together
    if run.env_steps is None:
        run.env_steps = run.epoch * episodes * envs.unwrapped.config.n_glimpses
    model.train()
    while run.epoch < config.n_epochs and run.epoch - run.best_epoch < config.patience:
        if config.max_minutes is not None and run.elapsed_seconds >= 60 * config.max_minutes:
            print_main(f"stopping: {run.elapsed_seconds / 60:.1f} minutes of training reached the --max-minutes budget")
            break
        start = time.perf_counter()
        batches = rng.permutation(n_train)[: steps_per_epoch * config.batch_size].reshape(steps_per_epoch, -1)
        loss, accuracy, glimpses = train_epoch(net, optimizer, scheduler, envs, batches, config, device, run.epoch)
        train_seconds = distributed.maximum(time.perf_counter() - start)
        val_error = score_val(model, val_envs, config, device)
        seconds = distributed.maximum(time.perf_counter() - start)  # every rank must take the same stopping decision
        run.epoch, run.elapsed_seconds = run.epoch + 1, run.elapsed_seconds + seconds
        run.env_steps += round(episodes * glimpses)
        improved = val_error < run.best_val_error
        if improved:
            run.best_val_error, run.best_epoch = val_error, run.epoch
        save_checkpoints(run_dir, config, model, optimizer, scheduler, rng, envs, device, run, improved)
        speed = dict(samples_per_second=episodes / train_seconds, epoch_seconds=seconds)
        lr, taken = scheduler.get_last_lr()[0], glimpses if model.config.halting else None
        report_epoch(log, metrics_row(run, loss, accuracy, val_error, lr, taken, **speed), improved)
    for closable in (envs, val_envs, log):
        if closable is not None:
            closable.close()
    distributed.barrier()  # rank 0's checkpoints are on disk before any rank goes on to read them
    return {"epochs": run.epoch, **{k: v for k, v in asdict(run).items() if k != "epoch"}}


def metrics_row(run: Progress, loss: float, accuracy: float, val_error: float, lr: float, glimpses, **speed) -> dict:
    """An epoch's row of ``metrics.csv`` (``glimpses``: a halting agent's mean, else None)."""
    return dict(
        epoch=run.epoch,
        env_steps=run.env_steps,
        train_loss=loss,
        train_accuracy=100 * accuracy,
        val_error=val_error,
        lr=lr,
        **speed,
        elapsed_seconds=run.elapsed_seconds,
        glimpses=glimpses,
    )


def train_epoch(net, optimizer, scheduler, envs, batches: np.ndarray, config: TrainConfig, device, done: int):
    """One update per row of ``batches`` (global batches of image indices; each rank plays its slice), after
    ``done`` finished epochs; returns the epoch's mean loss, accuracy (a fraction) and glimpses per episode over
    all ranks."""
    losses, rewards, glimpses = [], [], []
    bar = tqdm(
        batches,
        desc=f"epoch {done + 1}/{config.n_epochs}",
        leave=False,
        mininterval=1.0,
        disable=None if distributed.is_main() else True,
    )
    for images in bar:
        loss, reward, taken = update(net, optimizer, scheduler, envs, distributed.shard(images), config, device)
        losses.append(loss)
        rewards.append(reward)
        glimpses.append(taken)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", acc=f"{np.mean(rewards[-50:]):.3f}")
    means = np.array([np.mean(losses), np.mean(rewards), np.mean(glimpses)])
    loss, accuracy, taken = distributed.sum_arrays(means) / distributed.world_size()
    return float(loss), float(accuracy), float(taken)


def train_and_test(config: TrainConfig, run_dir: Path, resume: bool = False, gif: bool = True) -> dict[str, Any]:
    """:func:`train`, then score ``best.pt`` on test under both protocols (the run's rollouts averaged, and one
    sampled rollout, M=1, as ``evaluate.py`` reports them) and draw its episodes to ``best.gif`` (``gif``)."""
    print_main(f"training the RAM agent on {config.env_id} {config.env_kwargs} -> {run_dir}")
    summary = train(config, run_dir, resume=resume)
    minutes = summary["elapsed_seconds"] / 60
    print_main(
        f"best val error {summary['best_val_error']:.2f}% at epoch {summary['best_epoch']} after {minutes:.1f} min"
    )
    device = resolve_device(config.device)
    model, _ = load_model(run_dir, device)
    env_device = resolve_env_device(config, device)
    for rollouts, sample, what in ((config.test_rollouts, None, "rollout(s)"), (1, True, "sampled rollout")):
        scores = evaluate_split(model, config, "test", rollouts, device, sample=sample, env_device=env_device)
        err, low, high = error_with_interval(scores.correct)
        used = f", {scores.glimpses.mean():.2f} glimpses on average" if model.config.halting else ""
        print_main(
            f"test error of best.pt: {err:.2f}% (95% CI {low:.2f}-{high:.2f}%) on {len(scores.correct)} images, "
            f"{rollouts} {what}{used}"
        )
    if gif and distributed.is_main():
        write_gif(model, config, Path(run_dir) / "best.gif")
    distributed.finish()
    return summary
