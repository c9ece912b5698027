"""Ray RLlib's PPO on the RAM tasks: the one adapter between RLlib and ram_env (optional extra ``[rllib]``).

RLlib sees exactly the env that SB3's ``ppo`` sees, built by the same function (:func:`agents.sb3.make_env`):

| what RLlib needs        | here                                                                              |
|-------------------------|-----------------------------------------------------------------------------------|
| an env creator          | :func:`make_env`, registered as :data:`ENV_NAME` (``ray.tune.registry.register_env``) |
| a flat observation      | ``GlimpseHistoryWrapper``: every glimpse and location so far, and the step (``Box``)  |
| a ``Box`` action        | ``FlatActionWrapper``: two location coordinates, then one score per class           |
| the graded reward       | ``GradedRewardWrapper`` on top (``reward="graded"``), as for SB3                     |
| a network               | RLlib's default PPO ``RLModule`` (:data:`MODEL`), its log std a free parameter      |

The new API stack (RLModule, Learner, ConnectorV2) runs the training: one Learner in this process and
``num_env_runners`` EnvRunner actors, each stepping ``n_envs`` envs (0: sampling happens in this process).
Ray is started locally unless ``ray_address`` (or ``RAY_ADDRESS``, or a cluster that ``ray start`` left on
this machine) names one; the runners then spread over the cluster's machines, each of which needs this
project installed and the dataset in ``RAM_DATA_DIR`` (or ``data_dir``).

The run folder is :mod:`agents.runlog`'s: ``config.json`` (``"learner": "rllib"``), ``metrics.csv`` and
TensorBoard events, ``best/`` (the RLModule with the lowest val error, an RLModule checkpoint that
``RLModule.from_checkpoint`` reads without a Ray cluster) and ``last/`` (the whole Algorithm, for ``resume``).
Scoring plays the module on the native vector env through SB3's batch policy (:mod:`agents.sb3_policy`):
the same history and action conversions, one deterministic episode per image.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

try:
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModule
    from ray.tune.registry import register_env
except ImportError as e:
    raise ImportError(f"--algo rllib_ppo needs Ray RLlib ({e}): install it with pip install -e '.[rllib]'") from None

from agents import sb3
from agents.progress import BudgetBar
from agents.runlog import RunLog, read_config, read_rows, summary
from agents.sb3_policy import BatchPolicy, play_episodes
from agents.sb3_policy import policy_of as sb3_policy_of
from ram_env.wrappers import check_graded_answer

__all__ = [
    *("ALGOS", "ENV_NAME", "HYPERPARAMS", "GRADED_HYPERPARAMS", "MODEL", "LOG_STD_INIT"),
    *("make_env", "algo_config", "train", "load", "ModulePredictor", "policy_of", "evaluate"),
]

ALGOS = ("rllib_ppo",)
ENV_NAME = "ram_gym"
# SB3 ppo's settings (agents/sb3.PPO_SETTINGS, on its default envs) in RLlib's names: one rollout of 2048 env
# steps, 4 epochs of 256.
_PPO = sb3.PPO_SETTINGS
_SB3_ENVS = sb3.DEFAULT_N_ENVS
HYPERPARAMS: dict[str, Any] = dict(
    lr=_PPO["learning_rate"],
    train_batch_size_per_learner=_PPO["n_steps"] * _SB3_ENVS,
    minibatch_size=_PPO["batch_size"],
    num_epochs=_PPO["n_epochs"],
    gamma=_PPO["gamma"],
    lambda_=_PPO["gae_lambda"],
    clip_param=_PPO["clip_range"],
    use_kl_loss=False,  # SB3's PPO has the clipped objective only
    entropy_coeff=_PPO["ent_coef"],
    vf_loss_coeff=_PPO["vf_coef"],
    grad_clip=_PPO["max_grad_norm"],
    grad_clip_by="global_norm",
)
# Separate policy and value networks of 256-256 ReLU units, and a state-independent log std started at
# SB3 ppo's log_std_init (RLlib would start it at 0: noise of std 1 on locations in [-1, 1]).
MODEL: dict[str, Any] = dict(
    fcnet_hiddens=[256, 256], fcnet_activation="relu", vf_share_layers=False, free_log_std=True
)
LOG_STD_INIT = -3.0
GRADED_HYPERPARAMS = dict(lambda_=sb3.GRADED_HYPERPARAMS["gae_lambda"])  # the shaping reaches the advantages


def make_env(env_config: dict[str, Any]) -> gym.Env:
    """RLlib's env creator: one training env of the task, wrapped as SB3's ``ppo`` sees it.

    :param env_config: ``env`` (the task's keywords), ``reward`` and ``reward_options`` (RLlib passes an
        ``EnvContext``, a dict with the worker's index)
    """
    return sb3.make_env(
        "ppo",
        env_config["env"],
        "train",
        reward=env_config.get("reward", "binary"),
        reward_options=env_config.get("reward_options"),
    )


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _new_config(run_dir: Path, env_kwargs: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The config of a new run in ``run_dir``; ``settings`` holds train()'s arguments."""
    if (run_dir / "last").exists() or (run_dir / "best").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True or choose another run_dir")
    sb3.check_options("box", settings["reward"])
    graded = settings["reward"] == "graded"
    if graded:
        check_graded_answer(env_kwargs.get("answer", "last_step"))
    hp = {**HYPERPARAMS, **(GRADED_HYPERPARAMS if graded else {}), **(settings["hyperparameters"] or {})}
    total = settings["total_timesteps"]
    return {
        "learner": "rllib",
        "algo": "rllib_ppo",
        "env": env_kwargs,
        "hyperparameters": hp,
        "model": dict(MODEL, log_std_init=LOG_STD_INIT),
        "seed": int(settings["seed"]),
        "eval_episodes": int(settings["eval_episodes"]),
        "eval_every": max(
            int(settings["eval_every"] or (int(total) // 20 if total else sb3.EVAL_EVERY)),
            int(hp["train_batch_size_per_learner"]),
        ),
        "reward": settings["reward"],
        "reward_options": dict(settings["reward_options"] or {}),
        "wrappers": ["GlimpseHistoryWrapper", "FlatActionWrapper", *(["GradedRewardWrapper"] if graded else [])],
        "ray": ray.__version__,
    }


def algo_config(config: dict[str, Any]) -> PPOConfig:
    """RLlib's ``PPOConfig`` of a run config."""
    model = {k: v for k, v in config["model"].items() if k != "log_std_init"}
    env_config = {k: config[k] for k in ("env", "reward", "reward_options")}
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(num_env_runners=int(config["num_env_runners"]), num_envs_per_env_runner=int(config["n_envs"]))
        .training(**config["hyperparameters"])
        .rl_module(model_config=DefaultModelConfig(**model))
        .callbacks(on_episode_end=_count_answers)
        .debugging(seed=int(config["seed"]))
    )


def _count_answers(*, episode, metrics_logger, **_: Any) -> None:
    """Count each training episode's answer, right or wrong (summed over the runners per iteration)."""
    metrics_logger.log_value("ram_episodes", 1, reduce="sum")
    metrics_logger.log_value("ram_correct", int(bool(episode.get_infos(-1).get("correct"))), reduce="sum")


def _start_ray(address: str | None, num_env_runners: int) -> None:
    """Connect to a Ray cluster (Ray's own rules when ``address`` is None) with CPUs for every env runner."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, configure_logging=False)
    cpus = ray.cluster_resources().get("CPU", 0)
    if num_env_runners > cpus:
        raise ValueError(f"--num-env-runners {num_env_runners} needs a CPU each; the Ray cluster has {cpus:g}")


def _set_log_std(algo, value: float) -> None:
    """Start the policy's free log std at ``value`` in the learner, then send the weights to the runners."""

    def set_log_std(learner) -> None:
        with torch.no_grad():
            learner.module[DEFAULT_MODULE_ID].pi.log_std.fill_(value)

    algo.learner_group.foreach_learner(set_log_std)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)


def _replace_dir(save, path: Path) -> None:
    """``save(tmp)`` then ``tmp`` becomes ``path``, so that an interrupted save never leaves a broken ``path``."""
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    save(str(tmp.resolve()))
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _read_config(path: Path) -> dict[str, Any]:
    config = read_config(path, "an RLlib", ("learner", "env", "hyperparameters"))
    if config["learner"] != "rllib":
        raise ValueError(f"{path} is not an RLlib run config (its 'learner' is {config['learner']!r})")
    return config


def _resumed(run_dir: Path, env_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The run's config and the rows of ``metrics.csv`` up to its last checkpoint (later ones were interrupted)."""
    if not (run_dir / "last").is_dir():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {run_dir / 'last'}")
    config = _read_config(run_dir / "config.json")
    if config["env"] != env_kwargs:
        raise ValueError(f"cannot resume {run_dir}: it holds env={config['env']}, not env={env_kwargs}")
    rounds = json.loads((run_dir / "last" / "ram_round.json").read_text())["epoch"]
    rows = read_rows(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    return config, [r for r in rows if int(r["epoch"]) <= rounds]


def train(
    env_kwargs: dict[str, Any],
    run_dir: Path,
    total_timesteps: int | None,
    seed: int = 1,
    resume: bool = False,
    n_envs: int | None = None,
    num_env_runners: int = 1,
    eval_episodes: int = 1000,
    *,
    eval_every: int | None = None,
    max_minutes: float | None = None,
    reward: str = "binary",
    reward_options: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    ray_address: str | None = None,
    tensorboard: bool = True,
) -> dict[str, Any]:
    """Train RLlib's PPO on the task ``env_kwargs`` (GlimpseEnv arguments, without ``split``) into ``run_dir``.

    :param total_timesteps: budget of environment steps (all envs together; an episode is ``n_glimpses``);
        ``None``: none, ``max_minutes`` ends the run
    :param resume: continue ``run_dir/last`` up to ``total_timesteps`` (rows after its round are dropped)
    :param n_envs: envs stepped by each env runner (default :data:`agents.sb3.DEFAULT_N_ENVS`)
    :param num_env_runners: EnvRunner actors (separate processes, anywhere on the Ray cluster); 0 samples here
    :param eval_episodes: size of the fixed validation subset (images ``0 .. eval_episodes-1`` of ``val``)
    :param eval_every: env steps between evaluation rounds; default ``total_timesteps // 20``, at least one
        training batch
    :param max_minutes: stop after the round that passes this much training time (evaluations included)
    :param reward: ``"binary"`` (the env's 0/1, the default) or ``"graded"`` (``GradedRewardWrapper``, with
        :data:`GRADED_HYPERPARAMS` applied before ``hyperparameters``)
    :param reward_options: the graded reward's ``scale``, ``shaping`` and ``gamma``
    :param hyperparameters: overrides of :data:`HYPERPARAMS` (``PPOConfig.training`` arguments)
    :param ray_address: the Ray cluster to run on (default: Ray's rules, else a local one)
    :return: summary: env steps, training seconds, last and best val error (percent), paths
    """
    n_envs = sb3.DEFAULT_N_ENVS if n_envs is None else n_envs
    sb3.check_budget(total_timesteps, max_minutes, n_envs=n_envs, eval_episodes=eval_episodes)
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, int) or num_env_runners < 0:
        raise ValueError(f"num_env_runners must be an integer >= 0, got {num_env_runners!r}")
    run_dir = Path(run_dir)
    env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("split", "render_mode")}
    settings = dict(seed=seed, eval_episodes=eval_episodes, eval_every=eval_every, reward=reward)
    settings.update(reward_options=reward_options, hyperparameters=hyperparameters, total_timesteps=total_timesteps)
    config, kept = _resumed(run_dir, env_kwargs) if resume else (_new_config(run_dir, env_kwargs, settings), [])
    config.update(total_timesteps=total_timesteps and int(total_timesteps), n_envs=int(n_envs))
    config.update(num_env_runners=num_env_runners)
    config.update(max_minutes=max_minutes)  # a resumed run may change all four
    val_env = sb3.make_task_vec(env_kwargs, int(config["eval_episodes"]), "val")
    if config["eval_episodes"] > val_env.n_images:
        raise ValueError(f"eval_episodes={config['eval_episodes']} exceeds the {val_env.n_images} validation images")
    _start_ray(ray_address, num_env_runners)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "config.json", config)
    t0 = time.perf_counter()
    steps = _run(config, run_dir, val_env, kept, resume, tensorboard)
    last, best = run_dir / "last", run_dir / "best"
    return summary("rllib_ppo", run_dir, steps, time.perf_counter() - t0, best=best, last=last)


