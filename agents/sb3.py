"""Stable-Baselines3 (and sb3-contrib) algorithms on the RAM tasks, through the Gymnasium API only.

This module holds :func:`train` (a run folder, as for the RAM agent), :func:`load` and :func:`evaluate` (the test
error of a saved model); the algorithm registry (:data:`ALGOS`, :data:`HYPERPARAMS`) is :mod:`agents.sb3_algos`'s,
the wrapped envs :mod:`agents.sb3_envs`'s, and both are importable from here too.

| `algo`                  | class                      | policy             | env seen by the learner                 |
|-------------------------|----------------------------|--------------------|-----------------------------------------|
| `ppo`                   | `stable_baselines3.PPO`    | `MlpPolicy`        | ``Flat(History(env))``                  |
| `a2c`                   | `stable_baselines3.A2C`    | `MlpPolicy`        | ``Flat(History(env))``                  |
| `recurrent_ppo`         | `sb3_contrib.RecurrentPPO` | `MlpLstmPolicy`    | ``Flat(FlattenObservation(env))``       |
| `ppo_glimpse`           | `stable_baselines3.PPO`    | `MultiInputPolicy` | ``Flat(History(env, flatten=False))``   |
| `a2c_glimpse`           | `stable_baselines3.A2C`    | `MultiInputPolicy` | ``Flat(History(env, flatten=False))``   |
| `recurrent_ppo_glimpse` | `sb3_contrib.RecurrentPPO` | `MlpLstmPolicy`    | ``Flat(FlattenObservation(env))``       |

(``Flat`` is :class:`~ram_env.wrappers.FlatActionWrapper`, ``History``
:class:`~ram_env.wrappers.GlimpseHistoryWrapper`.) The ``*_glimpse`` policies read their observation
through :class:`~agents.sb3_features.GlimpseHistoryExtractor` (history) or
:class:`~agents.sb3_features.GlimpseStepExtractor` (LSTM); the others flatten it.

The feed-forward policies see the whole episode so far (every glimpse and location plus a one-hot
step counter, :class:`~ram_env.wrappers.GlimpseHistoryWrapper`); the LSTM policy sees the current
glimpse and location only and keeps the rest in its state. All act through a ``Box`` action (two
location coordinates, then one score per class whose arg-max is the label,
:class:`~ram_env.wrappers.FlatActionWrapper`), or with ``action="discrete"`` a ``MultiDiscrete`` one,
since SB3 cannot take the native ``Dict`` action. The ``*_glimpse`` algorithms encode each glimpse with
one shared network (:mod:`agents.sb3_features`) instead of one weight per pixel of every step.

``reward="graded"`` (opt-in; ``"binary"``, the paper's 0/1, is the default) pays the log-probability
of the true class under the class scores, each step's prediction as potential-based shaping
(:class:`~ram_env.wrappers.GradedRewardWrapper`), and trains with :data:`GRADED_HYPERPARAMS`
(``gae_lambda=0.5``, so that the shaping reaches the advantages); training accuracy and val/test error
still count right answers. ``ppo_glimpse`` then also sees the class scores it gave on the previous step
(the hyperparameter ``observe_scores``, :class:`~ram_env.wrappers.LastScoresWrapper` on top of ``Flat``),
which set the shaping's potential.

A task with early answers (``answer="any_step"``, optionally ``glimpse_cost``) gives every action one more
entry, the stop flag (:mod:`ram_env.wrappers`); envs that answer early restart alone, and evaluation
scores each image's first episode once (:func:`~agents.sb3_policy.play_episodes`). The graded reward
refuses such a task (:func:`~ram_env.wrappers.check_graded_answer`).

Training steps ``n_envs`` episodes as one batch of the native vector env
(:class:`~agents.sb3_vec_env.GlimpseSB3VecEnv`); every ``eval_every`` steps
:class:`~agents.sb3_callbacks.RunCallback` scores a fixed subset of the val split and writes the run
folder of :mod:`agents.runlog`: ``config.json`` (``"learner": "sb3"``), ``metrics.csv`` and TensorBoard
events under the same tags as the RAM agent (SB3's own events in ``sb3_0/``), ``model.zip`` (latest)
and ``best.zip`` (lowest val error; the test split is never looked at during training).

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
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch

from agents.runlog import RunLog, read_config, read_rows, summary
from agents.sb3_algos import (
    ALGOS,
    DEFAULT_N_ENVS,
    GRADED_HYPERPARAMS,
    HYPERPARAMS,
    LR_SCHEDULES,
    N_ENVS,
    PPO_SETTINGS,
    LinearToBudget,
    algo_class,
    algo_kwargs,
    base_algo,
    check_algo,
    policy_name,
    sees_glimpse_history,
)
from agents.sb3_callbacks import MinutesBar, RunCallback
from agents.sb3_envs import (
    check_algo_options,
    check_observe_scores,
    make_env,
    make_task_vec,
    make_vec_env,
    task_env_id,
    task_kwargs,
)
from agents.sb3_policy import BatchPolicy, play_episodes, policy_of
from agents.sb3_vec_env import ACTIONS, check_options
from ram_env.wrappers import REWARDS, check_graded_answer

__all__ = [
    "ALGOS",
    "ACTIONS",
    "REWARDS",
    "HYPERPARAMS",
    "GRADED_HYPERPARAMS",
    "N_ENVS",
    "DEFAULT_N_ENVS",
    "LR_SCHEDULES",
    "PPO_SETTINGS",
    "check_options",
    "LinearToBudget",
    "base_algo",
    "algo_class",
    "make_env",
    "make_task_vec",
    "task_env_id",
    "task_kwargs",
    "make_vec_env",
    "policy_of",
    "train",
    "load",
    "batch_policy",
    "evaluate",
]

# A run budgeted in minutes alone: its step count is SB3's learn() argument, never reached, never shown.
UNCAPPED = 2**62
EVAL_EVERY = 50_000  # env steps between evaluation rounds of a run with no step budget to divide by 20


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_budget(total_timesteps: int | None, max_minutes: float | None, **positive: Any) -> None:
    """A run's budget: ``total_timesteps`` a positive integer, or ``None`` when ``max_minutes`` alone ends the run;
    the ``positive`` values positive integers."""
    if total_timesteps is None and not max_minutes:
        raise ValueError("total_timesteps may be left out (None) only with max_minutes, which then ends the run")
    _check_positive(**positive, **({} if total_timesteps is None else {"total_timesteps": total_timesteps}))


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _resumed_config(run_dir: Path, algo: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    if not (run_dir / "model.zip").is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {run_dir / 'model.zip'}")
    config = _read_config(run_dir / "config.json")
    if config["algo"] != algo or config["env"] != env_kwargs:
        raise ValueError(
            f"cannot resume {run_dir}: it holds algo={config['algo']!r} env={config['env']}, "
            f"not algo={algo!r} env={env_kwargs}"
        )
    return config


def _new_config(run_dir: Path, algo: str, env_kwargs: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The config of a new run; ``settings`` holds train()'s arguments that a resumed run keeps."""
    check_algo_options(algo, settings["action"], settings["reward"])
    if settings["reward"] == "graded":
        check_graded_answer(env_kwargs.get("answer", "last_step"))
    if (run_dir / "model.zip").exists():
        raise FileExistsError(f"{run_dir} already holds a run (model.zip); pass resume=True or choose another run_dir")
    hp = copy.deepcopy(HYPERPARAMS[algo])
    if settings["action"] != "box":
        hp.pop("score_log_std_init", None)  # a default of the box action's class scores, which this one lacks
    if settings["reward"] == "graded":
        hp.update(GRADED_HYPERPARAMS)
    else:
        hp.pop("observe_scores", None)  # a default for the graded reward's shaping (HYPERPARAMS)
    hp.update(copy.deepcopy(settings["hyperparameters"] or {}))
    observe_scores = bool(hp.get("observe_scores"))
    check_observe_scores(algo, settings["action"], observe_scores)
    total, n_envs = settings["total_timesteps"], int(settings["n_envs"])
    eval_every = int(settings["eval_every"] or (max(int(total) // 20, 1) if total else EVAL_EVERY))
    return {
        "learner": "sb3",
        "algo": algo,
        "policy": policy_name(algo),
        "env": env_kwargs,
        "hyperparameters": hp,
        "seed": int(settings["seed"]),
        "eval_episodes": int(settings["eval_episodes"]),
        "eval_every": max(eval_every, int(hp["n_steps"]) * n_envs),  # at least one rollout
        "action": settings["action"],
        "grid": int(settings["grid"]),
        "reward": settings["reward"],
        "reward_options": dict(settings["reward_options"] or {}),
        "wrappers": _wrapper_names(algo, settings["action"], settings["reward"], observe_scores),
        "stable_baselines3": stable_baselines3.__version__,
    }


def _wrapper_names(algo: str, action: str, reward: str, observe_scores: bool) -> list[str]:
    """The wrappers of :func:`make_env`, innermost first (what the learner's env is, in the config)."""
    if base_algo(algo) == "recurrent_ppo":
        names = ["FlattenObservation"]
    else:
        names = ["GlimpseHistoryWrapper" if not sees_glimpse_history(algo) else "GlimpseHistoryWrapper(flatten=False)"]
    names.append("FlatActionWrapper" if action == "box" else "DiscreteActionWrapper")
    names += ["LastScoresWrapper"] if observe_scores else []
    return names + (["GradedRewardWrapper"] if reward == "graded" else [])


def _rounds_kept(run_dir: Path, steps: int) -> list[dict[str, str]]:
    """The rows of ``metrics.csv`` up to the checkpoint at ``steps`` (later ones were interrupted)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    rows = read_rows(path)
    if rows and "env_steps" not in rows[0]:
        raise ValueError(f"{path} predates the run-folder contract of agents/runlog.py; start a new run_dir")
    return [r for r in rows if int(float(r["env_steps"])) <= steps]


def _model(config: dict[str, Any], run_dir: Path, venv, device: str, tensorboard: bool, verbose: int):
    """A new model, or the one in ``run_dir/model.zip`` when the run folder holds one."""
    algo, log = config["algo"], str(run_dir) if tensorboard else None
    if (run_dir / "model.zip").is_file():
        return _load_model(run_dir / "model.zip", algo, device=device, env=venv, tensorboard_log=log)
    kwargs = algo_kwargs(config["hyperparameters"])
    score_log_std = kwargs.pop("score_log_std_init", None)
    model = algo_class(algo)(
        policy_name(algo), venv, seed=config["seed"], device=device, verbose=verbose, tensorboard_log=log, **kwargs
    )
    if score_log_std is not None:  # the class scores' own exploration noise; the location keeps log_std_init
        if not isinstance(model.action_space, gym.spaces.Box):
            raise ValueError("score_log_std_init applies to the box action's class scores, not action='discrete'")
        with torch.no_grad():
            model.policy.log_std[2:] = float(score_log_std)
    return model


def _run_callback(config, run_dir: Path, val_env, kept: list[dict[str, str]] | None, tensorboard: bool):
    """The callback writing the run folder; ``kept``: the rows a resumed run continues (None: a new run)."""
    if config["eval_episodes"] > val_env.n_images:
        raise ValueError(f"eval_episodes={config['eval_episodes']} exceeds the {val_env.n_images} validation images")
    rounds = int(kept[-1]["epoch"]) if kept else 0
    runlog = RunLog(run_dir, resume_after=None if kept is None else rounds, tensorboard=tensorboard)
    return RunCallback(
        run_dir,
        config["algo"],
        config["env"],
        val_env,
        int(config["eval_every"]),
        runlog,
        rounds=rounds,
        elapsed=float(kept[-1]["elapsed_seconds"]) if kept else 0.0,
        best_val=min((float(r["val_error"]) for r in kept or []), default=float("inf")),
        budget=60 * config["max_minutes"] if config.get("max_minutes") else float("inf"),
    )


def train(
    algo: str,
    env_kwargs: dict[str, Any],
    run_dir: Path,
    total_timesteps: int | None,
    seed: int = 1,
    device: str = "auto",
    resume: bool = False,
    n_envs: int | None = None,
    eval_episodes: int = 1000,
    *,
    eval_every: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
    action: str = "box",
    grid: int = 7,
    reward: str = "binary",
    reward_options: dict[str, Any] | None = None,
    tensorboard: bool = True,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train ``algo`` on the task ``env_kwargs`` (GlimpseEnv arguments, without ``split``) into ``run_dir``.

    :param total_timesteps: budget of environment steps (all envs together; an episode is ``n_glimpses``);
        ``None``: none, ``max_minutes`` ends the run
    :param resume: continue ``run_dir/model.zip`` up to ``total_timesteps`` (the metrics and ``best.zip``
        carry on; at most the steps since the last checkpoint are lost)
    :param n_envs: training episodes stepped as one batch (:func:`make_vec_env`); default :data:`N_ENVS` of
        ``algo``, else :data:`DEFAULT_N_ENVS`
    :param eval_episodes: size of the fixed validation subset (images ``0 .. eval_episodes-1`` of ``val``)
    :param eval_every: timesteps between evaluation rounds; default ``total_timesteps // 20``, at least one
        rollout
    :param hyperparameters: overrides of :data:`HYPERPARAMS[algo]` (``policy_kwargs`` replaced whole);
        ``score_log_std_init`` (box actions) gives the class scores their own initial log standard deviation;
        ``lr_schedule`` is ``"constant"`` or ``"linear"`` (:class:`LinearToBudget`); ``observe_scores`` shows
        the class scores of the previous step (:class:`~ram_env.wrappers.LastScoresWrapper`)
    :param progress_bar: SB3's progress bar of env steps; with ``max_minutes``, one of training minutes
        (:class:`~agents.sb3_callbacks.MinutesBar`)
    :param action: ``"box"`` (:class:`FlatActionWrapper`, the default) or ``"discrete"``
        (:class:`DiscreteActionWrapper` with a ``grid x grid`` lattice)
    :param reward: ``"binary"`` (the env's 0/1, the default) or ``"graded"``
        (:class:`~ram_env.wrappers.GradedRewardWrapper`; ``box`` actions only; it also applies
        :data:`GRADED_HYPERPARAMS` before ``hyperparameters``)
    :param reward_options: the graded reward's ``scale``, ``shaping`` and ``gamma``
    :param tensorboard: write TensorBoard events (RunLog's tags, and SB3's own in ``run_dir/sb3_0``)
    :param max_minutes: stop once the run (earlier sessions included) has trained this long, evaluations included
    :return: summary: timesteps, training seconds, last and best val error (percent), last training
        accuracy (percent), paths
    """
    check_algo(algo)
    n_envs = N_ENVS.get(algo, DEFAULT_N_ENVS) if n_envs is None else n_envs
    check_budget(total_timesteps, max_minutes, n_envs=n_envs, eval_episodes=eval_episodes)
    run_dir = Path(run_dir)
    env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("split", "render_mode")}
    settings = dict(seed=seed, eval_episodes=eval_episodes, eval_every=eval_every, action=action, grid=grid)
    settings.update(reward=reward, reward_options=reward_options)
    settings.update(hyperparameters=hyperparameters, total_timesteps=total_timesteps, n_envs=n_envs)
    config = _run_config(run_dir, algo, env_kwargs, settings, resume, max_minutes)
    return _learn(config, algo, env_kwargs, run_dir, device, resume, tensorboard, verbose, progress_bar)


def _run_config(run_dir: Path, algo: str, env_kwargs: dict, settings: dict, resume: bool, max_minutes) -> dict:
    """The run's config, a new run's from ``settings`` (train()'s arguments) or the resumed run's with its budget
    and envs from them, written to ``config.json``."""
    total_timesteps, n_envs = settings["total_timesteps"], settings["n_envs"]
    if resume:
        config = _resumed_config(run_dir, algo, env_kwargs)
    else:
        config = _new_config(run_dir, algo, env_kwargs, settings)
        run_dir.mkdir(parents=True, exist_ok=True)
    # a resumed run may change these three
    config.update(total_timesteps=total_timesteps and int(total_timesteps), n_envs=int(n_envs), max_minutes=max_minutes)
    _write_json(run_dir / "config.json", config)
    return config


def _learn(config, algo, env_kwargs, run_dir: Path, device, resume, tensorboard, verbose, progress_bar) -> dict:
    """Build the envs, the model and the callback of a run whose ``config.json`` is written, and train it."""
    total_timesteps, n_envs = config["total_timesteps"], int(config["n_envs"])
    action, grid = config.get("action", "box"), int(config.get("grid", 7))
    rewards = dict(reward=config.get("reward", "binary"), reward_options=config.get("reward_options"))
    scores = bool(config["hyperparameters"].get("observe_scores"))
    venv = make_vec_env(algo, env_kwargs, n_envs, "train", action=action, grid=grid, observe_scores=scores, **rewards)
    model = _model(config, run_dir, venv, device, tensorboard, verbose)
    kept = _rounds_kept(run_dir, model.num_timesteps) if resume else []
    venv.seed(int(config["seed"]) + model.num_timesteps)
    val_env = make_task_vec(env_kwargs, int(config["eval_episodes"]), "val")
    callback = _run_callback(config, run_dir, val_env, kept if resume else None, tensorboard)
    if config["hyperparameters"].get("lr_schedule") == "linear":
        model.lr_schedule = LinearToBudget(float(config["hyperparameters"]["learning_rate"]), callback.budget_left)
    t0 = time.perf_counter()
    remaining = (UNCAPPED if total_timesteps is None else int(total_timesteps)) - model.num_timesteps
    minutes_bar = progress_bar and not math.isinf(callback.budget)  # the clock ends the run: count minutes
    callbacks = [callback, MinutesBar(callback)] if minutes_bar else callback
    if remaining > 0 and callback.elapsed < callback.budget:  # a resumed run may have spent its budget
        model.learn(
            remaining,
            callback=callbacks,
            reset_num_timesteps=False,
            progress_bar=progress_bar and not minutes_bar,
            tb_log_name="sb3",
        )
    venv.close()
    val_env.close()
    callback.runlog.close()
    seconds = time.perf_counter() - t0
    return summary(algo, run_dir, model.num_timesteps, seconds, model=run_dir / "model.zip", best=run_dir / "best.zip")


def _read_config(path: Path) -> dict[str, Any]:
    config = read_config(path, "an SB3", ("algo", "env", "hyperparameters"))
    if config["algo"] not in ALGOS:
        raise ValueError(f"{path} names unknown algo {config['algo']!r}; known: {', '.join(ALGOS)}")
    return config


def _load_model(path: Path, algo: str, device: str = "cpu", env=None, **changes: Any):
    cls = algo_class(algo)
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model at {path}")
    try:
        return cls.load(path, env=env, device=device, **changes)
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


def batch_policy(path: Path) -> BatchPolicy:
    """The rendering protocol's policy (:func:`~agents.sb3_policy.policy_of`) for a saved model."""
    model, config = load(path)
    return policy_of(model, config["algo"], config["env"])


def evaluate(
    path: Path, split: str = "test", data_dir: str | None = None, limit: int | None = None, batch_size: int = 500
) -> tuple[np.ndarray, dict[str, Any]]:
    """Score a saved model: one deterministic episode on every image of ``split``, in order.

    The episodes are played ``batch_size`` at a time on the native vector env; the val and test
    episodes are fixed per image, so the flags are those of one episode at a time on the single env.

    :param path: a run folder (its ``best.zip`` is used) or an SB3 ``.zip`` with ``config.json`` beside it
    :param data_dir: overrides the dataset folder stored in the config
    :param limit: score only the first ``limit`` images
    :return: ``(correct, config)``: a bool array with one entry per image, and the run's config
    """
    if limit is not None:
        _check_positive(limit=limit)
    _check_positive(batch_size=batch_size)
    model, config = load(path)
    env_kwargs = task_kwargs(config["env"], split, data_dir)
    venv = make_task_vec(env_kwargs, min(batch_size, limit or batch_size), split)
    n = venv.n_images if limit is None else min(venv.n_images, int(limit))
    correct = play_episodes(policy_of(model, config["algo"], env_kwargs), venv, np.arange(n))
    venv.close()
    return correct, config
