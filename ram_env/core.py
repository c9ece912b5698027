"""The batched core shared by :class:`~ram_env.env.GlimpseEnv` and :class:`~ram_env.vector.GlimpseVectorEnv`.

It owns the task's configuration, the data, the canvases of a batch of episodes and their clocks, and
validates every action, so that the single and the vector environment cannot drift apart.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
from gymnasium import spaces

from ram_env import canvas, datasets
from ram_env.sensor import Retina, integral_image


@dataclass(frozen=True)
class TaskConfig:
    """Everything that defines a task; keyword names follow the seed's command line."""

    dataset: str = "MNIST"
    split: str = "train"
    data_dir: str | None = None
    translated_size: int | None = None  # canvas side; None or 28 is the plain 28x28 digit
    n_clutter: int = 0
    clutter_size: int = 8
    n_glimpses: int = 6
    patch_size: int = 8
    n_patches: int = 1
    scale: int = 2
    start: str = "random"  # first glimpse location: "random" (uniform) or "center"

    def __post_init__(self):
        if self.start not in ("random", "center"):
            raise ValueError(f"start must be 'random' or 'center', got {self.start!r}")
        if not isinstance(self.n_glimpses, (int, np.integer)) or self.n_glimpses < 1:
            raise ValueError(f"n_glimpses must be a positive integer, got {self.n_glimpses!r}")
        if self.split not in datasets.SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(datasets.SPLITS)}")
        if self.dataset not in datasets.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(datasets.DATASETS)}")
        self.canvas_spec  # validates the geometry

    @property
    def canvas_spec(self) -> canvas.CanvasSpec:
        return canvas.CanvasSpec(self.translated_size or canvas.DIGIT, self.n_clutter, self.clutter_size)

    def to_dict(self) -> dict:
        return asdict(self)


def _fixed_seed(config: TaskConfig) -> np.random.SeedSequence:
    """Seed of the val/test layouts: depends on the split and the canvas geometry only."""
    spec = config.canvas_spec
    key = f"{config.dataset}/{config.split}/{spec.size}/{spec.n_clutter}/{spec.clutter_size}"
    return np.random.SeedSequence(zlib.crc32(key.encode()))


class GlimpseCore:
    """Canvases, glimpse locations and clocks of ``num_envs`` episodes, stepped as one batch."""

    def __init__(self, config: TaskConfig, num_envs: int):
        self.config = config
        self.num_envs = num_envs
        self.images, self.labels = datasets.load(config.dataset, config.split, config.data_dir)
        self.n_images = len(self.images)
        self.n_classes = datasets.N_CLASSES
        self.spec = config.canvas_spec
        self.retina = Retina(self.spec.size, config.patch_size, config.n_patches, config.scale)
        self.n_glimpses = config.n_glimpses
        # The val and test canvases are fixed: draw every image's layout once, from a seed of the split.
        self.fixed_layout = None
        if config.split != "train":
            rng = np.random.default_rng(_fixed_seed(config))
            self.fixed_layout = canvas.sample_layout(self.spec, np.arange(self.n_images), self.n_images, rng)

        p, n = config.patch_size, config.n_patches
        self.observation_space = spaces.Dict(
            glimpse=spaces.Box(0.0, 1.0, (n, 1, p, p), np.float32),
            location=spaces.Box(-1.0, 1.0, (2,), np.float32),
        )
        self.action_space = spaces.Dict(
            location=spaces.Box(-1.0, 1.0, (2,), np.float32),
            label=spaces.Discrete(self.n_classes),
        )
        s = self.spec.size
        self.index = np.zeros(num_envs, dtype=np.int64)
        self.label = np.zeros(num_envs, dtype=np.int64)
        self.tables = np.zeros((num_envs, s + 1, s + 1), dtype=np.int32)
        self.canvases = np.zeros((num_envs, s, s), dtype=np.uint8)
        self.location = np.zeros((num_envs, 2), dtype=np.float32)
        self.glimpse = np.zeros((num_envs, n, 1, p, p), dtype=np.float32)
        self.t = np.full(num_envs, -1, dtype=np.int64)  # glimpses taken; -1 before the first reset

    def reset(self, rng: np.random.Generator, rows: np.ndarray, indices=None) -> None:
        """Start new episodes in ``rows`` (an index array), on random images or on ``indices``."""
        b = len(rows)
        if indices is None:
            indices = rng.integers(0, self.n_images, size=b)
        else:
            indices = np.asarray(indices)
            if indices.shape != (b,) or not np.issubdtype(indices.dtype, np.integer):
                raise ValueError(f"indices must be {b} integers, got {indices!r}")
            if indices.min(initial=0) < 0 or indices.max(initial=0) >= self.n_images:
                raise ValueError(f"image indices must be in [0, {self.n_images}) for split {self.config.split!r}, got {indices}")
        if self.fixed_layout is not None:
            layout = self.fixed_layout[indices]
        else:
            layout = canvas.sample_layout(self.spec, indices, self.n_images, rng)
        self.canvases[rows] = canvas.draw(self.spec, self.images, layout)
        self.tables[rows] = integral_image(self.canvases[rows])
        self.index[rows] = indices
        self.label[rows] = self.labels[indices]
        if self.config.start == "random":
            self.location[rows] = rng.uniform(-1.0, 1.0, size=(b, 2)).astype(np.float32)
        else:
            self.location[rows] = 0.0
        self.glimpse[rows] = self.retina(self.tables, self.location[rows], rows)
        self.t[rows] = 1

    def check_action(self, location, label) -> tuple[np.ndarray, np.ndarray]:
        """Validate a batch of actions; return them as float32 ``(N, 2)`` and int64 ``(N,)`` arrays."""
        n = self.num_envs
        try:
            location = np.asarray(location, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"action['location'] must be numbers, got {location!r}") from None
        if location.shape != (n, 2):
            raise ValueError(f"action['location'] must have shape {(n, 2) if n > 1 else (2,)}, got {location.shape}")
        if not np.isfinite(location).all():
            raise ValueError(f"action['location'] must be finite, got {location.tolist()}")
        if np.abs(location).max() > 1.0:
            raise ValueError(f"action['location'] must lie in [-1, 1] (no clipping is done), got {location.tolist()}")
        label = np.asarray(label)
        if label.shape != (n,) or not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
            raise ValueError(f"action['label'] must be {'an integer' if n == 1 else f'{n} integers'}, got {label!r}")
        if label.min() < 0 or label.max() >= self.n_classes:
            raise ValueError(f"action['label'] must be a class in [0, {self.n_classes}), got {label.tolist()}")
        return location, label.astype(np.int64)

    def step(self, rows: np.ndarray, location: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the episodes in ``rows`` (all running); return their rewards and terminated flags."""
        final = self.t[rows] >= self.n_glimpses
        look = rows[~final]
        self.location[look] = location[~final]
        self.glimpse[look] = self.retina(self.tables, self.location[look], look)
        self.t[rows] += 1
        reward = np.where(final, (label == self.label[rows]).astype(np.float64), 0.0)
        return reward, final
