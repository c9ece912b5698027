"""REINFORCE with a learned baseline for the Recurrent Attention Model, on the native vector env.

Read top to bottom: configuration, one batch of episodes (:func:`rollout_loss`), evaluation on every
image of a split (:func:`evaluate`), and the training loop (:func:`train`) with per-epoch checkpoints.

Loss of a batch of episodes, with ``R`` the final reward (1 if the answer was right) and ``b_t`` the
baseline's prediction of ``R`` from ``h_t``:

* hybrid rule (default): cross-entropy of the final logits against ``info["label"]``
  + REINFORCE on the locations, ``-sum_t log pi(l_t | h_t) * (R - b_t)``
  + the baseline's squared error ``sum_t (R - b_t)^2``;
* ``classifier_loss="reinforce"``: no cross-entropy; the label is sampled from the classifier and
  trained by REINFORCE like the locations (pure RL).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Categorical
from tqdm import tqdm

import ram_env  # noqa: F401  (registers the RAM/ ids)
from agents import checkpoint
from agents.ram import BatchPolicy, RAMConfig, RecurrentAttentionModel, to_tensor


@dataclass
class TrainConfig:
    """A whole training run; saved as ``config.json`` and inside every checkpoint."""

    env_id: str = "RAM/MNIST-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # task keywords overriding the id's defaults
    model: dict[str, Any] = field(default_factory=dict)  # RAMConfig sizes: glimpse_hidden, core, std, ...
    batch_size: int = 512
    lr: float = 3e-3
    lr_schedule: str = "cosine"  # "cosine" (to 0 over n_epochs) or "constant"
    n_epochs: int = 60
    patience: int = 100  # stop after this many epochs without a better val error
    train_rollouts: int = 1  # episodes per training image in a batch
    test_rollouts: int = 10  # episodes per image at test, locations sampled, class probabilities averaged
    val_rollouts: int = 1  # episodes per val image when choosing best.pt: 1 (mean locations) is fastest; test_rollouts scores as the test does
    classifier_loss: str = "hybrid"  # "hybrid" (cross-entropy) or "reinforce" (pure RL)
    seed: int = 1
    data_dir: str | None = None
    device: str = "auto"
    max_minutes: float | None = None  # stop after the epoch that passes this much training time
    eval_batch: int = 1000
    train_images: int | None = None  # train on the first N training images only (quick experiments, tests)

    def __post_init__(self):
        if self.classifier_loss not in ("hybrid", "reinforce"):
            raise ValueError(f"classifier_loss must be 'hybrid' or 'reinforce', got {self.classifier_loss!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        for name in (
            "batch_size",
            "n_epochs",
            "patience",
            "train_rollouts",
            "test_rollouts",
            "val_rollouts",
            "eval_batch",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_envs(config: TrainConfig, split: str, num_envs: int) -> gym.vector.VectorEnv:
    """The task's native vector env on one split: the agent's only way in."""
    return gym.make_vec(
        config.env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        split=split,
        data_dir=config.data_dir,
        **config.env_kwargs,
    )


def make_model(config: TrainConfig, envs: gym.vector.VectorEnv) -> RecurrentAttentionModel:
    """A fresh network shaped by the env's spaces."""
    shape = envs.single_observation_space["glimpse"].shape
    n_classes = int(envs.single_action_space["label"].n)
    return RecurrentAttentionModel(RAMConfig(glimpse_shape=shape, n_classes=n_classes, **config.model))


