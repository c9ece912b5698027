"""REINFORCE with a learned baseline for the Recurrent Attention Model, on the native vector env.

Read top to bottom: configuration, one batch of episodes (:func:`rollout_loss`), evaluation on every
image of a split (:func:`evaluate`), the training loop (:func:`train`), then what it calls once an epoch or
once a run: checkpoints (:func:`save_checkpoints`) and resuming (:func:`resume_run`).

Under ``torchrun`` (see :mod:`agents.distributed`) the same code trains one model on several processes:
``batch_size`` is the global batch, each rank plays its slice, gradients are averaged, validation and test
images are split across the ranks, and rank 0 alone writes the run folder and prints.

Loss of a batch of episodes, with ``R`` the final reward (1 if the answer was right) and ``b_t`` the
baseline's prediction of ``R`` from ``h_t``:

* hybrid rule (default): cross-entropy of the final logits against ``info["label"]``
  + REINFORCE on the locations, ``-sum_t log pi(l_t | h_t) * (R - b_t)``
  + the baseline's squared error ``sum_t (R - b_t)^2``;
* ``classifier_loss="reinforce"``: no cross-entropy; the label is sampled from the classifier and
  trained by REINFORCE like the locations (pure RL).

On a task with early answers (``answer="any_step"``) the network has a halting policy too, and each episode
lasts the steps it chose: see :func:`halting_rollout_loss`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical
from tqdm import tqdm

import ram_env  # noqa: F401  (registers the RAM/ ids)
from agents import checkpoint, distributed
from agents.ram import BatchPolicy, RAMConfig, RecurrentAttentionModel, to_tensor
from agents.runlog import RunLog


@dataclass
class TrainConfig:
    """A whole training run; saved as ``config.json`` and inside every checkpoint."""

    env_id: str = "RAM/MNIST-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # task keywords overriding the id's defaults
    model: dict[str, Any] = field(default_factory=dict)  # RAMConfig sizes: glimpse_hidden, core, std, ...
    batch_size: int = 512  # images per update, over all processes under torchrun (each plays batch_size / N)
    lr: float = 3e-3
    lr_schedule: str = "cosine"  # "cosine" (to 0 over n_epochs) or "constant"
    n_epochs: int = 60
    patience: int = 100  # stop after this many epochs without a better val error
    train_rollouts: int = 1  # episodes per training image in a batch
    test_rollouts: int = 10  # episodes per image at test, locations sampled, class probabilities averaged
    # episodes per val image when choosing best.pt: 1 (mean locations) is fastest; test_rollouts scores as the test does
    val_rollouts: int = 1
    classifier_loss: str = "hybrid"  # "hybrid" (cross-entropy) or "reinforce" (pure RL)
    # answer="any_step": weight of the stop policy's entropy in the loss. Without it the stop head learns "never
    # answer early" while the classifier is still poor at early steps, and never tries again once it is good.
    stop_entropy: float = 0.01
    # classifier_loss="reinforce": weight of the sampled label's entropy in the loss. Without it (and with 0.01) the
    # label policy settled on one class within the first epoch on exp1, and a saturated softmax has no gradient
    # left to leave it; with 0.05 it learned (results/notes.md).
    label_entropy: float = 0.05
    seed: int = 1
    data_dir: str | None = None
    device: str = "auto"
    # where episodes live: "auto" (the torch backend on the training device if it is a GPU, so that no step copies
    # to the host; the numpy backend on a CPU, where it is faster), "numpy", or a torch device ("cpu", "cuda")
    env_device: str = "auto"
    max_minutes: float | None = None  # stop after the epoch that passes this much training time
    eval_batch: int = 1000
    train_images: int | None = None  # train on the first N training images only (quick experiments, tests)
    tensorboard: bool = True  # also write TensorBoard events to the run folder

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
    """``auto`` is CUDA if present; under torchrun, CUDA is the GPU of this process's ``LOCAL_RANK``."""
    return distributed.device(name)


