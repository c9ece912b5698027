"""A trained RAM agent as a policy over batches of native observations: what scoring plays and recording draws."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.ram import Readout, RecurrentAttentionModel, to_tensor


class BatchPolicy:
    """A trained model as a policy over a batch of native observations (the rendering protocol).

    ``policy(obs, first)`` returns ``dict(location=(N, 2), label=(N,))`` (and ``stop=(N,)`` for a halting
    network); ``first`` starts new episodes. :meth:`act` returns the same action together with the class logits it
    answered from (what scoring needs). Locations are the policy's means (``sample=False``) or Gaussian samples;
    the label is the arg-max, and the stop flag "answer if its probability exceeds 1/2" either way: the stop
    policy's randomness is there to explore in training (its entropy bonus keeps it away from 0 and 1), so
    sampling it at test would only add wrong early answers. The noise is drawn on the CPU (from ``generator``, a
    CPU generator) so that a seeded policy plays the same episodes on any device.
    """

    def __init__(
        self,
        model: RecurrentAttentionModel,
        device="cpu",
        sample: bool = False,
        generator: torch.Generator | None = None,
        tensors: bool = False,
    ):
        self.model, self.device, self.sample, self.generator = model.eval(), device, sample, generator
        self.tensors = tensors  # actions as tensors on ``device`` (for the torch backend), else numpy arrays
        self.state = None
        self.readout: Readout | None = None  # several heads or a point: what each head answered so far
        self.t = 0

    def __call__(self, obs: dict[str, np.ndarray], first: bool) -> dict[str, np.ndarray]:
        return self.act(obs, first)[0]

    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], first: bool, repeats: int = 1
    ) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """The action and the class logits ``(N, n_classes)`` of this step (K heads: ``(N, K, n_classes)``, each
        head's where it read the core; a point head: the point ``(N, 2)``).

        ``repeats > 1`` (with ``first``): the observations come in blocks of ``repeats`` identical rows, such as the
        rollouts of one fixed episode; the network reads each block once, and only the sampled locations differ."""
        glimpse, location = to_tensor(obs, self.device)
        if first or self.state is None:
            glimpse, location = glimpse[::repeats], location[::repeats]
            h, state = self.model(glimpse, location, self.model.initial_state(len(glimpse), self.device))
            h = h.repeat_interleave(repeats, 0)
            self.state = tuple(s.repeat_interleave(repeats, 0) for s in state) if isinstance(state, tuple) else h
            self.t, self.readout = 0, None
        else:
            h, self.state = self.model(glimpse, location, self.state)
            self.t += 1
        policy = self.model.location_policy(h)
        loc = policy.mean
        if self.sample:
            loc = loc + policy.stddev * torch.randn(loc.shape, generator=self.generator).to(self.device)
        config = self.model.config
        if not config.in_sequence:  # the paper's network: one head, read every step
            logits = self.model.classify(h)
            action = {"location": loc.clamp(-1, 1), "label": logits.argmax(-1)}
        else:
            if self.readout is None:
                self.readout = Readout(self.model)
            logits = self.readout.step(self.t, h)
            action = {"location": loc.clamp(-1, 1), "point" if config.point else "label": self.readout.answer()}
        if self.model.config.halting:
            action["stop"] = (self.model.stop_policy(h).probs > 0.5).long()
        return (action if self.tensors else {k: v.cpu().numpy() for k, v in action.items()}), logits


def write_gif(model: RecurrentAttentionModel, config, path: Path) -> None:
    """A 4x4 grid of the model's episodes on the first validation images (``config``: the run's TrainConfig)."""
    from ram_env import recording

    envs = gym.make_vec(
        config.env_id,
        num_envs=16,
        vectorization_mode="vector_entry_point",
        split="val",
        data_dir=config.data_dir,
        render_mode="rgb_array",
        **config.env_kwargs,
    )
    recording.record_gif(envs, BatchPolicy(model.cpu()), path, indices=range(16), max_side=640)
    print(f"wrote {path}")
