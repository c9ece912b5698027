"""The Recurrent Attention Model network (Mnih et al., 2014).

One time step: the glimpse network turns (glimpse, location) into a feature ``g_t``; the core network
updates the hidden state ``h_t = f(h_{t-1}, g_t)``; from ``h_t`` the location network proposes the next
location, the classifier the class, and the baseline the expected reward. The location network and the
baseline read ``h_t`` detached, so that neither the REINFORCE term nor the baseline's squared error
moves the core: the core learns from the classification loss (hybrid rule), as in the reference implementation.

Other answers (:mod:`ram_env.answers`): with K digits (``n_objects=K``) the classifier is K heads read out in
sequence, as in the Deep Recurrent Attention Model (Ba, Mnih and Kavukcuoglu, 2015): head ``k`` reads ``h_t`` at
step :func:`readout_steps` ``[k]`` (evenly spread, the last at the last step) while the core keeps running for the
next digit; with ``target="location"`` a point head ``tanh(W h_T)`` answers where the digit is.

On a task with early answers (``answer="any_step"``) the network also has a halting policy (``halting=True``):
a Bernoulli "answer now" head on ``h_t`` and the classifier's confidence, detached like the location network,
trained by REINFORCE alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

# The halting head starts out answering at a step with this probability, so that a new agent looks at about
# every glimpse (as the fixed-budget agent does) and learns to answer earlier only where that pays.
STOP_PROBABILITY = 0.05


@dataclass
class RAMConfig:
    """Shapes and sizes of the network. ``glimpse_shape`` is the observation's ``(n_patches, C, p, p)``."""

    glimpse_shape: tuple[int, ...] = (1, 1, 8, 8)
    n_classes: int = 10
    glimpse_hidden: int = 128  # "what" pathway of the glimpse network
    location_hidden: int = 128  # "where" pathway of the glimpse network
    core_hidden: int = 256  # glimpse feature and recurrent state size
    core: str = "rnn"  # "rnn" (rectifier RNN, as the paper) or "lstm"
    glimpse_net: str = (
        "mlp"  # "what" pathway: "mlp" (one hidden layer, as the paper) or "conv" (two 3x3 convolutions first)
    )
    std: float = 0.15  # standard deviation of the Gaussian location policy
    halting: bool = False  # a stop head (the task's answer="any_step"); set from the env's action space
    n_objects: int = 1  # classifier heads, read out in sequence (K labels); set from the env's action space
    point: bool = False  # a point head (the task's target="location"); set from the env's action space
    summed: int = 0  # target="sum": K digit heads read in sequence, the answer their sum; set from the task
    n_glimpses: int = 0  # the task's: where K heads read the core (readout_steps); set with several heads

    def __post_init__(self):
        self.glimpse_shape = tuple(self.glimpse_shape)
        if self.core not in ("rnn", "lstm"):
            raise ValueError(f"core must be 'rnn' or 'lstm', got {self.core!r}")
        if self.glimpse_net not in ("mlp", "conv"):
            raise ValueError(f"glimpse_net must be 'mlp' or 'conv', got {self.glimpse_net!r}")
        if self.summed and (self.n_classes - 1) % self.summed:
            raise ValueError(
                f"a sum of {self.summed} digits has a multiple of {self.summed} plus 1 classes, not {self.n_classes}"
            )
        if self.heads > 1 and self.n_glimpses < self.heads:
            raise ValueError(f"{self.heads} heads need at least as many glimpses, got n_glimpses={self.n_glimpses}")
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def heads(self) -> int:
        """Classifier heads: one per digit (K labels, or the K digits of a sum), else one."""
        return self.summed or self.n_objects

    @property
    def head_classes(self) -> int:
        """Classes of each head: a digit's for a sum (``K (d - 1) + 1`` sum classes from ``d``), else the answer's."""
        return (self.n_classes - 1) // self.summed + 1 if self.summed else self.n_classes

    @property
    def in_sequence(self) -> bool:
        """The answer is built over the episode (:class:`Readout`): several heads read in turn, or a point."""
        return self.heads > 1 or self.point