def rollout_loss(
    model: RecurrentAttentionModel, envs, indices: np.ndarray, config: TrainConfig, device
) -> tuple[dict[str, torch.Tensor], float]:
    """Play one episode per env on images ``indices``; return the loss terms and the mean reward."""
    obs, _ = envs.reset(options={"indices": indices})
    n, n_glimpses = envs.num_envs, envs.unwrapped.config.n_glimpses
    state = model.initial_state(n, device)
    no_label = np.zeros(n, dtype=np.int64)
    log_pis, baselines = [], []
    for t in range(n_glimpses):
        h, state = model(*to_tensor(obs, device), state)
        baselines.append(model.baseline(h))
        if t < n_glimpses - 1:
            policy = model.location_policy(h)
            location = policy.sample()  # no gradient: the sample is an action, not a function of the weights
            log_pis.append(policy.log_prob(location).sum(-1))
            # The log-probability is of the unclipped sample; the env only accepts [-1, 1].
            action = {"location": location.clamp(-1, 1).cpu().numpy(), "label": no_label}
        else:
            logits = model.classify(h)
            if config.classifier_loss == "hybrid":
                label = logits.argmax(-1)
            else:
                answer = Categorical(logits=logits)
                label = answer.sample()
                log_pis.append(answer.log_prob(label))
            action = {"location": np.zeros((n, 2), dtype=np.float32), "label": label.cpu().numpy()}
        obs, reward, terminated, _, info = envs.step(action)
    assert terminated.all(), "every episode ends after n_glimpses steps"
    reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
    baselines = torch.stack(baselines)  # (T, N): b_t predicts the final reward from h_t
    advantage = (reward - baselines).detach()
    losses = {
        "reinforce": -(torch.stack(log_pis) * advantage[: len(log_pis)]).sum(0).mean(),
        "baseline": F.mse_loss(baselines, reward.expand_as(baselines)),
    }
    if config.classifier_loss == "hybrid":
        losses["action"] = F.cross_entropy(logits, torch.as_tensor(info["label"], device=device))
    return losses, reward.mean().item()