def resolve_env_device(config: TrainConfig, device: torch.device) -> torch.device | None:
    """The torch device the episodes live on for ``config.env_device`` (see there), or None for the numpy backend."""
    if config.env_device == "numpy" or (config.env_device == "auto" and device.type != "cuda"):
        return None
    return device if config.env_device == "auto" else distributed.device(config.env_device)


def make_envs(config: TrainConfig, split: str, num_envs: int, device: torch.device | None = None):
    """The task's native vector env on one split: the agent's only way in. ``device``: the torch backend's
    device (observations, rewards and infos as tensors there); None: the numpy backend."""
    return gym.make_vec(
        config.env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        split=split,
        data_dir=config.data_dir,
        **({} if device is None else {"device": device}),
        **config.env_kwargs,
    )


def env_array(envs, x: torch.Tensor):
    """An action array as ``envs`` takes it without a copy: the tensor itself for the torch backend, else numpy."""
    return x if envs.unwrapped.device is not None else x.cpu().numpy()


def make_model(config: TrainConfig, envs: gym.vector.VectorEnv) -> RecurrentAttentionModel:
    """A fresh network shaped by the env's spaces."""
    shape = envs.single_observation_space["glimpse"].shape
    n_classes = int(envs.single_action_space["label"].n)
    halting = "stop" in envs.single_action_space.spaces  # the task's answer="any_step"
    return RecurrentAttentionModel(RAMConfig(glimpse_shape=shape, n_classes=n_classes, halting=halting, **config.model))


def rollout_loss(
    model: torch.nn.Module, envs, indices: np.ndarray, config: TrainConfig, device
) -> tuple[dict[str, torch.Tensor], float, float]:
    """Play one episode per env on images ``indices``; return the loss terms, the fraction answered right
    (the mean reward, on the default task) and the mean glimpses an episode took.

    ``model`` is the network or its DistributedDataParallel wrapper. The wrapper runs only the first recurrent
    step: one call a backward readies its gradient averaging, whose hooks sit on the weights and so cover every
    step; a call per step would only repeat that bookkeeping.
    """
    net = distributed.unwrap(model)
    if net.config.halting:
        return halting_rollout_loss(model, envs, indices, config, device)
    obs, _ = envs.reset(options={"indices": indices})
    n, n_glimpses = envs.num_envs, envs.unwrapped.config.n_glimpses
    state = net.initial_state(n, device)
    no_label = env_array(envs, torch.zeros(n, dtype=torch.int64, device=device))
    log_pis, baselines = [], []
    for t in range(n_glimpses):
        h, state = (model if t == 0 else net)(*to_tensor(obs, device), state)
        baselines.append(net.baseline(h))
        if t < n_glimpses - 1:
            policy = net.location_policy(h)
            location = sample_locations(policy, device)
            log_pis.append(policy.log_prob(location).sum(-1))
            # The log-probability is of the unclipped sample; the env only accepts [-1, 1].
            action = {"location": env_array(envs, location.clamp(-1, 1)), "label": no_label}
        else:
            logits = net.classify(h)
            if config.classifier_loss == "hybrid":
                label = logits.argmax(-1)
            else:
                answer = Categorical(logits=logits)
                label = sample_labels(answer, device)
                log_pis.append(answer.log_prob(label))
                label_entropy = answer.entropy().mean()
            action = {"location": env_array(envs, torch.zeros(n, 2, device=device)), "label": env_array(envs, label)}
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
    elif config.label_entropy:
        losses["label_entropy"] = -config.label_entropy * label_entropy
    return losses, reward.mean().item(), float(n_glimpses)


