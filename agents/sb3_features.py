"""Glimpse-aware feature extractors for Stable-Baselines3 policies: one glimpse network, shared by every step.

SB3's ``MlpPolicy`` over the flat glimpse history learns a separate weight for every pixel of every
step, and must learn six times over what a stroke looks like. The extractors here encode each glimpse
with one small network (the RAM's glimpse network: what is seen and where, combined), then combine the
steps taken:

| Extractor                        | observation                                | features                          |
|----------------------------------|--------------------------------------------|-----------------------------------|
| :class:`GlimpseHistoryExtractor` | ``GlimpseHistoryWrapper(flatten=False)``   | the steps taken, pooled; the step |
| :class:`GlimpseStepExtractor`    | ``FlattenObservation`` (glimpse, location) | the current glimpse's code        |

The history's steps are pooled by ``pool="mean_max"`` (the masked mean and max of their codes: order-free)
or ``pool="gru"`` (a GRU's state after the latest glimpse: in order); the step one-hot is appended, and the
previous step's class scores where the observation holds them (``LastScoresWrapper``). An
LSTM policy (``RecurrentPPO``) keeps the earlier glimpses in its own state, so it needs the current one only.

:data:`EXTRACTORS` names them, so that a run's JSON config can choose one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

__all__ = ["GlimpseEncoder", "GlimpseHistoryExtractor", "GlimpseStepExtractor", "EXTRACTORS", "POOLS"]

POOLS = ("mean_max", "gru")


class GlimpseEncoder(nn.Module):
    """One glimpse and its location -> a code: ``relu(W [relu(W_g glimpse), relu(W_l location)])``.

    :param glimpse_size: pixels of one glimpse (``n_patches * p * p``)
    :param hidden: width of the "what" and "where" layers
    :param code: size of the code
    """

    def __init__(self, glimpse_size: int, hidden: int = 128, code: int = 256):
        super().__init__()
        self.what = nn.Sequential(nn.Linear(glimpse_size, hidden), nn.ReLU())
        self.where = nn.Sequential(nn.Linear(2, hidden), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(2 * hidden, code), nn.ReLU())
        self.code = code

    def forward(self, glimpses: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """``glimpses`` ``(..., *glimpse_shape)``, ``locations`` ``(..., 2)`` -> codes ``(..., code)``."""
        lead = locations.shape[:-1]
        g = glimpses.reshape(*lead, -1)
        return self.out(torch.cat([self.what(g), self.where(locations)], dim=-1))


class GlimpseHistoryExtractor(BaseFeaturesExtractor):
    """Features of the glimpse history (``glimpses``, ``locations``, ``step``, and ``scores`` if present): each
    glimpse taken is encoded by one shared :class:`GlimpseEncoder`; the slots not yet filled are left out.

    :param observation_space: :func:`~ram_env.wrappers.history_space` with ``flatten=False``, or that with the
        previous step's scores (:func:`~ram_env.wrappers.last_scores_space`)
    :param hidden: width of the encoder's "what" and "where" layers
    :param code: size of one glimpse's code
    :param pool: ``"mean_max"`` (order-free, plus the step) or ``"gru"`` (in order)
    """

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 128, code: int = 256, pool="mean_max"):
        keys = set(observation_space.spaces) if isinstance(observation_space, gym.spaces.Dict) else set()
        if keys not in ({"glimpses", "locations", "step"}, {"glimpses", "locations", "step", "scores"}):
            raise ValueError(f"expected GlimpseHistoryWrapper(flatten=False)'s Dict space, got {observation_space}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        n_glimpses, *glimpse_shape = observation_space["glimpses"].shape
        n_scores = observation_space["scores"].shape[0] if "scores" in keys else 0
        features = (2 * code if pool == "mean_max" else code) + n_glimpses + n_scores
        super().__init__(observation_space, features)
        self.encoder = GlimpseEncoder(int(np.prod(glimpse_shape)), hidden, code)
        self.pool = pool
        self.gru = nn.GRU(code, code, batch_first=True) if pool == "gru" else None

    def encode(
        self, glimpses: torch.Tensor, locations: torch.Tensor, taken: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The code of every slot, ``(N, n_glimpses, code)``, with the same weights for every slot.

        :param taken: bool ``(N, n_glimpses)``; only these slots are encoded (the others' codes are zero),
            which spares the encoder the empty half of an average history. None: every slot.
        """
        if taken is None:
            return self.encoder(glimpses, locations)
        codes = locations.new_zeros(*taken.shape, self.encoder.code)
        codes[taken] = self.encoder(glimpses[taken], locations[taken])
        return codes

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        step = obs["step"]
        last = step.argmax(dim=1)  # slot of the latest glimpse
        taken = torch.arange(step.shape[1], device=step.device)[None] <= last[:, None]
        codes = self.encode(obs["glimpses"], obs["locations"], taken)
        if self.gru is not None:
            states, _ = self.gru(codes)  # causal: the state at `last` has seen slots 0 .. last only
            pooled = states[torch.arange(len(last), device=last.device), last]
        else:
            mean = codes.sum(dim=1) / taken.sum(dim=1, keepdim=True).to(codes.dtype)
            top = codes.max(dim=1).values  # codes are >= 0 and empty slots 0, so an empty slot never wins
            pooled = torch.cat([mean, top], dim=1)
        return torch.cat([pooled, step, *([obs["scores"]] if "scores" in obs else [])], dim=1)


class GlimpseStepExtractor(BaseFeaturesExtractor):
    """Features of the current glimpse (a flat ``Box``: the glimpse, then its location) for a recurrent
    policy, which keeps the earlier glimpses in its state: the code of one :class:`GlimpseEncoder`.

    :param observation_space: ``FlattenObservation`` of the native observation space
    :param hidden: width of the encoder's "what" and "where" layers
    :param code: size of the code (the features)
    """

    def __init__(self, observation_space: gym.spaces.Box, hidden: int = 128, code: int = 256):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"expected a flat Box (glimpse, then location), got {observation_space}")
        super().__init__(observation_space, code)
        self.encoder = GlimpseEncoder(observation_space.shape[0] - 2, hidden, code)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs[:, :-2], obs[:, -2:])


EXTRACTORS = {"glimpse_history": GlimpseHistoryExtractor, "glimpse_step": GlimpseStepExtractor}