def _run(config, run_dir: Path, val_env, kept: list[dict[str, str]], resume: bool, tensorboard: bool) -> int:
    """Build the Algorithm (from ``last/`` when resuming), train it, stop it. Returns the env steps done."""
    register_env(ENV_NAME, make_env)
    algo = algo_config(config).build_algo()
    runlog = RunLog(
        run_dir, resume_after=int(kept[-1]["epoch"]) if kept else (0 if resume else None), tensorboard=tensorboard
    )
    try:
        if resume:
            algo.restore_from_path(str((run_dir / "last").resolve()))
        else:
            _set_log_std(algo, float(config["model"]["log_std_init"]))
        return _train_rounds(algo, config, run_dir, val_env, runlog, kept)
    finally:
        algo.stop()
        runlog.close()
        val_env.close()


def _train_rounds(algo, config, run_dir: Path, val_env, runlog: RunLog, kept: list[dict[str, str]]) -> int:
    """``algo.train()`` until ``total_timesteps`` or ``max_minutes``; a round (row, checkpoints) every
    ``eval_every`` env steps and at the end. Returns the env steps done."""
    last = kept[-1] if kept else {}
    steps, rounds = int(float(last.get("env_steps", 0))), int(last.get("epoch", 0))
    elapsed = float(last.get("elapsed_seconds", 0.0))
    best = min((float(r["val_error"]) for r in kept), default=math.inf)
    total, every = config["total_timesteps"] or math.inf, int(config["eval_every"])
    budget = 60 * config["max_minutes"] if config.get("max_minutes") else math.inf
    next_eval = (steps // every + 1) * every
    correct = episodes = 0
    start, bar = time.perf_counter(), BudgetBar(total, budget, steps, elapsed)
    while steps < total and elapsed < budget:  # a resumed run may have spent its budget
        result = algo.train()
        runners, learner = result["env_runners"], result["learners"][DEFAULT_MODULE_ID]
        steps += int(runners.get("num_env_steps_sampled", 0))
        correct, episodes = correct + runners.get("ram_correct", 0), episodes + runners.get("ram_episodes", 0)
        train_seconds = time.perf_counter() - start
        bar.update(steps, elapsed + train_seconds)
        done = steps >= total or elapsed + train_seconds >= budget
        if steps < next_eval and not done:
            continue
        module = algo.get_module()
        val_error = 100.0 * (
            1.0
            - play_episodes(
                policy_of(module, config["algo"], config["env"]), val_env, np.arange(val_env.num_envs)
            ).mean()
        )
        round_seconds = time.perf_counter() - start
        rounds, elapsed = rounds + 1, elapsed + round_seconds
        runlog.write(
            epoch=rounds,
            env_steps=steps,
            train_loss=float(learner["total_loss"]),
            train_accuracy=100.0 * correct / episodes if episodes else None,
            val_error=float(val_error),
            lr=float(learner["default_optimizer_learning_rate"]),
            samples_per_second=episodes / train_seconds if train_seconds > 0 else None,
            epoch_seconds=round_seconds,
            elapsed_seconds=elapsed,
        )
        if val_error < best or not (run_dir / "best").is_dir():
            best = min(best, val_error)
            _replace_dir(module.save_to_path, run_dir / "best")
        _replace_dir(lambda path: _save_algo(algo, path, rounds), run_dir / "last")
        next_eval, correct, episodes = (steps // every + 1) * every, 0, 0
        start = time.perf_counter()
        if done:
            break
    bar.close()
    return steps


def _save_algo(algo, path: str, rounds: int) -> None:
    """The whole Algorithm (learner, optimizer, runners' connectors) and the round it finished."""
    algo.save_to_path(path)
    (Path(path) / "ram_round.json").write_text(json.dumps({"epoch": rounds}) + "\n")


class ModulePredictor:
    """An RLModule with the ``predict`` of an SB3 model, so that :func:`agents.sb3_policy.policy_of` plays it:
    the mean action (RLlib's deterministic one), clipped to the action space as RLlib does before ``step``."""

    def __init__(self, module: RLModule):
        self.module = module
        self.observation_space, self.action_space = module.observation_space, module.action_space
        self.dist_class = module.get_inference_action_dist_cls()

    def predict(self, observation: np.ndarray, deterministic: bool = True, **_: Any) -> tuple[np.ndarray, None]:
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(observation, dtype=torch.float32)})
            action = self.dist_class.from_logits(out["action_dist_inputs"]).to_deterministic().sample()
        return np.clip(action.numpy(), self.action_space.low, self.action_space.high), None


