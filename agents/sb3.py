"""Stable-Baselines3 (and sb3-contrib) algorithms on the RAM tasks, through the Gymnasium API only.

| `algo`          | class                          | policy           | env seen by the learner                                         |
|-----------------|--------------------------------|------------------|-----------------------------------------------------------------|
| `ppo`           | ``stable_baselines3.PPO``      | ``MlpPolicy``    | ``FlatActionWrapper(GlimpseHistoryWrapper(GlimpseEnv))``        |
| `a2c`           | ``stable_baselines3.A2C``      | ``MlpPolicy``    | ``FlatActionWrapper(GlimpseHistoryWrapper(GlimpseEnv))``        |
| `recurrent_ppo` | ``sb3_contrib.RecurrentPPO``   | ``MlpLstmPolicy`` | ``FlatActionWrapper(FlattenObservation(GlimpseEnv))``           |

The feed-forward policies see the whole episode so far (every glimpse and location plus a one-hot
step counter, :class:`~ram_env.wrappers.GlimpseHistoryWrapper`); the LSTM policy sees the current
glimpse and location only and keeps the rest in its state. All act through a ``Box`` action (two
location coordinates, then one score per class whose arg-max is the label,
:class:`~ram_env.wrappers.FlatActionWrapper`), since SB3 cannot take the native ``Dict`` action.

A run folder holds ``config.json`` (algorithm, task, hyperparameters, budget), ``metrics.csv`` (one
row per checkpoint: timesteps, wall seconds, training episode accuracy, error on a fixed validation
subset), ``model.zip`` (the latest checkpoint) and ``best.zip`` (lowest validation error; the test split
is never looked at during training).

Training steps ``n_envs`` episodes as one numpy batch on a :class:`~ram_env.vector.GlimpseVectorEnv`
(:func:`make_vec_env`, an SB3 ``VecEnv`` that shows exactly what :func:`make_env`'s wrappers show:
tested), which is about 1.5x as fast as ``DummyVecEnv`` over wrapped single envs.

Hyperparameters (:data:`HYPERPARAMS`) and why (tuned on ``RAM/MNIST-v0``, 100k-step runs):

- ``gamma=1``, ``gae_lambda=1``: an episode is 6-8 steps with one reward, at its end, so every step's
  return is that reward, undiscounted; the advantage is the Monte-Carlo ``reward - V(history)``, which is
  unbiased and, over so few steps, has little variance. This is the paper's REINFORCE with a baseline.
- ``log_std_init=-3`` (std 0.05): the one setting that matters most. Location noise makes every episode's
  glimpses land somewhere else, and an MLP on the glimpse history then cannot classify (a supervised
  probe on histories with location noise 0.5 reaches 30%, with 0.135 about 70%); class scores need only
  a little noise for the arg-max to explore while the means are equal. At 100k steps validation accuracy
  was 25-35% with std 0.37, ~35% with 0.135, ~52% with 0.05 (and with 0.018).
- ``learning_rate=3e-4``, ``n_epochs=4``: with so narrow a Gaussian each update already moves the policy
  far (PPO's approx. KL ~0.4); ``1e-3`` or 10 epochs overshoot (KL 2-3, slower learning), ``1e-4`` is a
  little slower. ``ent_coef=0``.
- PPO ``n_steps=256`` x 8 envs (~340 episodes a rollout), ``batch_size=256``: the reward carries one bit
  per episode, so a rollout needs many episodes for a usable gradient. Separate 256-256 ReLU networks for
  actor and critic on the 402-long history vector.
- A2C ``n_steps=12``: two whole episodes per env per update, so returns need no bootstrapping;
  ``learning_rate=1e-4`` (SB3's 7e-4 stays at chance with this narrow Gaussian; 1e-4 reached 38%
  validation accuracy at 60k steps).
- RecurrentPPO: one 256-unit LSTM for the actor and one for the critic, then a 256 layer; otherwise PPO's.

```python
>>> from pathlib import Path
>>> from agents import sb3
>>> env_kwargs = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)
>>> summary = sb3.train("ppo", env_kwargs, Path("runs/sb3-ppo"), total_timesteps=600_000)  # doctest: +SKIP
>>> correct, config = sb3.evaluate(Path("runs/sb3-ppo"))  # doctest: +SKIP
```
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch.nn as nn
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from ram_env.env import GlimpseEnv
from ram_env.vector import GlimpseVectorEnv
from ram_env.wrappers import (
    DiscreteActionWrapper,
    FlatActionWrapper,
    GlimpseHistory,
    GlimpseHistoryWrapper,
    flatten_native_obs,
)

ALGOS = ("ppo", "a2c", "recurrent_ppo")

METRICS_FIELDS = ("timesteps", "wall_s", "train_episodes", "train_accuracy", "val_error")

# Settings passed to the algorithm's constructor; policy_kwargs' activation_fn is named, not a class, so
# the dict is JSON-serialisable (see _algo_kwargs). Per-step counts are per environment.
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": dict(
        learning_rate=3e-4,
        n_steps=256,
        batch_size=256,
        n_epochs=4,
        gamma=1.0,
        gae_lambda=1.0,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[256, 256], vf=[256, 256]), activation_fn="relu", log_std_init=-3.0),
    ),
    "a2c": dict(
        learning_rate=1e-4,
        n_steps=12,
        gamma=1.0,
        gae_lambda=1.0,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[256, 256], vf=[256, 256]), activation_fn="relu", log_std_init=-3.0),
    ),
    "recurrent_ppo": dict(
        learning_rate=3e-4,
        n_steps=256,
        batch_size=256,
        n_epochs=4,
        gamma=1.0,
        gae_lambda=1.0,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(
            lstm_hidden_size=256,
            n_lstm_layers=1,
            enable_critic_lstm=True,
            shared_lstm=False,
            net_arch=dict(pi=[256], vf=[256]),
            activation_fn="relu",
            log_std_init=-3.0,
        ),
    ),
}

_ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu")


def _check_algo(algo: str) -> None:
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")


def algo_class(algo: str):
    """The SB3 / sb3-contrib class of ``algo`` (sb3-contrib is imported only for ``recurrent_ppo``)."""
    _check_algo(algo)
    if algo == "recurrent_ppo":
        try:
            from sb3_contrib import RecurrentPPO
        except ImportError:
            raise ImportError("recurrent_ppo needs sb3-contrib: pip install -e '.[contrib]'") from None
        return RecurrentPPO
    return {"ppo": stable_baselines3.PPO, "a2c": stable_baselines3.A2C}[algo]


def _policy_name(algo: str) -> str:
    return "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"


def _algo_kwargs(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs from the JSON-able hyperparameters (activation names -> torch classes)."""
    kwargs = copy.deepcopy(hyperparameters)
    pk = kwargs.get("policy_kwargs", {})
    if isinstance(pk.get("activation_fn"), str):
        name = pk["activation_fn"]
        if name not in _ACTIVATIONS:
            raise ValueError(f"unknown activation_fn {name!r}; choose one of {', '.join(_ACTIVATIONS)}")
        pk["activation_fn"] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}[name]
    return kwargs