def halting_rollout_loss(
    model: torch.nn.Module, envs, indices: np.ndarray, config: TrainConfig, device
) -> tuple[dict[str, torch.Tensor], float, float]:
    """:func:`rollout_loss` on a task with early answers: each episode lasts the steps its halting policy chose.

    On each step ``t`` an episode still running draws "answer now" from the stop head (on step ``n_glimpses`` the
    env forces the answer: no decision) and, if it looks again, a location. Episode ``k`` ends after ``T_k``
    steps with ``R_k = correct - glimpse_cost * T_k``. The batch plays ``n_glimpses`` steps at most and stops
    once every episode has ended; an env whose episode ended restarts on its next step (the env's autoreset),
    and everything after its first ending is masked out. Over the steps ``t < T_k`` that an episode took:

    * REINFORCE: ``-sum_t [log pi(stop_t) + log pi(l_t) where it looked again] * (R - b_t)``;
    * the baseline's squared error ``(R - b_t)^2``, averaged over those steps;
    * hybrid rule: the cross-entropy of the classifier at *every* step taken, averaged. Each of those steps is one
      where the agent may answer, so the classifier must be right there: trained only where the current policy
      answers, it would stay untrained at the earlier steps and the halting policy could never find that
      answering earlier pays. The steps after an answer are never played, so they cannot be trained.
    * pure RL: the label sampled at the answering step joins the REINFORCE sum instead.

    Under torchrun each rank stops stepping once its own episodes have ended, so the noise a halting run draws is
    not exactly what one process would draw (the fixed-budget task's is).
    """
    net = distributed.unwrap(model)
    obs, _ = envs.reset(options={"indices": indices})
    n, n_glimpses = envs.num_envs, envs.unwrapped.config.n_glimpses
    state = net.initial_state(n, device)
    alive = torch.ones(n, dtype=torch.bool, device=device)  # still in the episode the batch started
    reward, correct, label = (
        torch.zeros(n, device=device),
        torch.zeros(n, device=device),
        torch.zeros_like(alive).long(),
    )
    masks, log_pis, baselines, logits_t, entropies, label_entropies = [], [], [], [], [], []
    for t in range(n_glimpses):
        h, state = (model if t == 0 else net)(*to_tensor(obs, device), state)  # see rollout_loss
        masks.append(alive)
        baselines.append(net.baseline(h))
        logits_t.append(net.classify(h))
        log_pi, stop, location, entropy = halting_decisions(net, h, t == n_glimpses - 1, device)
        if entropy is not None:
            entropies.append(entropy * alive)
        answer = logits_t[-1].argmax(-1)
        if config.classifier_loss == "reinforce":
            labels = Categorical(logits=logits_t[-1])
            answer = sample_labels(labels, device)
            log_pi = log_pi + torch.where(stop, labels.log_prob(answer), 0.0)
            label_entropies.append(labels.entropy() * (stop & alive))
        log_pis.append(log_pi)
        action = {"location": location, "label": answer, "stop": stop.long()}
        obs, r, terminated, _, info = envs.step({k: env_array(envs, v) for k, v in action.items()})
        ended = torch.as_tensor(terminated, device=device) & alive
        if ended.any():
            reward = torch.where(ended, torch.as_tensor(r, device=device).float(), reward)
            correct = torch.where(ended, torch.as_tensor(info["correct"], device=device).float(), correct)
            label = torch.where(ended, torch.as_tensor(info["label"], device=device), label)
        alive = alive & ~ended
        if not alive.any():
            break
    mask = torch.stack(masks).float()  # (T, N): the steps each episode took
    steps = dict(log_pi=log_pis, baseline=baselines, logits=logits_t, entropy=entropies, label_entropy=label_entropies)
    losses = halting_losses({k: torch.stack(v) for k, v in steps.items() if v}, mask, reward, label, config)
    return losses, correct.mean().item(), mask.sum(0).mean().item()


