"""One batch of training episodes and its loss: REINFORCE with a learned baseline, on the native vector env.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical

from agents import distributed
from agents.ram import Readout, RecurrentAttentionModel, to_tensor
from agents.training.config import AnswerShape, TrainConfig, env_array


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
    kind = AnswerShape(net.config.n_classes, net.config.n_objects, net.config.point)
    readout = Readout(net) if net.config.in_sequence else None  # K heads in sequence, or a point
    no_label = env_array(envs, kind.empty(n, device))
    log_pis, baselines = [], []
    for t in range(n_glimpses):
        h, state = (model if t == 0 else net)(*to_tensor(obs, device), state)
        baselines.append(net.baseline(h))
        if readout is not None:
            readout.step(t, h)
        if t < n_glimpses - 1:
            policy = net.location_policy(h)
            location = sample_locations(policy, device)
            log_pis.append(policy.log_prob(location).sum(-1))
            # The log-probability is of the unclipped sample; the env only accepts [-1, 1].
            action = {"location": env_array(envs, location.clamp(-1, 1)), kind.key: no_label}
        else:
            logits = net.classify(h) if readout is None else readout.logits
            if config.classifier_loss == "hybrid" or kind.point:
                label = logits.argmax(-1) if not kind.point else logits.detach().clamp(-1, 1)
            else:
                answer = Categorical(logits=logits)
                label = sample_labels(answer, device)
                log_pis.append(answer.log_prob(label).view(n, -1).sum(-1))
                label_entropy = answer.entropy().mean()
            action = {"location": env_array(envs, torch.zeros(n, 2, device=device)), kind.key: env_array(envs, label)}
        obs, reward, terminated, _, info = envs.step(action)
    assert terminated.all(), "every episode ends after n_glimpses steps"
    reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
    baselines = torch.stack(baselines)  # (T, N): b_t predicts the final reward from h_t
    advantage = (reward - baselines).detach()
    losses = {
        "reinforce": -(torch.stack(log_pis) * advantage[: len(log_pis)]).sum(0).mean(),
        "baseline": F.mse_loss(baselines, reward.expand_as(baselines)),
    }
    if kind.point:  # the supervised part: the squared distance to the true centre
        centre = torch.as_tensor(info["centre"], device=device)
        losses["action"] = F.mse_loss(logits, centre, reduction="none").sum(-1).mean()
    elif config.classifier_loss == "hybrid":  # K heads: the mean cross-entropy of every head against its digit
        target = torch.as_tensor(info["label"], device=device)
        losses["action"] = F.cross_entropy(logits.reshape(-1, kind.n_classes), target.reshape(-1))
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
    reward, correct = torch.zeros(2, n, device=device)  # replaced (not written in place) as episodes end
    label = torch.zeros_like(alive).long()
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