def policy_of(module: RLModule, algo: str, env_kwargs: dict[str, Any]) -> BatchPolicy:
    """The rendering protocol's batch policy of ``module`` (``algo``: ``"rllib_ppo"``) on the native vector env,
    as :func:`agents.sb3_policy.policy_of` plays SB3's ``ppo``."""
    return sb3_policy_of(ModulePredictor(module), "ppo", env_kwargs)


def load(path: Path) -> tuple[RLModule, dict[str, Any]]:
    """``(module, config)`` from a run folder (its ``best/``) or an RLModule checkpoint beside ``config.json``."""
    path = Path(path)
    module_dir = path / "best" if (path / "config.json").is_file() else path
    config = _read_config(module_dir.parent / "config.json")
    if not (module_dir / "module_state.pkl").is_file():
        raise FileNotFoundError(f"no RLModule checkpoint at {module_dir}")
    try:
        module = RLModule.from_checkpoint(str(module_dir.resolve()))
    except Exception as e:  # a damaged checkpoint raises pickle, OS or torch errors
        raise ValueError(f"{module_dir} is not a readable RLModule checkpoint ({type(e).__name__}: {e})") from None
    return module, config


def evaluate(
    path: Path, split: str = "test", data_dir: str | None = None, limit: int | None = None, batch_size: int = 500
) -> tuple[np.ndarray, dict[str, Any]]:
    """Score a saved module: one deterministic episode on every image of ``split``, in order, ``batch_size``
    at a time on the native vector env (as :func:`agents.sb3.evaluate`). Returns ``(correct, config)``."""
    if limit is not None:
        _check_positive(limit=limit)
    _check_positive(batch_size=batch_size)
    module, config = load(path)
    env_kwargs = sb3.task_kwargs(config["env"], split, data_dir)
    venv = sb3.make_task_vec(env_kwargs, min(batch_size, limit or batch_size), split)
    n = venv.n_images if limit is None else min(venv.n_images, int(limit))
    correct = play_episodes(policy_of(module, config["algo"], env_kwargs), venv, np.arange(n))
    venv.close()
    return correct, config