def halting_losses(steps: dict[str, torch.Tensor], mask, reward, label, config: TrainConfig) -> dict[str, torch.Tensor]:
    """The loss terms of :func:`halting_rollout_loss` from its per-step tensors (``T`` first) and ``mask``."""
    baselines = steps["baseline"]
    losses = {
        "reinforce": -(steps["log_pi"] * (reward - baselines).detach() * mask).sum(0).mean(),
        "baseline": ((reward - baselines) ** 2 * mask).sum() / mask.sum(),
    }
    if "entropy" in steps and config.stop_entropy:
        losses["entropy"] = -config.stop_entropy * steps["entropy"].sum(0).mean()
    if "label_entropy" in steps and config.label_entropy:  # pure RL: the label sampled where the episode answered
        losses["label_entropy"] = -config.label_entropy * steps["label_entropy"].sum(0).mean()
    if config.classifier_loss == "hybrid":
        logits = steps["logits"]
        ce = F.cross_entropy(logits.flatten(0, 1), label.repeat(len(logits)), reduction="none")
        losses["action"] = (ce * mask.flatten()).sum() / mask.sum()
    return losses


def halting_decisions(net: RecurrentAttentionModel, h: torch.Tensor, last: bool, device):
    """One step's stop flags (bool) and next locations, with the log-probability of the decisions that were taken
    (the stop flag, and the location where the episode looks again) and the stop policy's entropy. On the last
    step the answer is forced: no decision, no entropy (None)."""
    policy = net.location_policy(h)
    location = sample_locations(policy, device)
    if last:
        stop = torch.ones(len(h), dtype=torch.bool, device=device)
        return torch.zeros(len(h), device=device), stop, location.clamp(-1, 1), None
    halting = net.stop_policy(h)
    stop = sample_stops(halting, device)
    log_pi = halting.log_prob(stop.float()) + torch.where(stop, 0.0, policy.log_prob(location).sum(-1))
    return log_pi, stop, location.clamp(-1, 1), halting.entropy()


# The noise of a training batch is drawn for the global batch and sliced to this rank's rows, so that N ranks
# sample what one process would; with one process each is exactly what ``.sample()`` draws.
def sample_locations(policy, device) -> torch.Tensor:
    """Gaussian locations, as ``policy.sample()``: no gradient, the sample is an action, not a function of the
    weights."""
    noise = torch.randn(len(policy.mean) * distributed.world_size(), 2, device=device)
    return (policy.mean + policy.stddev * distributed.shard(noise)).detach()


def sample_stops(halting: Bernoulli, device) -> torch.Tensor:
    """Stop flags (bool) drawn from ``halting``, as ``halting.sample()`` draws them (uniform noise below p)."""
    noise = torch.rand(len(halting.probs) * distributed.world_size(), device=device)
    return distributed.shard(noise) < halting.probs.detach()


def sample_labels(answer: Categorical, device) -> torch.Tensor:
    """Labels drawn from ``answer``, as ``answer.sample()`` draws them (argmax of the probabilities over Exp(1))."""
    rows, classes = answer.probs.shape
    noise = torch.empty(rows * distributed.world_size(), classes, device=device).exponential_()
    return (answer.probs / distributed.shard(noise)).argmax(-1)


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
    terms, reward, glimpses = rollout_loss(model, envs, np.repeat(images, config.train_rollouts), config, device)
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item(), reward, glimpses


@dataclass
class Scores:
    """What :func:`score` found on each image of a split (under torchrun, every rank holds all of it)."""

    correct: np.ndarray  # (n_images,) bool: the answer, class probabilities averaged over the rollouts, was right
    glimpses: np.ndarray  # (n_images, rollouts) int: the glimpses each episode took before it answered
    per_step: np.ndarray | None = None  # (n_glimpses, n_images) bool: right when answering after 1, 2, ... glimpses


def evaluate(
    model: RecurrentAttentionModel,
    envs,
    rollouts: int = 1,
    device="cpu",
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
    sample: bool | None = None,
) -> np.ndarray:
    """Play every image of the env's split exactly once (``rollouts`` episodes each, class
    probabilities averaged) and return a bool array: was each image classified right. See :func:`score`."""
    return score(model, envs, rollouts, device, limit, seed, progress, sample).correct