def make_optimizer(config: TrainConfig, model: RecurrentAttentionModel, steps_per_epoch: int):
    """Adam and the learning-rate schedule, stepped once per update."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, fused=True
    )  # fused: one kernel per step, not per tensor
    if config.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.n_epochs * steps_per_epoch)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, scheduler


def update(
    model: RecurrentAttentionModel, optimizer, scheduler, envs, images: np.ndarray, config: TrainConfig, device
) -> tuple[float, float]:
    """One gradient step on the summed loss of a batch of training images; returns (loss, mean reward)."""
    terms, reward = rollout_loss(model, envs, np.repeat(images, config.train_rollouts), config, device)
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item(), reward


@torch.no_grad()
def evaluate(
    model: RecurrentAttentionModel,
    envs,
    rollouts: int = 1,
    device="cpu",
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Play every image of the env's split exactly once (``rollouts`` episodes each, class
    probabilities averaged) and return a bool array: was each image classified right.

    With one rollout the locations are the policy's means; with several they are sampled (seeded).
    """
    n_images = envs.unwrapped.n_images if limit is None else min(limit, envs.unwrapped.n_images)
    chunk = envs.num_envs // rollouts
    if chunk < 1 or envs.num_envs % rollouts:
        raise ValueError(f"{rollouts} rollouts need a multiple of {rollouts} envs, got {envs.num_envs}")
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same scores on every device
    policy = BatchPolicy(model, device, sample=rollouts > 1, generator=generator)
    n_glimpses = envs.unwrapped.config.n_glimpses
    correct = np.zeros(n_images, dtype=bool)
    for start in tqdm(
        range(0, n_images, chunk), desc="evaluate", leave=False, mininterval=1.0, disable=None if progress else True
    ):
        images = np.arange(start, min(start + chunk, n_images))
        padded = np.resize(images, envs.num_envs // rollouts)  # the env's batch is fixed: pad with repeats
        obs, _ = envs.reset(options={"indices": np.repeat(padded, rollouts)})
        # The rollouts of a val/test image start from the same fixed glimpse: read it once per image.
        same_start = all(np.array_equal(v, np.repeat(v[::rollouts], rollouts, axis=0)) for v in obs.values())
        obs, _, _, _, info = envs.step(policy(obs, first=True, repeats=rollouts if same_start else 1))
        for t in range(1, n_glimpses):
            obs, _, _, _, info = envs.step(policy(obs, first=False))
        probs = policy.logits.softmax(-1).view(-1, rollouts, policy.logits.shape[-1]).mean(1)
        labels = torch.as_tensor(info["label"][::rollouts], device=device)
        correct[images] = (probs.argmax(-1) == labels)[: len(images)].cpu().numpy()
    model.train()
    return correct


EVAL_CHUNK = 500  # images per evaluation batch: fixed, so that sampled locations (and scores) never depend on it


def evaluate_split(
    model: RecurrentAttentionModel,
    config: TrainConfig,
    split: str = "test",
    rollouts: int | None = None,
    device="cpu",
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """:func:`evaluate` on every image of ``split`` of the run's task, in batches of :data:`EVAL_CHUNK` images."""
    rollouts = rollouts or config.test_rollouts
    envs = make_envs(config, split, EVAL_CHUNK * rollouts)
    correct = evaluate(model, envs, rollouts, device, limit=limit, seed=seed, progress=progress)
    envs.close()
    return correct


def error_with_interval(correct: np.ndarray) -> tuple[float, float, float]:
    """Error rate in percent and its 95% Wilson confidence interval (low, high), in percent."""
    n, err, z = len(correct), 1.0 - float(np.mean(correct)), 1.96
    centre = (err + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(err * (1 - err) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * err, 100 * (centre - half), 100 * (centre + half)


METRICS = ["epoch", "train_loss", "train_accuracy", "val_error", "lr", "epoch_seconds", "elapsed_seconds"]


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train, writing ``config.json``, ``metrics.csv``, ``last.pt`` and ``best.pt`` (lowest val error) to ``run_dir``.

    With ``resume=True`` the run continues from ``run_dir/last.pt`` after its last finished epoch; a
    larger ``n_epochs`` than the run was started with extends it (the cosine schedule stretched).
    """
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    envs = make_envs(config, "train", config.batch_size * config.train_rollouts)
    val_envs = make_envs(config, "val", max(1, config.eval_batch // config.val_rollouts) * config.val_rollouts)

    def score_val(model) -> float:
        """Percent of val images misclassified, scored over ``config.val_rollouts`` rollouts."""
        return 100 * (1 - float(evaluate(model, val_envs, config.val_rollouts, device).mean()))

    envs.reset(seed=config.seed)
    model = make_model(config, envs).to(device)
    n_train = min(config.train_images or envs.unwrapped.n_images, envs.unwrapped.n_images)
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {n_train} training images")
    optimizer, scheduler = make_optimizer(config, model, steps_per_epoch)

    epoch, best_val, best_epoch, elapsed = 0, float("inf"), 0, 0.0
    if resume:
        state = checkpoint.load(run_dir, "last.pt")  # on the CPU, where RNG states live; load_state_dict moves the rest
        if _trajectory(state["config"]) != _trajectory(asdict(config)):
            raise checkpoint.CheckpointError(
                f"{run_dir}/last.pt was trained with another config; resume with the same flags or start a new --out"
            )
        planned = state["config"]["n_epochs"]
        if config.n_epochs < planned:
            raise ValueError(
                f"--n_epochs {config.n_epochs} is shorter than the run's {planned}; resume with n_epochs >= {planned}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, best_val, best_epoch, elapsed = (
            state["epoch"],
            state["best_val_error"],
            state["best_epoch"],
            state["elapsed_seconds"],
        )
        rng.bit_generator.state = state["rng"]["numpy"]
        envs.unwrapped.np_random.bit_generator.state = state["rng"]["env"]
        torch.set_rng_state(state["rng"]["torch"])
        if (
            device.type == "cuda" and "cuda" in state["rng"]
        ):  # the sampled locations of a GPU run come from its generator
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        _truncate_metrics(run_dir / "metrics.csv", epoch)
        if state["config"].get("val_rollouts", 1) != config.val_rollouts and (run_dir / "best.pt").exists():
            best_val = score_val(load_model(run_dir / "best.pt", device)[0])
            print(f"val error now scored over {config.val_rollouts} rollouts: best.pt rescored")
        print(f"resuming {run_dir} after epoch {epoch} (best val error {best_val:.2f}% at epoch {best_epoch})")
        if config.n_epochs > planned:
            _stretch_schedule(config, optimizer, scheduler, steps_per_epoch)
            print(
                f"extending the run from {planned} to {config.n_epochs} epochs (learning rate now {optimizer.param_groups[0]['lr']:.2e})"
            )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            csv.writer(f).writerow(METRICS)
    (run_dir / "config.json").write_text(
        json.dumps(asdict(config), indent=2) + "\n"
    )  # on resume too: n_epochs may have grown

    model.train()
    while epoch < config.n_epochs and epoch - best_epoch < config.patience:
        if config.max_minutes is not None and elapsed >= 60 * config.max_minutes:
            print(f"stopping: {elapsed / 60:.1f} minutes of training reached the --max-minutes budget")
            break
        start = time.perf_counter()
        order = rng.permutation(n_train)[: steps_per_epoch * config.batch_size]
        losses, rewards = [], []
        bar = tqdm(
            order.reshape(steps_per_epoch, config.batch_size),
            desc=f"epoch {epoch + 1}/{config.n_epochs}",
            leave=False,
            mininterval=1.0,
            disable=None,
        )
        for images in bar:
            loss, reward = update(model, optimizer, scheduler, envs, images, config, device)
            losses.append(loss)
            rewards.append(reward)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", acc=f"{np.mean(rewards[-50:]):.3f}")
        val_error = score_val(model)
        epoch += 1
        seconds = time.perf_counter() - start
        elapsed += seconds
        row = [
            epoch,
            float(np.mean(losses)),
            float(np.mean(rewards)),
            val_error,
            scheduler.get_last_lr()[0],
            seconds,
            elapsed,
        ]
        with open(run_dir / "metrics.csv", "a", newline="") as f:
            csv.writer(f).writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
        improved = val_error < best_val
        if improved:
            best_val, best_epoch = val_error, epoch
        payload = {
            "config": asdict(config),
            "model_config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "best_val_error": best_val,
            "best_epoch": best_epoch,
            "elapsed_seconds": elapsed,
            "rng": {
                "numpy": rng.bit_generator.state,
                "env": envs.unwrapped.np_random.bit_generator.state,
                "torch": torch.get_rng_state(),
                **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
            },
        }
        if improved:  # best.pt is for evaluation: weights and config, no optimiser state (a third the size)
            checkpoint.save(
                run_dir / "best.pt", {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler", "rng")}
            )
        checkpoint.save(run_dir / "last.pt", payload)
        print(
            f"epoch {epoch:3d}  loss {row[1]:.4f}  train acc {100 * row[2]:.2f}%  val error {val_error:.2f}%"
            f"{' *' if improved else '  '}  lr {row[4]:.2e}  {seconds:.1f}s  ({elapsed / 60:.1f} min)"
        )
    envs.close()
    val_envs.close()
    return {"epochs": epoch, "best_val_error": best_val, "best_epoch": best_epoch, "elapsed_seconds": elapsed}


def _trajectory(config: dict) -> dict:
    """The parts of a config that shape the run (stopping and selection rules and paths may change on resume, and
    ``n_epochs`` may grow: see :func:`_stretch_schedule`)."""
    model = {**asdict(RAMConfig()), **config["model"]}  # a run saved before a network option existed had its default
    return {
        **{
            k: v
            for k, v in config.items()
            if k not in ("n_epochs", "patience", "val_rollouts", "max_minutes", "data_dir", "device")
        },
        "model": model,
    }


def _stretch_schedule(config: TrainConfig, optimizer, scheduler, steps_per_epoch: int) -> None:
    """Extend a resumed run to ``config.n_epochs``: the cosine continues as if planned that long from
    the start, so a finished run warms back up to where the longer schedule would stand now."""
    if config.lr_schedule != "cosine":
        return
    scheduler.T_max = config.n_epochs * steps_per_epoch
    progress = scheduler.last_epoch / scheduler.T_max
    for group in optimizer.param_groups:  # CosineAnnealingLR updates lr recursively: set the closed form once
        group["lr"] = config.lr * (1 + math.cos(math.pi * progress)) / 2


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drop metric rows of epochs after the checkpoint (an epoch interrupted after its row was written)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if int(r[0]) <= epoch])


def load_model(path, device="cpu") -> tuple[RecurrentAttentionModel, TrainConfig]:
    """The network and run config of a checkpoint (or of ``<run dir>/best.pt``)."""
    state = checkpoint.load(path, map_location=device)
    try:
        config = TrainConfig(**state["config"])
        model = RecurrentAttentionModel(RAMConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise checkpoint.CheckpointError(
            f"{checkpoint.resolve(path)} does not match this code's model/config ({e})"
        ) from None
    return model.to(device), config
