"""Scoring speed: ``evaluate()`` against the plain loop it replaced, on a shipped checkpoint (default exp3's).

    python bench/bench_evaluate.py [--checkpoint results/exp3] [--images 1000] [--repeats 2] [--threads 2]

(data from ``$RAM_DATA_DIR``, e.g. ``RAM_DATA_DIR=../shared/data``; about a minute for exp3.)

Both score the first ``--images`` test images with the checkpoint's test protocol (10 sampled rollouts an image,
class probabilities averaged), with the same env, weights and noise:

- ``plain``: every rollout reads its own first glimpse, and the convolutional glimpse network flattens its
  channels-last feature map with ``nn.Flatten`` (a copy into ``(C, H, W)`` order) before ``nn.Linear``;
- ``ours``: :func:`agents.training.scoring.evaluate`: the rollouts of an image share one fixed first glimpse, which the
  network reads once, and the feature map is flattened in memory order with the small weight reordered instead.

Rounds run in turns and the best of ``--repeats`` is kept; the two must give the same correct/wrong flags.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

from agents.ram import LinearChannelsLast
from agents.training import run_state, scoring
from agents.training.config import make_envs
from agents.training.policy import BatchPolicy


def plain_network(model):
    """A copy of ``model`` whose "what" pathway uses ``nn.Flatten`` + ``nn.Linear`` (same weights)."""
    model = copy.deepcopy(model)
    layers = list(model.what)
    for i, layer in enumerate(layers):
        if isinstance(layer, LinearChannelsLast):
            linear = nn.Linear(layer.in_features, layer.out_features)
            linear.load_state_dict(layer.state_dict())
            layers[i - 1 : i + 1] = [nn.Flatten(), linear]
            break
    model.what = nn.Sequential(*layers)
    return model


def plain_evaluate(model, envs, rollouts: int, n_images: int) -> np.ndarray:
    """The loop before: every rollout runs the network on its own first glimpse."""
    chunk = envs.num_envs // rollouts
    policy = BatchPolicy(model, sample=True, generator=torch.Generator().manual_seed(0))
    correct = np.zeros(n_images, dtype=bool)
    for start in range(0, n_images, chunk):
        images = np.arange(start, min(start + chunk, n_images))
        obs, _ = envs.reset(options={"indices": np.repeat(np.resize(images, chunk), rollouts)})
        for t in range(envs.unwrapped.config.n_glimpses):
            action, logits = policy.act(obs, first=t == 0)
            obs, _, _, _, info = envs.step(action)
        probs = logits.softmax(-1).view(-1, rollouts, logits.shape[-1]).mean(1)
        correct[images] = (probs.argmax(-1).numpy() == info["label"][::rollouts])[: len(images)]
    return correct


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="results/exp3")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = run_state.load_model(args.checkpoint)
    rollouts = config.test_rollouts
    envs = make_envs(config, "test", scoring.EVAL_CHUNK * rollouts)
    loops = {
        "plain": lambda: plain_evaluate(plain_network(model), envs, rollouts, args.images),
        "ours": lambda: scoring.evaluate(model, envs, rollouts, limit=args.images),
    }
    best, flags = {}, {}
    for _ in range(args.repeats):
        for name, run in loops.items():
            start = time.perf_counter()
            flags[name] = run()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(
        f"{args.checkpoint} ({config.env_id}, {config.model.get('glimpse_net', 'mlp')} glimpse network), "
        f"{args.images} test images x {rollouts} rollouts, {args.threads} torch threads"
    )
    for name, seconds in best.items():
        print(f"  {name:5s} {seconds:6.2f} s   error {100 * (1 - flags[name].mean()):.2f}%")
    print(
        f"  ours is {best['plain'] / best['ours']:.2f}x faster; "
        f"same flags: {np.array_equal(flags['plain'], flags['ours'])}"
    )


if __name__ == "__main__":
    main()