@torch.no_grad()
def score(
    model: RecurrentAttentionModel,
    envs,
    rollouts: int = 1,
    device="cpu",
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
    sample: bool | None = None,
    per_step: bool = False,
) -> Scores:
    """Play every image of the env's split exactly once, ``rollouts`` episodes each, class probabilities averaged.

    ``sample``: locations drawn from the policy (seeded) or its means (stop flags: "stop if p > 1/2");
    None samples exactly when ``rollouts > 1``. A halting agent answers when it stops: each env's first ending
    counts, and what the env plays after it (its autoreset) is ignored. ``per_step`` (fixed-budget agents) also
    scores the answer the classifier gives after each glimpse.
    Under torchrun the chunks of images are dealt to the ranks in turn and the results summed, so every rank
    returns the whole array; a rank skips the noise of the chunks it does not play, so the scores never
    depend on the number of ranks.
    """
    n_images = envs.unwrapped.n_images if limit is None else min(limit, envs.unwrapped.n_images)
    chunk = envs.num_envs // rollouts
    if chunk < 1 or envs.num_envs % rollouts:
        raise ValueError(f"{rollouts} rollouts need a multiple of {rollouts} envs, got {envs.num_envs}")
    if per_step and model.config.halting:
        raise ValueError("per-step scores are for a fixed-budget agent; a halting agent answers when it stops")
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same scores on every device
    tensors = envs.unwrapped.device is not None  # the torch backend: actions stay on the device
    sample = rollouts > 1 if sample is None else sample
    policy = BatchPolicy(model, device, sample=sample, generator=generator, tensors=tensors)
    n_glimpses = envs.unwrapped.config.n_glimpses
    rank, world = distributed.rank(), distributed.world_size()
    correct = np.zeros(n_images, dtype=bool)
    glimpses = np.zeros((n_images, rollouts), dtype=np.int64)
    steps = np.zeros((n_glimpses if per_step else 0, n_images), dtype=bool)
    starts = range(0, n_images, chunk)
    for k, start in enumerate(
        tqdm(starts, desc="evaluate", leave=False, mininterval=1.0, disable=not progress or None)
    ):
        if k % world != rank:
            for _ in range(n_glimpses if policy.sample else 0):  # the draws the rank playing this chunk makes
                torch.randn((envs.num_envs, 2), generator=generator)
            continue
        images = np.arange(start, min(start + chunk, n_images))
        padded = np.resize(images, envs.num_envs // rollouts)  # the env's batch is fixed: pad with repeats
        obs, _ = envs.reset(options={"indices": np.repeat(padded, rollouts)})
        # The rollouts of a val/test image start from the same fixed glimpse: read it once per image.
        same_start = all(repeats_rows(v, rollouts) for v in obs.values())
        answers, labels, taken, step_logits = play_chunk(policy, envs, obs, rollouts if same_start else 1, per_step)
        correct[images] = is_right(answers, labels, rollouts)[: len(images)]
        for t, logits in enumerate(step_logits):
            steps[t, images] = is_right(logits, labels, rollouts)[: len(images)]
        glimpses[images] = taken.reshape(-1, rollouts)[: len(images)]
    model.train()
    if world > 1:
        correct, steps = distributed.sum_arrays(correct) > 0, distributed.sum_arrays(steps) > 0
        glimpses = distributed.sum_arrays(glimpses).astype(np.int64)
    return Scores(correct, glimpses, steps if per_step else None)


def play_chunk(policy: BatchPolicy, envs, obs, repeats: int, per_step: bool):
    """One episode in every env from the observations of a reset: the logits each env answered from, the true
    labels and glimpses of those episodes (host arrays), and (``per_step``) the logits of every step."""
    n, n_glimpses = envs.num_envs, envs.unwrapped.config.n_glimpses
    alive = np.ones(n, dtype=bool)  # still in the episode the reset started
    labels, glimpses, answers, step_logits = np.zeros(n, np.int64), np.zeros(n, np.int64), None, []
    for t in range(n_glimpses):
        action, logits = policy.act(obs, first=t == 0, repeats=repeats if t == 0 else 1)
        obs, _, terminated, _, info = envs.step(action)
        if per_step:
            step_logits.append(logits)
        ended = host(terminated) & alive
        if ended.any():
            labels[ended], glimpses[ended] = host(info["label"])[ended], host(info["glimpses"])[ended]
            at = torch.as_tensor(ended, device=logits.device)[:, None]
            answers = torch.where(at, logits, logits if answers is None else answers)
        alive &= ~ended
        if not alive.any() and not policy.sample:  # sampling plays every step: a fixed number of draws a chunk
            break
    return answers, labels, glimpses, step_logits


def host(x) -> np.ndarray:
    """A numpy array of the numpy backend or a tensor of the torch backend, as a host numpy array."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def is_right(logits: torch.Tensor, labels: np.ndarray, rollouts: int) -> np.ndarray:
    """Whether the class probabilities of each block of ``rollouts`` rows, averaged, pick the block's label."""
    probs = logits.softmax(-1).view(-1, rollouts, logits.shape[-1]).mean(1)
    return (probs.argmax(-1).cpu().numpy() == labels[::rollouts]).copy()


def repeats_rows(v, r: int) -> bool:
    """Whether ``v`` (numpy array or tensor) is blocks of ``r`` identical rows."""
    if isinstance(v, torch.Tensor):
        return torch.equal(v, v[::r].repeat_interleave(r, 0))
    return np.array_equal(v, np.repeat(v[::r], r, axis=0))


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
    env_device: torch.device | None = None,
    sample: bool | None = None,
    per_step: bool = False,
) -> Scores:
    """:func:`score` on every image of ``split`` of the run's task, in batches of :data:`EVAL_CHUNK` images, with
    episodes on ``env_device`` (None: the numpy backend; the scores are the same)."""
    rollouts = rollouts or config.test_rollouts
    envs = make_envs(config, split, EVAL_CHUNK * rollouts, env_device)
    scores = score(model, envs, rollouts, device, limit, seed, progress, sample, per_step)
    envs.close()
    return scores