def _task_kwargs(env_kwargs: dict[str, Any], split: str, data_dir: str | None = None) -> dict[str, Any]:
    kwargs = {k: v for k, v in env_kwargs.items() if k not in ("split", "render_mode")}
    kwargs["split"] = split
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return kwargs


ACTIONS = ("box", "discrete")


def make_env(
    algo: str,
    env_kwargs: dict[str, Any],
    split: str = "train",
    data_dir: str | None = None,
    action: str = "box",
    grid: int = 7,
) -> gym.Env:
    """A single :class:`~ram_env.env.GlimpseEnv` of ``split``, wrapped as ``algo`` sees it (module table).

    ``action="discrete"`` swaps the flat ``Box`` action for :class:`~ram_env.wrappers.DiscreteActionWrapper`
    (a ``grid x grid`` lattice of locations plus a categorical label)."""
    _check_algo(algo)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    env: gym.Env = GlimpseEnv(**_task_kwargs(env_kwargs, split, data_dir))
    if algo == "recurrent_ppo":
        env = gym.wrappers.FlattenObservation(env)
    else:
        env = GlimpseHistoryWrapper(env)
    return FlatActionWrapper(env) if action == "box" else DiscreteActionWrapper(env, grid=grid)


class GlimpseSB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` over one native :class:`~ram_env.vector.GlimpseVectorEnv`: ``num_envs`` episodes
    stepped as one numpy batch, instead of ``DummyVecEnv``'s Python loop over wrapped single envs.

    Observations and actions are exactly those of :func:`make_env` (the same
    :class:`~ram_env.wrappers.GlimpseHistory` layout, the same ``to_native``); all episodes last
    ``n_glimpses`` steps, so they end together and restart together (SB3's auto-reset), with the
    final observation in ``info["terminal_observation"]``, the env's ``correct`` / ``label``, and a
    Monitor-style ``info["episode"]`` so SB3 logs ``ep_rew_mean`` (the training accuracy).
    """

    def __init__(
        self,
        algo: str,
        env_kwargs: dict[str, Any],
        num_envs: int,
        split: str = "train",
        action: str = "box",
        grid: int = 7,
    ):
        self.single = make_env(algo, env_kwargs, split, action=action, grid=grid)
        self.venv = GlimpseVectorEnv(num_envs=num_envs, **_task_kwargs(env_kwargs, split))
        core = self.venv.core
        self.n_glimpses = core.n_glimpses
        self.history = (
            None
            if algo == "recurrent_ppo"
            else GlimpseHistory(core.n_glimpses, core.observation_space["glimpse"].shape, num_envs)
        )
        self.render_mode = None
        self._actions = None
        self._t0 = time.perf_counter()
        super().__init__(num_envs, self.single.observation_space, self.single.action_space)

    def _observe(self, native: dict[str, np.ndarray]) -> np.ndarray:
        return flatten_native_obs(native) if self.history is None else self.history.flat()

    def reset(self):
        native, _ = self.venv.reset(seed=self._seeds[0])
        self._reset_seeds()
        if self.history is not None:
            self.history.start(native)
        return self._observe(native)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        native, rewards, terminated, truncated, info = self.venv.step(self.single.to_native(self._actions))
        dones = terminated | truncated
        if not dones.any():
            if self.history is not None:
                self.history.add(native)
            return self._observe(native), rewards.astype(np.float32), dones, [{} for _ in range(self.num_envs)]
        if not dones.all():
            raise RuntimeError("glimpse episodes all last n_glimpses steps; they cannot end apart")
        final = self._observe(native)  # the env takes no glimpse on the last step
        elapsed = round(time.perf_counter() - self._t0, 6)
        infos = [
            {
                "correct": bool(info["correct"][i]),
                "label": int(info["label"][i]),
                "terminal_observation": final[i],
                "TimeLimit.truncated": False,
                "episode": {"r": float(rewards[i]), "l": self.n_glimpses, "t": elapsed},
            }
            for i in range(self.num_envs)
        ]
        return self.reset(), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()
        self.single.close()

    def _n(self, indices) -> int:
        return len(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * self._n(indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * self._n(indices)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self._n(indices)


def make_vec_env(
    algo: str,
    env_kwargs: dict[str, Any],
    n_envs: int,
    split: str = "train",
    seed: int | None = None,
    action: str = "box",
    grid: int = 7,
):
    """``n_envs`` episodes of ``split`` as an SB3 ``VecEnv``, each seen as through :func:`make_env`'s wrappers."""
    venv = GlimpseSB3VecEnv(algo, env_kwargs, n_envs, split, action=action, grid=grid)
    if seed is not None:
        venv.seed(seed)
    return venv


def policy_of(
    model, algo: str, env_kwargs: dict[str, Any]
) -> Callable[[dict[str, np.ndarray], bool], dict[str, np.ndarray]]:
    """The rendering protocol's batch policy for a loaded/live ``model`` (see :func:`batch_policy`)."""
    discrete = isinstance(model.action_space, gym.spaces.MultiDiscrete)
    grid = int(model.action_space.nvec[0]) if discrete else 7
    # The action wrapper's own conversion, so that the policy acts exactly as through make_env.
    to_native = make_env(algo, env_kwargs, "val", action="discrete" if discrete else "box", grid=grid).to_native
    n_glimpses = int(env_kwargs.get("n_glimpses", 6))
    glimpse_shape = (
        int(env_kwargs.get("n_patches", 1)),
        1,
        int(env_kwargs.get("patch_size", 8)),
        int(env_kwargs.get("patch_size", 8)),
    )
    state: dict[str, Any] = {"history": None, "lstm": None}

    def policy(obs: dict[str, np.ndarray], first: bool) -> dict[str, np.ndarray]:
        n = len(obs["location"])
        if algo == "recurrent_ppo":
            x = flatten_native_obs(obs)
            if first or state["lstm"] is None:
                state["lstm"] = None
            starts = np.full(n, bool(first or state["lstm"] is None))
            action, state["lstm"] = model.predict(x, state=state["lstm"], episode_start=starts, deterministic=True)
        else:
            history = state["history"]
            if first or history is None or len(history.count) != n:
                history = state["history"] = GlimpseHistory(n_glimpses, glimpse_shape, num_envs=n)
                history.start(obs)
            else:
                history.add(obs)
            action, _ = model.predict(history.flat(), deterministic=True)
        return to_native(action)

    return policy


def _val_error(model, algo: str, env_kwargs: dict[str, Any], venv: GlimpseVectorEnv, seed: int = 0) -> float:
    """Error of the deterministic policy on images ``0 .. num_envs-1`` of ``venv``'s split (fixed starts)."""
    policy = policy_of(model, algo, env_kwargs)
    obs, _ = venv.reset(seed=seed, options={"indices": np.arange(venv.num_envs)})
    first = True
    while True:
        obs, _, terminated, _, infos = venv.step(policy(obs, first))
        first = False
        if terminated.all():
            return float(1.0 - np.mean(infos["correct"]))


def _atomic_save(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class RunCallback(BaseCallback):
    """Every ``eval_every`` timesteps (between rollouts, after the update): a metrics row, ``model.zip``
    and, when the validation error is the lowest so far, ``best.zip``."""

    def __init__(
        self,
        model_path: Path,
        best_path: Path,
        metrics_path: Path,
        algo: str,
        env_kwargs: dict[str, Any],
        val_env: GlimpseVectorEnv,
        eval_every: int,
        wall_offset: float,
        best_val: float,
    ):
        super().__init__()
        self.model_path, self.best_path, self.metrics_path = model_path, best_path, metrics_path
        self.algo, self.env_kwargs, self.val_env = algo, env_kwargs, val_env
        self.eval_every, self.wall_offset = eval_every, wall_offset
        self.best_val = best_val
        self.last_val = float("nan")
        self.last_train_acc = float("nan")
        self.correct = 0
        self.episodes = 0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "correct" in info:
                self.episodes += 1
                self.correct += bool(info["correct"])
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self.checkpoint()
            self.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_training_end(self) -> None:
        self.checkpoint()

    def checkpoint(self) -> None:
        if (
            self.episodes == 0
            and self.metrics_path.is_file()
            and _read_metrics(self.metrics_path)
            and _read_metrics(self.metrics_path)[-1]["timesteps"] == self.num_timesteps
        ):
            return  # nothing new since the last row (e.g. a resume with no steps left)
        val = _val_error(self.model, self.algo, self.env_kwargs, self.val_env)
        self.last_val = val
        self.last_train_acc = self.correct / self.episodes if self.episodes else float("nan")
        row = dict(
            timesteps=self.num_timesteps,
            wall_s=round(self.wall_offset + time.perf_counter() - self.start, 2),
            train_episodes=self.episodes,
            train_accuracy=round(self.last_train_acc, 5),
            val_error=round(val, 5),
        )
        new = not self.metrics_path.is_file()
        with open(self.metrics_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.logger.record("ram/val_error", val)
        self.logger.record("ram/train_accuracy", self.last_train_acc)
        _atomic_save(self.model, self.model_path)
        if val < self.best_val or not self.best_path.is_file():
            self.best_val = min(val, self.best_val)
            _atomic_save(self.model, self.best_path)
        self.correct = self.episodes = 0


def train(
    algo: str,
    env_kwargs: dict[str, Any],
    run_dir: Path,
    total_timesteps: int,
    seed: int = 1,
    device: str = "auto",
    resume: bool = False,
    n_envs: int = 8,
    eval_episodes: int = 1000,
    *,
    eval_every: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
    action: str = "box",
    grid: int = 7,
) -> dict[str, Any]:
    """Train ``algo`` on the task ``env_kwargs`` (GlimpseEnv arguments, without ``split``) into ``run_dir``.

    :param total_timesteps: budget of environment steps (all envs together; an episode is ``n_glimpses``)
    :param resume: continue ``run_dir/model.zip`` up to ``total_timesteps`` (the metrics and ``best.zip``
        carry on; at most the steps since the last checkpoint are lost)
    :param n_envs: training episodes stepped as one batch (:func:`make_vec_env`)
    :param eval_episodes: size of the fixed validation subset (images ``0 .. eval_episodes-1`` of ``val``)
    :param eval_every: timesteps between checkpoints; default ``total_timesteps // 20``, at least one rollout
    :param hyperparameters: overrides of :data:`HYPERPARAMS[algo]` (``policy_kwargs`` replaced whole)
    :param progress_bar: SB3's progress bar
    :param action: ``"box"`` (:class:`FlatActionWrapper`, the default) or ``"discrete"``
        (:class:`DiscreteActionWrapper` with a ``grid x grid`` lattice)
    :return: summary: timesteps, wall seconds, last and best validation error, last training accuracy, paths
    """
    _check_algo(algo)
    cls = algo_class(algo)
    if not isinstance(total_timesteps, (int, np.integer)) or total_timesteps < 1:
        raise ValueError(f"total_timesteps must be a positive integer, got {total_timesteps!r}")
    if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if not isinstance(eval_episodes, (int, np.integer)) or eval_episodes < 1:
        raise ValueError(f"eval_episodes must be a positive integer, got {eval_episodes!r}")
    run_dir = Path(run_dir)
    config_path, model_path, best_path, metrics_path = (
        run_dir / n for n in ("config.json", "model.zip", "best.zip", "metrics.csv")
    )
    env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("split", "render_mode")}

    if resume:
        if not model_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {model_path}")
        config = _read_config(config_path)
        if config["algo"] != algo or config["env"] != env_kwargs:
            raise ValueError(
                f"cannot resume {run_dir}: it holds algo={config['algo']!r} env={config['env']}, "
                f"not algo={algo!r} env={env_kwargs}"
            )
        hp = config["hyperparameters"]
        action, grid = config.get("action", "box"), int(config.get("grid", 7))
        eval_every = int(config["eval_every"])
        eval_episodes = int(config["eval_episodes"])
        config["total_timesteps"] = int(total_timesteps)
        config["n_envs"] = int(n_envs)
    else:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
        if model_path.exists():
            raise FileExistsError(
                f"{run_dir} already holds a run (model.zip); pass resume=True or choose another run_dir"
            )
        hp = copy.deepcopy(HYPERPARAMS[algo])
        hp.update(copy.deepcopy(hyperparameters or {}))
        steps_per_rollout = int(hp["n_steps"]) * n_envs
        eval_every = int(eval_every or max(total_timesteps // 20, 1))
        eval_every = max(eval_every, steps_per_rollout)

        config = {
            "algo": algo,
            "policy": _policy_name(algo),
            "env": env_kwargs,
            "hyperparameters": hp,
            "total_timesteps": int(total_timesteps),
            "seed": int(seed),
            "n_envs": int(n_envs),
            "eval_episodes": int(eval_episodes),
            "eval_every": eval_every,
            "action": action,
            "grid": int(grid),
            "wrappers": [
                "FlattenObservation" if algo == "recurrent_ppo" else "GlimpseHistoryWrapper",
                "FlatActionWrapper" if action == "box" else "DiscreteActionWrapper",
            ],
            "stable_baselines3": stable_baselines3.__version__,
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (best_path, metrics_path):
            stale.unlink(missing_ok=True)
    _atomic_write_json(config_path, config)

    history = _read_metrics(metrics_path) if resume else []
    wall_offset = history[-1]["wall_s"] if history else 0.0
    best_val = min((r["val_error"] for r in history), default=float("inf"))
    done_steps = int(history[-1]["timesteps"]) if history else 0

    venv = make_vec_env(algo, env_kwargs, n_envs, "train", seed=int(seed) + done_steps, action=action, grid=grid)
    val_env = GlimpseVectorEnv(num_envs=eval_episodes, **_task_kwargs(env_kwargs, "val"))
    if eval_episodes > val_env.n_images:
        raise ValueError(f"eval_episodes={eval_episodes} exceeds the {val_env.n_images} validation images")

    if resume:
        model = _load_model(model_path, algo, device=device, env=venv)
        if done_steps and model.num_timesteps != done_steps:
            warnings.warn(
                f"{model_path} is at {model.num_timesteps} steps but metrics.csv at {done_steps}", stacklevel=2
            )
    else:
        model = cls(_policy_name(algo), venv, seed=int(seed), device=device, verbose=verbose, **_algo_kwargs(hp))

    callback = RunCallback(
        model_path, best_path, metrics_path, algo, env_kwargs, val_env, eval_every, wall_offset, best_val
    )
    remaining = int(total_timesteps) - model.num_timesteps
    t0 = time.perf_counter()
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=False, progress_bar=progress_bar)
    else:
        callback.init_callback(model)
        callback.start = time.perf_counter()
        callback.checkpoint()
    venv.close()
    rows = _read_metrics(metrics_path)
    return {
        "algo": algo,
        "run_dir": str(run_dir),
        "timesteps": int(model.num_timesteps),
        "wall_s": rows[-1]["wall_s"] if rows else round(time.perf_counter() - t0, 2),
        "session_wall_s": round(time.perf_counter() - t0, 2),
        "val_error": rows[-1]["val_error"] if rows else float("nan"),
        "best_val_error": min((r["val_error"] for r in rows), default=float("nan")),
        "train_accuracy": rows[-1]["train_accuracy"] if rows else float("nan"),
        "model": str(model_path),
        "best": str(best_path),
    }


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not {"algo", "env", "hyperparameters"} <= set(config):
        raise ValueError(f"{path} is not an SB3 run config (needs 'algo', 'env' and 'hyperparameters')")
    if config["algo"] not in ALGOS:
        raise ValueError(f"{path} names unknown algo {config['algo']!r}; known: {', '.join(ALGOS)}")
    return config


def _load_model(path: Path, algo: str, device: str = "cpu", env=None):
    cls = algo_class(algo)
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model at {path}")
    try:
        return cls.load(path, env=env, device=device)
    except Exception as e:  # SB3 raises ValueError, KeyError, RuntimeError, EOFError... on a bad file
        raise ValueError(f"{path} is not a readable {cls.__name__} model ({type(e).__name__}: {e})") from None


def load(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """``(model, config)`` from a run folder (its ``best.zip``) or a ``.zip`` beside its ``config.json``."""
    path = Path(path)
    if path.is_dir():
        zip_path = path / "best.zip"
    elif path.suffix == ".zip" or not path.exists():
        zip_path = path
    else:
        raise ValueError(f"{path} is neither a run folder nor an SB3 .zip model")
    config = _read_config(zip_path.parent / "config.json")
    return _load_model(zip_path, config["algo"], device=device), config


def batch_policy(path: Path) -> Callable[[dict[str, np.ndarray], bool], dict[str, np.ndarray]]:
    """The rendering protocol's policy for a saved model: ``policy(obs, first) -> dict(location, label)``.

    ``obs`` is a batch of native observations of a :class:`~ram_env.vector.GlimpseVectorEnv`
    (``glimpse`` ``(N, n_patches, 1, p, p)``, ``location`` ``(N, 2)``); ``first`` is True on the first step
    of the (synchronised) episodes. The policy rebuilds the history wrapper's observation (or carries the
    LSTM state) itself, acts deterministically, and returns ``location`` ``(N, 2)`` float32 and ``label``
    ``(N,)`` int64.
    """
    model, config = load(path)
    return policy_of(model, config["algo"], config["env"])


def evaluate(
    path: Path, split: str = "test", data_dir: str | None = None, limit: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Score a saved model: one deterministic episode on every image of ``split``, in order.

    :param path: a run folder (its ``best.zip`` is used) or an SB3 ``.zip`` with ``config.json`` beside it
    :param data_dir: overrides the dataset folder stored in the config
    :param limit: score only the first ``limit`` images
    :return: ``(correct, config)``: a bool array with one entry per image, and the run's config
    """
    model, config = load(path)
    algo = config["algo"]
    env = make_env(
        algo, config["env"], split, data_dir, action=config.get("action", "box"), grid=int(config.get("grid", 7))
    )
    n = env.unwrapped.n_images
    if limit is not None:
        if not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        n = min(n, int(limit))
    correct = np.zeros(n, dtype=bool)
    for i in range(n):
        obs, _ = env.reset(seed=0 if i == 0 else None, options={"index": i})
        state, start, terminated = None, np.ones(1, dtype=bool), False
        while not terminated:
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
            obs, _, terminated, _, info = env.step(action)
            start = np.zeros(1, dtype=bool)
        correct[i] = info["correct"]
    env.close()
    return correct, config