class RecurrentAttentionModel(nn.Module):
    """Glimpse network, core RNN, location policy, classifier and baseline (and, with ``halting``, the stop head)."""

    def __init__(self, config: RAMConfig):
        super().__init__()
        self.config = config
        c = config
        self.what = what_pathway(c)
        self.where = nn.Sequential(
            nn.Linear(2, c.location_hidden), nn.ReLU(), nn.Linear(c.location_hidden, c.core_hidden)
        )
        if c.core == "lstm":
            self.core = nn.LSTMCell(c.core_hidden, c.core_hidden)
        else:
            self.core = nn.RNNCell(c.core_hidden, c.core_hidden, nonlinearity="relu")
        self.locator = nn.Linear(c.core_hidden, 2)
        self.classifier = nn.Linear(c.core_hidden, c.heads * c.head_classes)  # K heads side by side
        self.baseliner = nn.Linear(c.core_hidden, 1)
        if c.point:  # made after the paper's layers: a one-label network draws the same initial weights
            self.pointer = nn.Linear(c.core_hidden, 2)
        if c.halting:  # made last and only when asked: a fixed-budget network draws the same initial weights
            self.stopper = nn.Linear(c.core_hidden + 2, 1)
            nn.init.constant_(self.stopper.bias, float(np.log(STOP_PROBABILITY / (1 - STOP_PROBABILITY))))

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu"):
        h = torch.zeros(batch_size, self.config.core_hidden, device=device)
        return (h, torch.zeros_like(h)) if self.config.core == "lstm" else h

    def forward(self, glimpse: torch.Tensor, location: torch.Tensor, state):
        """One time step: returns the new hidden ``h_t`` ``(B, core_hidden)`` and the recurrent state."""
        g = torch.relu(self.what(glimpse) + self.where(location))
        state = self.core(g, state)
        h = state[0] if self.config.core == "lstm" else state
        return h, state

    def location_policy(self, h: torch.Tensor) -> Normal:
        """Gaussian over the next location, its mean in [-1, 1]."""
        return Normal(torch.tanh(float32_head(self.locator, h.detach())), self.config.std, validate_args=False)

    def stop_policy(self, h: torch.Tensor) -> Bernoulli:
        """Bernoulli over "answer now" (1) or "look again" (0); needs ``halting``.

        It reads ``h_t`` and how sure the classifier is (its top log-probability and its entropy): a linear
        read-out of ``h_t`` alone cannot form that confidence, which is what deciding to answer turns on.
        """
        with torch.no_grad():  # the stop head's losses must not move the classifier
            logp = self.classify(h).log_softmax(-1)
            sure = torch.cat([logp.max(-1, keepdim=True).values, -(logp.exp() * logp).sum(-1, keepdim=True)], -1)
        return Bernoulli(
            logits=float32_head(self.stopper, torch.cat([h.detach().float(), sure], -1)).squeeze(-1),
            validate_args=False,
        )

    def baseline(self, h: torch.Tensor) -> torch.Tensor:
        return float32_head(self.baseliner, h.detach()).squeeze(-1)

    def classify(self, h: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Class logits ``(B, n_classes)``; with several heads, head ``k``'s (None: all, ``(B, K, n_classes)``);
        for a sum, the sum's log-probabilities from every head at this step."""
        c = self.config
        if c.heads == 1:
            return float32_head(self.classifier, h)
        logits = self.head_logits(h)
        if c.summed:
            return sum_logits(logits)
        return logits if k is None else logits[:, k]

    def head_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Every head's logits ``(B, heads, head_classes)``."""
        return float32_head(self.classifier, h).view(len(h), self.config.heads, self.config.head_classes)

    def point(self, h: torch.Tensor) -> torch.Tensor:
        """Where the digit is: a location ``(B, 2)`` in [-1, 1] (needs ``point``)."""
        return torch.tanh(float32_head(self.pointer, h))


def sum_logits(digits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``(B, K (d - 1) + 1)`` of the sum of K digits drawn from the heads' ``(B, K, d)`` logits.

    The sum's distribution is the convolution of the digits' (each head read as an independent digit), so a sum
    target trains K digit classifiers through the sum alone: a plain head of ``9K + 1`` classes, which must learn
    the addition as well, stayed at the commonest sum here (results/notes.md).
    """
    logp = digits.log_softmax(-1)
    total, d = logp[:, 0], digits.shape[-1]
    for k in range(1, digits.shape[1]):
        s = total.shape[-1]
        where = torch.arange(s, device=digits.device)[:, None] + torch.arange(d, device=digits.device)  # a + b
        into = where[..., None] == torch.arange(s + d - 1, device=digits.device)  # (s, d, s + d - 1)
        pairs = (total[:, :, None] + logp[:, k, None, :])[..., None]  # log p(so far = a) + log p(digit = b)
        total = pairs.masked_fill(~into, float("-inf")).logsumexp((1, 2))
    return total


def readout_steps(n_glimpses: int, n_objects: int) -> list[int]:
    """The step (0-based) at which each of K heads reads the core: ``ceil((k + 1) * T / K) - 1``, the last at ``T - 1``.

    Evenly spread, so each digit gets about ``T / K`` glimpses before its label is read, as DRAM emits one label
    after each of its fixed number of glimpses per object.
    """
    return [-(-(k + 1) * n_glimpses // n_objects) - 1 for k in range(n_objects)]


class Readout:
    """The answer a fixed-budget network builds over an episode: each head's logits where it reads the core.

    :meth:`step` takes step ``t``'s ``h``; :attr:`logits` is then ``(B, n_classes)`` (one head) or
    ``(B, K, n_classes)`` (K heads: heads not read yet show this step's), the sum's ``(B, n_classes)`` from the
    digit heads so read (a sum), or the point ``(B, 2)``.
    """

    def __init__(self, model: "RecurrentAttentionModel"):
        self.model, self.steps = model, readout_steps(model.config.n_glimpses, model.config.heads)
        self.logits = self.heads = None

    def step(self, t: int, h: torch.Tensor) -> torch.Tensor:
        model = self.model
        config = model.config
        if config.point:
            self.logits = model.point(h)
        elif config.heads == 1:
            self.logits = model.classify(h)
        else:
            now = model.head_logits(h)
            keep = torch.tensor([t > s for s in self.steps], device=h.device)[None, :, None]
            self.heads = now if self.heads is None else torch.where(keep, self.heads, now)
            self.logits = sum_logits(self.heads) if config.summed else self.heads
        return self.logits

    def answer(self) -> torch.Tensor:
        """The action's answer: the labels (arg-max of each head) or the point."""
        return self.logits if self.model.config.point else self.logits.argmax(-1)


def float32_head(layer: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` in float32, also under a bf16 autocast (``--precision bf16``): the heads cost nothing next to the
    glimpse network and the core, and their outputs (class logits, location means, the baseline) are what the losses
    and the sampled actions read, so they keep full precision. Without autocast this is ``layer(h)``."""
    with torch.autocast(h.device.type, enabled=False):
        return layer(h.float())


class StackScales(nn.Module):
    """A glimpse ``(B, n_patches, C, p, p)`` as one ``p x p`` image of ``n_patches * C`` channels.

    The scales are already aligned pixel for pixel around the same centre, so one convolution sees them
    together. The result is channels-last in memory, which makes CPU convolutions about 1.3-1.5x faster.
    """

    def forward(self, glimpse: torch.Tensor) -> torch.Tensor:
        return glimpse.flatten(1, 2).contiguous(memory_format=torch.channels_last)


class FlattenChannelsLast(nn.Module):
    """A channels-last feature map ``(B, C, H, W)`` flattened in memory order ``(H, W, C)``: a view, not a copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


class LinearChannelsLast(nn.Linear):
    """``nn.Linear`` over :class:`FlattenChannelsLast`'s ``(H, W, C)`` order, its weight stored in the ``(C, H, W)``
    order of ``nn.Flatten`` (checkpoints keep their layout). Reordering the small weight on each call is about
    twice as fast as copying the large feature map into ``(C, H, W)`` order."""

    def __init__(self, map_shape: tuple[int, int, int], out_features: int):
        super().__init__(int(np.prod(map_shape)), out_features)
        self.map_shape = map_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.view(-1, *self.map_shape).permute(0, 2, 3, 1).reshape(self.out_features, -1)
        return nn.functional.linear(x, weight, self.bias)


def what_pathway(c: RAMConfig) -> nn.Sequential:
    """The glimpse network's "what" half: a glimpse ``(B, n_patches, C, p, p)`` to ``(B, core_hidden)``."""
    head = [nn.Linear(c.glimpse_hidden, c.core_hidden)]
    if c.glimpse_net == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(c.glimpse_shape)), c.glimpse_hidden), nn.ReLU(), *head)
    n_patches, channels, p, _ = c.glimpse_shape
    half = (p + 1) // 2
    return nn.Sequential(
        StackScales(),
        nn.Conv2d(n_patches * channels, 32, 3, padding=1),
        nn.ReLU(inplace=True),  # in place: the convolutions' outputs are large
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        FlattenChannelsLast(),
        LinearChannelsLast((64, half, half), c.glimpse_hidden),
        nn.ReLU(),
        *head,
    )


def to_tensor(obs: dict[str, np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of observations as (glimpse, location) tensors on ``device``."""
    return torch.as_tensor(obs["glimpse"], device=device), torch.as_tensor(obs["location"], device=device)