def error_with_interval(correct: np.ndarray) -> tuple[float, float, float]:
    """Error rate in percent and its 95% Wilson confidence interval (low, high), in percent."""
    n, err, z = len(correct), 1.0 - float(np.mean(correct)), 1.96
    centre = (err + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(err * (1 - err) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * err, 100 * (centre - half), 100 * (centre + half)


def score_val(model: RecurrentAttentionModel, val_envs, config: TrainConfig, device) -> float:
    """Percent of val images misclassified, scored over ``config.val_rollouts`` rollouts."""
    return 100 * (1 - float(evaluate(model, val_envs, config.val_rollouts, device).mean()))


@dataclass
class Progress:
    """Where a run stands after its last finished epoch (stored in last.pt under these names)."""

    epoch: int = 0
    best_val_error: float = float("inf")
    best_epoch: int = 0
    elapsed_seconds: float = 0.0
    env_steps: int | None = None  # None: a checkpoint written before it was counted (every episode took n_glimpses)


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train, writing ``config.json``, ``metrics.csv``, ``last.pt`` and ``best.pt`` (lowest val error) to ``run_dir``.

    With ``resume=True`` the run continues from ``run_dir/last.pt`` after its last finished epoch; a
    larger ``n_epochs`` than the run was started with extends it (the cosine schedule stretched).
    Under torchrun every rank calls this; rank 0 alone writes and prints.
    """
    run_dir, device, world = Path(run_dir), distributed.setup(config.device), distributed.world_size()
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} is split over {world} processes: make it a multiple of {world}"
        )
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # the epochs' image orders: the same on every rank
    on = resolve_env_device(config, device)
    envs = make_envs(config, "train", config.batch_size // world * config.train_rollouts, on)
    val_envs = make_envs(config, "val", max(1, config.eval_batch // config.val_rollouts) * config.val_rollouts, on)
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
        row = dict(
            epoch=run.epoch,
            env_steps=run.env_steps,
            train_loss=loss,
            train_accuracy=100 * accuracy,
            val_error=val_error,
            lr=scheduler.get_last_lr()[0],
            samples_per_second=episodes / train_seconds,
            epoch_seconds=seconds,
            elapsed_seconds=run.elapsed_seconds,
            glimpses=glimpses if model.config.halting else None,
        )
        save_checkpoints(run_dir, config, model, optimizer, scheduler, rng, envs, device, run, improved)
        report_epoch(log, row, improved)
    for closable in (envs, val_envs, log):
        if closable is not None:
            closable.close()
    distributed.barrier()  # rank 0's checkpoints are on disk before any rank goes on to read them
    return {"epochs": run.epoch, **{k: v for k, v in asdict(run).items() if k != "epoch"}}


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


def report_epoch(log: RunLog | None, row: dict[str, float], improved: bool) -> None:
    """Rank 0: the epoch's metrics row (CSV and TensorBoard) and its progress line."""
    if log is None:
        return
    log.write(**row)
    glimpses = "" if row.get("glimpses") is None else f"glimpses {row['glimpses']:.2f}  "
    print(
        f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.2f}%  "
        f"val error {row['val_error']:.2f}%{' *' if improved else '  '}  lr {row['lr']:.2e}  "
        f"{glimpses}"
        f"{row['epoch_seconds']:.1f}s  ({row['elapsed_seconds'] / 60:.1f} min)",
        flush=True,
    )


def print_main(text: str) -> None:
    """Progress lines, printed by rank 0 alone."""
    if distributed.is_main():
        print(text, flush=True)


def open_run_folder(run_dir: Path, config: TrainConfig, resume_after: int | None) -> RunLog | None:
    """Rank 0: write ``config.json`` (on resume too: ``n_epochs`` may have grown) and open the metrics log; the
    other ranks get ``None``."""
    if not distributed.is_main():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {**asdict(config), "learner": "ram", "world_size": distributed.world_size()}
    (run_dir / "config.json").write_text(json.dumps(info, indent=2) + "\n")
    return RunLog(run_dir, resume_after=resume_after, tensorboard=config.tensorboard)


def save_checkpoints(
    run_dir: Path, config: TrainConfig, model, optimizer, scheduler, rng, envs, device, run: Progress, improved: bool
) -> None:
    """``last.pt`` (everything a resume needs, every rank's random streams) and, if ``improved``, ``best.pt``
    (weights and config only, a third the size). Every rank calls this; rank 0 writes."""
    streams = distributed.gather(rank_rng_state(envs, device))
    if not distributed.is_main():
        return
    payload = {
        "config": asdict(config),
        "model_config": model.config.to_dict(),
        "model": model.state_dict(),  # the bare network's names: evaluate.py loads it without torchrun
        **asdict(run),
    }
    if improved:
        checkpoint.save(run_dir / "best.pt", payload)
    rng_states = {"numpy": rng.bit_generator.state, "ranks": streams}
    resume = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_states}
    checkpoint.save(run_dir / "last.pt", {**payload, **resume, "world_size": distributed.world_size()})


