"""Scoring a RAM agent: every image of a split played exactly once, the test error and its interval.

The val error that chooses ``best.pt`` (:func:`score_val`) and the test error that ``evaluate.py`` reports
(:func:`evaluate_split`) come from the same :func:`score`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from agents import distributed
from agents.ram import RecurrentAttentionModel
from agents.training.config import TrainConfig, autocast, check_data, check_fits, make_envs
from agents.training.policy import BatchPolicy


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
    check_scoring(model, envs, rollouts, per_step)
    n_images = envs.unwrapped.n_images if limit is None else min(limit, envs.unwrapped.n_images)
    chunk = envs.num_envs // rollouts
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


def check_scoring(model: RecurrentAttentionModel, envs, rollouts: int, per_step: bool) -> None:
    """Refuse, in one line, a :func:`score` that cannot be played as asked."""
    if envs.num_envs < rollouts or envs.num_envs % rollouts:
        raise ValueError(f"{rollouts} rollouts need a multiple of {rollouts} envs, got {envs.num_envs}")
    if per_step and model.config.halting:
        raise ValueError("per-step scores are for a fixed-budget agent; a halting agent answers when it stops")
    if per_step and model.config.in_sequence:
        raise ValueError("per-step scores are for one label; K heads read the core at their own steps")


def play_chunk(policy: BatchPolicy, envs, obs, repeats: int, per_step: bool):
    """One episode in every env from the observations of a reset: the logits each env answered from, the true
    labels and glimpses of those episodes (host arrays), and (``per_step``) the logits of every step."""
    n, n_glimpses = envs.num_envs, envs.unwrapped.config.n_glimpses
    alive = np.ones(n, dtype=bool)  # still in the episode the reset started
    labels, glimpses, answers, step_logits = None, np.zeros(n, np.int64), None, []
    for t in range(n_glimpses):
        action, logits = policy.act(obs, first=t == 0, repeats=repeats if t == 0 else 1)
        obs, _, terminated, _, info = envs.step(action)
        if per_step:
            step_logits.append(logits)
        ended = host(terminated) & alive
        if ended.any():
            truth = true_answers(info)
            labels = np.zeros_like(truth) if labels is None else labels
            labels[ended], glimpses[ended] = truth[ended], host(info["glimpses"])[ended]
            at = torch.as_tensor(ended, device=logits.device).view(-1, *[1] * (logits.dim() - 1))
            answers = torch.where(at, logits, logits if answers is None else answers)
        alive &= ~ended
        if not alive.any() and not policy.sample:  # sampling plays every step: a fixed number of draws a chunk
            break
    return answers, labels, glimpses, step_logits


def host(x) -> np.ndarray:
    """A numpy array of the numpy backend or a tensor of the torch backend, as a host numpy array."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def true_answers(info: dict) -> np.ndarray:
    """The truth of each env's answer, host: labels ``(N,)`` or ``(N, K)`` int, or (``target="location"``) the centre
    and half the digit's side ``(N, 3)`` float."""
    if "centre" in info:
        return np.concatenate([host(info["centre"]), host(info["half"])[:, None]], -1).astype(np.float64)
    return host(info["label"])


def is_right(logits: torch.Tensor, labels: np.ndarray, rollouts: int) -> np.ndarray:
    """Whether the class probabilities of each block of ``rollouts`` rows, averaged, pick the block's label.

    K heads (``logits`` ``(N, K, n)``): every head's averaged probabilities pick its digit (a sequence is right
    only whole). A point (``labels`` the float centre and half side): the block's mean point lies in the box.
    """
    truth = labels[::rollouts]
    if labels.dtype.kind == "f":
        point = logits.view(-1, rollouts, 2).mean(1).cpu().numpy()
        return (np.abs(point - truth[:, :2]) <= truth[:, 2:]).all(-1)
    probs = logits.softmax(-1).view(-1, rollouts, *logits.shape[1:]).mean(1)
    right = probs.argmax(-1).cpu().numpy() == truth
    return (right.all(-1) if right.ndim > 1 else right).copy()


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
    episodes on ``env_device`` (None: the numpy backend; the scores are the same), in the run's precision."""
    rollouts = rollouts or config.test_rollouts
    envs = make_envs(config, split, EVAL_CHUNK * rollouts, env_device)
    check_fits(model, envs)
    check_data(config, envs, split)
    with autocast(config, device):
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
    """Percent of val images misclassified, scored over ``config.val_rollouts`` rollouts in the run's precision."""
    with autocast(config, device):
        return 100 * (1 - float(evaluate(model, val_envs, config.val_rollouts, device).mean()))
