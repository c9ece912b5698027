"""A training run's configuration and what it builds: the devices, the task's vector envs and a fresh network.

The agent's only way into the task is its native vector env (:func:`make_envs`); the network is shaped by that
env's spaces (:func:`make_model`): the glimpse's shape, the number of classes, and whether it may answer early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

import ram_env  # noqa: F401  (registers the RAM/ ids)
from agents import distributed
from agents.ram import RAMConfig, RecurrentAttentionModel

PRECISIONS = ("fp32", "bf16")
CPUINFO = "/proc/cpuinfo"  # where Linux lists the CPU's instruction sets (bf16_native)


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
    # the network's arithmetic in training and scoring: "fp32", or "bf16" (autocast: matmuls and convolutions in
    # bfloat16; the weights, heads and losses in float32). About 1.6x faster on a CPU with AVX512-BF16 (bench/)
    precision: str = "fp32"
    # the data it was trained on: {"name": ..., "train"/"val"/"test": fingerprint}; filled in when training starts
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.classifier_loss not in ("hybrid", "reinforce"):
            raise ValueError(f"classifier_loss must be 'hybrid' or 'reinforce', got {self.classifier_loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
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


def bf16_native(device: torch.device) -> bool | None:
    """Whether ``device`` does bfloat16 arithmetic in hardware (None: this platform does not say).

    A CUDA GPU says so itself; a CPU has it with AVX512-BF16 or AMX, which Linux lists in /proc/cpuinfo. Without it
    autocast emulates bfloat16, slower than float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return None
    try:
        with open(CPUINFO) as lines:
            flags = next(line for line in lines if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_on(config: TrainConfig, device: torch.device) -> tuple[str, str | None]:
    """The precision the run's network takes on ``device``, and why it is not ``config.precision`` (or None).

    bf16 falls back to fp32 on a device known to lack bfloat16 arithmetic: there it would be slower, not faster.
    """
    if config.precision == "bf16" and bf16_native(device) is False:
        what = "this GPU" if device.type == "cuda" else "this CPU (no AVX512-BF16 or AMX)"
        return "fp32", f"--precision bf16: {what} has no bfloat16 arithmetic, so the network runs in fp32 here"
    return config.precision, None


def autocast(config: TrainConfig, device) -> torch.autocast:
    """The run's precision (``config.precision``) as an autocast context on ``device``: its training step and its
    scoring run under it, so that a bf16 run's val and test errors are those of the network it trains. Scoring keeps
    bf16 even where the device only emulates it: the same figures on every machine, if slower there."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


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


def data_record(config: TrainConfig, envs, val_envs) -> dict[str, str]:
    """What the run trains and is scored on: the data's name and each split's fingerprint (see :func:`check_data`)."""
    test = make_envs(config, "test", 1)
    record = {
        "name": envs.unwrapped.data_name,
        **{s: e.unwrapped.data_fingerprint for s, e in zip(SPLITS, (envs, val_envs, test))},
    }
    test.close()
    return record


SPLITS = ("train", "val", "test")


def check_data(config: TrainConfig, envs, split: str) -> None:
    """The env's split holds the data the run was trained on (runs saved before the record are not checked)."""
    from agents.checkpoint import CheckpointError

    expected = config.data.get(split)
    found = envs.unwrapped.data_fingerprint if expected else None
    if expected and found != expected:
        raise CheckpointError(
            f"this run was trained on {config.data.get('name')} ({split} fingerprint {expected}), but the {split} "
            f"data here is {envs.unwrapped.data_name} (fingerprint {found}); point --data-dir at the data it was "
            "trained on"
        )


def env_array(envs, x: torch.Tensor):
    """An action array as ``envs`` takes it without a copy: the tensor itself for the torch backend, else numpy."""
    return x if envs.unwrapped.device is not None else x.cpu().numpy()


def check_fits(model: RecurrentAttentionModel, envs: gym.vector.VectorEnv) -> None:
    """The network reads the env's glimpses and answers its classes (a checkpoint scored on another task's env)."""
    answer, c = answer_shape(envs.single_action_space), model.config
    one_label = (c.n_objects, c.point, answer.n_objects, answer.point) == (1, False, 1, False)
    if one_label and c.n_classes != answer.n_classes:
        raise ValueError(
            f"the network answers {c.n_classes} classes but the task's action space has {answer.n_classes} "
            "labels: score it on the task it was trained on"
        )
    if (c.n_classes, c.n_objects, c.point) != (answer.n_classes, answer.n_objects, answer.point):
        said = "a point" if c.point else f"{c.n_objects} label(s) of {c.n_classes} classes"
        asked = "a point" if answer.point else f"{answer.n_objects} label(s) of {answer.n_classes} classes"
        raise ValueError(f"the network answers {said} but the task asks for {asked}: score it on its own task")


def make_model(config: TrainConfig, envs: gym.vector.VectorEnv) -> RecurrentAttentionModel:
    """A fresh network shaped by the env's spaces."""
    shape = envs.single_observation_space["glimpse"].shape
    space = envs.single_action_space
    halting = "stop" in space.spaces  # the task's answer="any_step"
    answer = answer_shape(space)
    task = envs.unwrapped.config
    summed = task.n_objects if task.target == "sum" else 0
    if halting and (answer.n_objects > 1 or answer.point or summed > 1):
        raise ValueError(
            "early answers (answer='any_step') are for one label: the RAM agent has no stop head for K labels, "
            "a sum or a point; use answer='last_step'"
        )
    if answer.point and config.classifier_loss != "hybrid":
        raise ValueError(
            "target='location' trains the point head on the true centre (the hybrid rule): use classifier_loss='hybrid'"
        )
    n_glimpses = task.n_glimpses if answer.n_objects > 1 or summed > 1 else 0
    return RecurrentAttentionModel(
        RAMConfig(
            glimpse_shape=shape,
            n_classes=answer.n_classes,
            halting=halting,
            n_objects=answer.n_objects,
            point=answer.point,
            summed=summed,
            n_glimpses=n_glimpses,
            **config.model,
        )
    )


@dataclass
class AnswerShape:
    """What the final action says, read from the env's action space (ram_env.answers): classes, heads, a point."""

    n_classes: int
    n_objects: int = 1
    point: bool = False

    @property
    def key(self) -> str:
        return "point" if self.point else "label"

    def empty(self, n: int, device) -> torch.Tensor:
        """The answer part of an action that does not answer (every step but the last)."""
        if self.point:
            return torch.zeros(n, 2, device=device)
        return torch.zeros((n, self.n_objects) if self.n_objects > 1 else n, dtype=torch.int64, device=device)


def answer_shape(space) -> AnswerShape:
    """One label (``Discrete``), K labels (``MultiDiscrete``) or a point (``point``) in a Dict action space."""
    if "point" in space.spaces:
        return AnswerShape(n_classes=1, point=True)
    label = space["label"]
    if hasattr(label, "nvec"):
        return AnswerShape(n_classes=int(label.nvec[0]), n_objects=len(label.nvec))
    return AnswerShape(n_classes=int(label.n))