def rank_rng_state(envs, device) -> dict[str, Any]:
    """This rank's own random streams: its env's (start locations, canvases) and torch's (sampled actions)."""
    state = {"env": envs.unwrapped.get_random_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":  # the sampled locations of a GPU run come from its generator
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def resume_run(
    run_dir: Path, config: TrainConfig, model, optimizer, scheduler, rng, envs, val_envs, device
) -> Progress:
    """Load ``run_dir/last.pt`` into a fresh run's objects, rescore best.pt if the val protocol changed, and stretch
    the schedule if ``n_epochs`` grew; returns where the run stands."""
    state = checkpoint.load(run_dir, "last.pt")  # on the CPU, where RNG states live; load_state_dict moves the rest
    check_resumable(run_dir, state, config)
    t_max = getattr(scheduler, "T_max", None)  # the fresh cosine's length: config.n_epochs, before the saved one
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    run = Progress(**{f.name: state[f.name] for f in fields(Progress) if f.name in state})
    restore_rng(state["rng"], rng, envs, device)
    if state["config"].get("val_rollouts", 1) != config.val_rollouts and (run_dir / "best.pt").exists():
        run.best_val_error = score_val(load_model(run_dir / "best.pt", device)[0], val_envs, config, device)
        print_main(f"val error now scored over {config.val_rollouts} rollouts: best.pt rescored")
    print_main(
        f"resuming {run_dir} after epoch {run.epoch} "
        f"(best val error {run.best_val_error:.2f}% at epoch {run.best_epoch})"
    )
    planned = state["config"]["n_epochs"]
    if config.n_epochs > planned:
        stretch_schedule(config, optimizer, scheduler, t_max)
        print_main(
            f"extending the run from {planned} to {config.n_epochs} epochs "
            f"(learning rate now {optimizer.param_groups[0]['lr']:.2e})"
        )
    return run


def check_resumable(run_dir: Path, state: dict, config: TrainConfig) -> None:
    """Refuse, with one clear line, a resume that could not end where the uninterrupted run would."""
    if trajectory(state["config"]) != trajectory(asdict(config)):
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained with another config; resume with the same flags or start a new --out"
        )
    planned = state["config"]["n_epochs"]
    if config.n_epochs < planned:
        raise ValueError(
            f"--n_epochs {config.n_epochs} is shorter than the run's {planned}; resume with n_epochs >= {planned}"
        )
    trained_on, world = state.get("world_size", 1), distributed.world_size()
    if trained_on != world:
        raise checkpoint.CheckpointError(
            f"{run_dir}/last.pt was trained on {trained_on} process(es) and this is {world}: resume with the same "
            f"number (torchrun --nproc_per_node {trained_on}; plain python for 1), whose random streams it holds"
        )


