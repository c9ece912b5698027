"""RunCallback: the run folder of an SB3 training run, written between rollouts (see :mod:`agents.runlog`)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.progress import BudgetBar
from agents.runlog import RunLog
from agents.sb3_policy import play_episodes, policy_of


def atomic_save(model, path: Path) -> None:
    """``model.save(path)`` such that an interrupted save never leaves a broken ``path``."""
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


class RunCallback(BaseCallback):
    """Every ``eval_every`` timesteps (between rollouts, after the update) and at the end: one evaluation
    round, i.e. a row of ``metrics.csv`` (and TensorBoard) through ``runlog``, ``model.zip`` and, when the
    validation error is the lowest so far, ``best.zip``.

    :param run_dir: the run folder
    :param algo: the algorithm's name in :data:`agents.sb3.ALGOS`
    :param env_kwargs: the task's arguments
    :param val_env: native vector env of the val split; its ``num_envs`` first images are scored
    :param eval_every: timesteps between rounds
    :param runlog: where the rows go
    :param rounds: rounds already written (a resumed run continues the count)
    :param elapsed: training seconds already spent by those rounds
    :param best_val: their lowest validation error (percent)
    :param budget: training seconds (evaluations included, earlier sessions too) after which learning stops
    """

    def __init__(
        self,
        run_dir: Path,
        algo: str,
        env_kwargs: dict[str, Any],
        val_env: gym.vector.VectorEnv,
        eval_every: int,
        runlog: RunLog,
        rounds: int = 0,
        elapsed: float = 0.0,
        best_val: float = float("inf"),
        budget: float = float("inf"),
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.algo, self.env_kwargs, self.val_env = algo, env_kwargs, val_env
        self.eval_every, self.runlog = eval_every, runlog
        self.rounds, self.elapsed, self.best_val, self.budget = rounds, elapsed, best_val, budget
        self.last_steps = -1  # env steps of the last row written this session
        self.correct = self.episodes = 0

    def _on_training_start(self) -> None:
        self.round_start = time.perf_counter()
        self.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "correct" in info:
                self.episodes += 1
                self.correct += bool(info["correct"])
        return self.seconds_spent() < self.budget  # False ends learn()

    def seconds_spent(self) -> float:
        """Training seconds of the run so far, evaluations and earlier sessions included."""
        return self.elapsed + time.perf_counter() - self.round_start

    def budget_left(self) -> float:
        """The fraction of the time budget not yet spent (1 without a budget)."""
        return 1.0 if math.isinf(self.budget) else max(0.0, 1.0 - self.seconds_spent() / self.budget)

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self.checkpoint()
            self.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_training_end(self) -> None:
        self.checkpoint()

    def checkpoint(self) -> None:
        """One evaluation round: score, write the row, save the checkpoints."""
        if self.episodes == 0 and self.num_timesteps == self.last_steps:
            return  # nothing new since the last row
        train_seconds = time.perf_counter() - self.round_start
        policy = policy_of(self.model, self.algo, self.env_kwargs)
        val_error = 100.0 * (1.0 - play_episodes(policy, self.val_env, np.arange(self.val_env.num_envs)).mean())
        round_seconds = time.perf_counter() - self.round_start
        self.rounds += 1
        self.elapsed += round_seconds
        self.runlog.write(
            epoch=self.rounds,
            env_steps=int(self.num_timesteps),
            train_loss=self.logger.name_to_value.get("train/loss"),  # PPO's total loss; A2C logs none
            train_accuracy=100.0 * self.correct / self.episodes if self.episodes else None,
            val_error=float(val_error),
            lr=float(self.model.policy.optimizer.param_groups[0]["lr"]),
            samples_per_second=self.episodes / train_seconds if train_seconds > 0 else None,
            epoch_seconds=round_seconds,
            elapsed_seconds=self.elapsed,
        )
        if val_error < self.best_val or not (self.run_dir / "best.zip").is_file():
            self.best_val = min(val_error, self.best_val)
            atomic_save(self.model, self.run_dir / "best.zip")
        atomic_save(self.model, self.run_dir / "model.zip")
        self.last_steps = self.num_timesteps
        self.correct = self.episodes = 0
        self.round_start = time.perf_counter()


class MinutesBar(BaseCallback):
    """A progress bar of training minutes against ``max_minutes`` (env steps beside them), for a time-budgeted
    run: SB3's own bar counts env steps towards ``total_timesteps``, which the clock, not the steps, ends.

    :param run: the run's :class:`RunCallback`, whose clock (earlier sessions included) the bar shows
    """

    def __init__(self, run: RunCallback):
        super().__init__()
        self.run = run

    def _on_training_start(self) -> None:
        self.bar = BudgetBar(None, self.run.budget, self.num_timesteps, self.run.seconds_spent())

    def _on_step(self) -> bool:
        if self.n_calls % 16 == 0:  # a step of all envs is a fraction of a millisecond: redraw now and then
            self.bar.update(self.num_timesteps, self.run.seconds_spent())
        return True

    def _on_training_end(self) -> None:
        self.bar.update(self.num_timesteps, self.run.seconds_spent())
        self.bar.close()