def restore_rng(saved: dict, rng: np.random.Generator, envs, device) -> None:
    """Put back the epoch order's generator and this rank's own streams, as :func:`save_checkpoints` stored them."""
    rng.bit_generator.state = saved["numpy"]
    mine = saved["ranks"][distributed.rank()] if "ranks" in saved else saved  # a one-process run's older layout
    env = mine["env"] if "np_random" in mine["env"] else {"np_random": mine["env"]}  # older runs: np_random alone
    envs.unwrapped.set_random_state(env)
    torch.set_rng_state(mine["torch"])
    if device.type == "cuda" and "cuda" in mine:
        torch.cuda.set_rng_state(mine["cuda"], device)


def trajectory(config: dict) -> dict:
    """The parts of a config that shape the run (stopping and selection rules, paths and logging may change on
    resume, and ``n_epochs`` may grow: see :func:`stretch_schedule`)."""
    model = {**asdict(RAMConfig()), **config["model"]}  # a run saved before a network option existed had its default
    env = {"answer": "last_step", "glimpse_cost": 0.0, **config["env_kwargs"]}  # so had one saved before these
    free = ("n_epochs", "patience", "val_rollouts", "max_minutes", "data_dir", "device", "env_device", "tensorboard")
    return {**{k: v for k, v in config.items() if k not in free}, "model": model, "env_kwargs": env}


def stretch_schedule(config: TrainConfig, optimizer, scheduler, t_max: int) -> None:
    """Extend a resumed run to ``t_max`` updates (``config.n_epochs``): the cosine continues as if planned that long
    from the start, so a finished run warms back up to where the longer schedule would stand now."""
    if config.lr_schedule != "cosine":
        return
    scheduler.T_max = t_max
    progress = scheduler.last_epoch / scheduler.T_max
    for group in optimizer.param_groups:  # CosineAnnealingLR updates lr recursively: set the closed form once
        group["lr"] = config.lr * (1 + math.cos(math.pi * progress)) / 2


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
