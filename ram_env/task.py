"""The batched task shared by :class:`~ram_env.env.GlimpseEnv` and :class:`~ram_env.vector.GlimpseVectorEnv`.

It owns the task's configuration, the data, the canvases of a batch of episodes and their clocks, and
validates every action, so that the single and the vector environment cannot drift apart.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass, replace

import numpy as np
from gymnasium import spaces

from ram_env import answers, canvas, datasets, objects, sources
from ram_env.backend import NUMPY
from ram_env.sensor import Retina, suited

ANSWERS = ("last_step", "any_step")


DATA_KEYWORDS = ("images", "labels")  # data, not configuration: given to the env, never recorded


@dataclass(frozen=True)
class TaskConfig:
    """Everything that defines a task; keyword names follow the reference implementation's command line.

    Data: ``images=`` (given beside the config: ``dataset="arrays"``), else ``image_folder``, else ``dataset`` by name
    (:mod:`ram_env.sources`). ``None`` glimpse settings are what suits the canvas (:func:`ram_env.sensor.suited`).
    """

    dataset: str | None = "MNIST"
    split: str = "train"
    data_dir: str | None = None
    image_folder: str | None = None  # a folder in torchvision's ImageFolder layout (replaces dataset)
    resize: int | tuple[int, int] | None = None  # every image to this side or (height, width)
    n_classes: int | None = None  # None: from the data
    translated_size: int | tuple[int, int] | None = None  # canvas side or (height, width); None: the image itself
    n_clutter: int = 0
    clutter_size: int = 8
    n_glimpses: int | None = 6
    patch_size: int | None = 8
    n_patches: int | None = 1
    scale: int | None = 2
    start: str = "random"  # first glimpse location: "random" (uniform) or "center"
    answer: str = "last_step"  # when the label counts: "last_step" (step n_glimpses) or "any_step" (a stop action)
    glimpse_cost: float = 0.0  # subtracted from the final reward per glimpse taken; needs answer="any_step"
    n_objects: int = 1  # digits per canvas, placed without overlap; their labels are read in reading order
    digit_size: int | tuple[int, int] | None = None  # side of every image, or a range (lo, hi); None: its own size
    target: str = "label"  # what the answer says: "label" (the K labels), "sum" (their sum), "location" (the centre)

    @classmethod
    def from_kwargs(cls, kwargs: dict, owner: str = "GlimpseEnv.__init__", also: str = "render_mode") -> "TaskConfig":
        """A config from keyword arguments, with a clear error for an unknown one (``gym.make(id, foo=1)``).

        The error opens with Python's own wording, which callers match on: TorchRL's ``GymEnv`` passes
        ``frameskip`` and drops it on "got an unexpected keyword argument 'frameskip'". ``images`` and ``labels``
        (data, not configuration) may be among them: the config then says ``dataset="arrays"``.
        """
        known = cls.__dataclass_fields__
        unknown = [k for k in kwargs if k not in known and k not in DATA_KEYWORDS]
        if unknown:
            more = f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
            raise TypeError(
                f"{owner}() got an unexpected keyword argument {unknown[0]!r}{more}; "
                f"the arguments of a RAM environment are {', '.join([*known, *DATA_KEYWORDS])} and {also}"
            )
        config = {k: v for k, v in kwargs.items() if k in known}
        if kwargs.get("images") is not None and config.get("image_folder") is not None:
            raise ValueError("give images= or image_folder=, not both")
        if kwargs.get("images") is not None or config.get("image_folder") is not None:
            config["dataset"] = "arrays" if kwargs.get("images") is not None else None
        return cls(**config)

    def __post_init__(self):
        for name in ("n_clutter", "clutter_size", "n_glimpses", "patch_size", "n_patches", "scale", "n_classes"):
            if getattr(self, name) is not None or name in ("n_clutter", "clutter_size"):
                canvas.check_int(name, getattr(self, name))
        object.__setattr__(self, "translated_size", canvas.side_or_pair("translated_size", self.translated_size))
        object.__setattr__(self, "resize", canvas.side_or_pair("resize", self.resize))
        for name in ("data_dir", "image_folder"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), (str, os.PathLike)):
                raise TypeError(f"{name} must be a path or None, got {getattr(self, name)!r}")
        if self.image_folder is not None:
            object.__setattr__(self, "image_folder", str(self.image_folder))
        if self.start not in ("random", "center"):
            raise ValueError(f"start must be 'random' or 'center', got {self.start!r}")
        self._check_answer()
        self._check_objects()
        for name in ("n_glimpses", "n_classes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.split not in datasets.SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(datasets.SPLITS)}")
        if self.dataset is None and self.image_folder is None:
            raise ValueError("no data: give images= and labels=, image_folder= or dataset= (e.g. 'CIFAR10')")
        if self.dataset not in (None, "arrays", *sources.NAMED):
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(sources.NAMED)}")
        shape = sources.SHAPES.get(self.dataset) if self.resize is None else canvas.CanvasSpec(self.resize).shape
        if shape is not None and self.image_folder is None:
            self.resolved((1, *shape))  # validates the geometry before any data is read

    def _check_answer(self) -> None:
        if self.answer not in ANSWERS:
            raise ValueError(f"answer must be 'last_step' or 'any_step', got {self.answer!r}")
        cost = self.glimpse_cost
        if isinstance(cost, bool) or not isinstance(cost, (int, float, np.integer, np.floating)):
            raise TypeError(f"glimpse_cost must be a number >= 0, got {cost!r}")
        if not (np.isfinite(cost) and cost >= 0):
            raise ValueError(f"glimpse_cost must be a finite number >= 0, got {cost!r}")
        if cost != 0 and self.answer != "any_step":
            # every last_step episode takes n_glimpses glimpses: a cost would only shift every reward
            raise ValueError(
                f"glimpse_cost={cost!r} needs answer='any_step' (with answer='last_step' every episode "
                "takes n_glimpses glimpses, so a cost would only shift every reward)"
            )

    def _check_objects(self) -> None:
        k = self.n_objects
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_objects must be an integer >= 1 (digits per canvas), got {k!r}")
        size = self.digit_size
        if size is not None:
            pair = isinstance(size, (tuple, list)) and len(size) == 2
            parts = tuple(size) if pair else (size,)
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in parts) or min(parts) < 1:
                raise ValueError(f"digit_size must be a side in px (an integer >= 1) or a range (lo, hi), got {size!r}")
            if pair:
                if parts[0] > parts[1]:
                    raise ValueError(f"digit_size (lo, hi) needs lo <= hi, got {size!r}")
                object.__setattr__(self, "digit_size", (int(parts[0]), int(parts[1])))  # a list from JSON: a tuple
        answers.check_target(self.target, k)

    @property
    def digit_range(self) -> tuple[int, int] | None:
        """The smallest and largest digit side, in px (None: the images' own size)."""
        size = self.digit_size
        if size is None:
            return None
        return (int(size[0]), int(size[1])) if isinstance(size, tuple) else (int(size), int(size))

    def canvas_spec(self, image_shape: tuple[int, int] = (canvas.DIGIT, canvas.DIGIT)) -> canvas.CanvasSpec:
        """The canvas of images ``(h, w)``: the image itself, or ``translated_size``."""
        h, w = image_shape
        size = self.translated_size or (h if h == w else (h, w))
        return canvas.CanvasSpec(size, self.n_clutter, self.clutter_size, self.n_objects, self.digit_range, (h, w))

    def resolved(self, image_shape: tuple[int, int, int]) -> "TaskConfig":
        """This config for images ``(C, H, W)``: the geometry checked, and every ``None`` setting filled in."""
        spec = self.canvas_spec(tuple(image_shape[1:]))
        fill = {k: v for k, v in suited(spec.shape, self.scale or 2).items() if getattr(self, k) is None}
        config = replace(self, **fill) if fill else self
        Retina(spec.shape, config.patch_size, config.n_patches, config.scale)  # validates the geometry
        return config

    def to_dict(self) -> dict:
        return asdict(self)


def _fixed_seed(config: TaskConfig, data: sources.ImageData) -> np.random.SeedSequence:
    """Seed of the val/test layouts: depends on the data, the split and the canvas geometry only.

    The digit tasks keep the key they always had (their name stands for their data), so their episodes stay the same.
    """
    spec = config.canvas_spec(data.shape[1:])
    if config.dataset in sources.MNIST_FAMILY and config.resize is None and isinstance(spec.size, int):
        key = f"{config.dataset}/{config.split}/{spec.size}/{spec.n_clutter}/{spec.clutter_size}"
    else:
        size = "x".join(map(str, spec.shape))
        key = f"{data.fingerprint}/{config.split}/{size}/{spec.n_clutter}/{spec.clutter_size}"
    if spec.several:  # the paper's tasks keep their keys, so their episodes
        lo, hi = spec.digit_range
        key += f"/{spec.n_objects}/{lo}-{hi}"
    return np.random.SeedSequence(zlib.crc32(key.encode()))


class GlimpseTask:
    """Canvases, glimpse locations and clocks of ``num_envs`` episodes, stepped as one batch.

    ``rows`` arguments select episodes by index; ``None`` means all of them (the fast path). The
    ``*_one`` methods are the same operations for a single episode (``num_envs == 1``, numpy) without the
    batch overhead; tests pin that both give the same numbers.

    The data and the episodes (images, labels, canvases, block sums, glimpses, locations, image indices) are
    arrays of the backend ``xp`` (:mod:`ram_env.backend`): numpy by default, torch tensors on a device
    otherwise. The clocks ``t`` stay a host numpy array: which episodes end or restart is known on the host
    without waiting for the device.

    With ``answer="any_step"`` the action gains a ``stop`` flag; an episode that answers keeps its clock
    (``t`` is then the glimpses it took) and is marked ``done`` (host bool) until its next reset.
    """

    def __init__(self, config: TaskConfig, num_envs: int, xp=NUMPY, images=None, labels=None):
        data = sources.of_config(config, images, labels)
        self.data = data
        self.config = config = config.resolved(data.shape)
        self.num_envs = num_envs
        self.xp = xp
        self.images, self.labels = xp.asarray(data.planes), xp.asarray(data.labels)  # uint8 and int64: no float copies
        self.n_images = len(data)
        self.n_classes = data.n_classes
        self.channels = c = data.shape[0]
        self.spec = config.canvas_spec(data.shape[1:])
        self.retina = Retina(self.spec.shape, config.patch_size, config.n_patches, config.scale, xp)
        self.n_glimpses = config.n_glimpses
        self.any_step = config.answer == "any_step"
        self.answer = answers.make(config.target, self.n_classes, config.n_objects, xp)
        self.glimpse_cost = float(config.glimpse_cost)
        # The val and test episodes are fixed: draw every image's layout and random start location once,
        # from a seed of the data and the split, so that every agent, run and library is scored on the same
        # episodes (drawn by numpy for every backend, then moved to the backend's device).
        self.fixed_layout = self.fixed_start = None
        if config.split != "train":
            rng = np.random.default_rng(_fixed_seed(config, data))
            self.fixed_layout = canvas.sample_layout(self.spec, np.arange(self.n_images), self.n_images, rng).to(xp)
            self.fixed_start = xp.asarray(rng.uniform(-1.0, 1.0, size=(self.n_images, 2)).astype(np.float32))

        p, n = config.patch_size, config.n_patches
        self.observation_space = spaces.Dict(
            glimpse=spaces.Box(0.0, 1.0, (n, c, p, p), np.float32),
            location=spaces.Box(-1.0, 1.0, (2,), np.float32),
        )
        action = {"location": spaces.Box(-1.0, 1.0, (2,), np.float32), self.answer.key: self.answer.space}
        if self.any_step:
            action["stop"] = spaces.Discrete(2)
        self.action_space = spaces.Dict(**action)  # keywords keep the order: location, label (or point)[, stop]
        self.action_keys = tuple(action)
        h, w = self.spec.shape
        self.index = xp.zeros(num_envs, xp.int64)
        self._init_truth(num_envs)
        self.sums = self.retina.zeros(num_envs, c)
        self.canvases = xp.zeros((num_envs, c, h, w), xp.uint8)
        self.location = xp.zeros((num_envs, 2), xp.float32)
        self.glimpse = xp.zeros((num_envs, n, c, p, p), xp.float32)
        self.t = np.full(num_envs, -1, dtype=np.int64)  # glimpses taken; -1 before the first reset
        self.done = np.zeros(num_envs, dtype=bool)  # answered: the episode needs a reset

    # ----------------------------------------------------------------------------------------- truth
    def _init_truth(self, n: int) -> None:
        """The truth arrays of ``n`` episodes: what the answer kind (:mod:`ram_env.answers`) pays against.

        ``label``: the true answer of the label kinds (``(N,)``, or ``(N, K)`` for K labels, or the sum), and the
        digit's class for ``target="location"``; ``centre`` ``(N, 2)`` and ``half`` (half a digit's side in
        location units) only for ``target="location"``; ``classes`` ``(N, K)`` where there are several digits.
        ``truth`` is ``centre`` for the location, else ``label``.
        """
        xp, kind = self.xp, self.answer
        self.is_location = isinstance(kind, answers.Location)
        self.label = xp.zeros((n,) + (() if self.is_location else kind.truth_shape), xp.int64)
        several = self.spec.several or type(kind) is not answers.Label
        self.classes = xp.zeros((n, self.config.n_objects), xp.int64) if several else None
        self.centre = xp.zeros((n, 2), xp.float32) if self.is_location else None
        self.half = xp.zeros(n, xp.float64) if self.is_location else None
        self.truth = self.centre if self.is_location else self.label

    def _set_truth(self, at, layout: canvas.Layout, indices) -> None:
        """Fill the truth of the episodes ``at`` (a backend index or a slice) from their layout."""
        xp = self.xp
        if layout.objects is None:  # one digit at its source size: the paper's tasks take the first line only
            if self.classes is None:
                self.label[at] = self.labels[indices]
                return
            side = xp.zeros((len(indices), 1), xp.int64) + self.spec.image_shape[0]
            digits = objects.Objects(indices[:, None], layout.offset[:, None], side)
        else:
            digits = layout.objects
        classes = self.labels[digits.index]
        self.classes[at] = classes
        if self.is_location:
            self.centre[at] = digits.centres(self.spec.size, xp)[:, 0]
            self.half[at] = xp.astype(digits.size[:, 0], xp.float64) / self.spec.size
            self.label[at] = classes[:, 0]
        else:
            self.label[at] = self.answer.truth(classes, None, digits.size)

    def truth_extra(self) -> dict:
        """What :meth:`~ram_env.answers.Label.infos` needs besides the truth: the digits' classes, half their sides."""
        return {"classes": self.classes, "half": self.half}

    def info_one(self, answer) -> dict:
        """The final ``info`` entries of the single episode about its ``answer`` (the truth, and what was right)."""
        to_numpy = self.xp.to_numpy
        extra = {
            "classes": None if self.classes is None else to_numpy(self.classes[0]),
            "half": None if self.half is None else float(self.half[0]),
        }
        return self.answer.info_one(answer, to_numpy(self.truth[0]), extra)

    def frame_truth(self, i: int, answer) -> dict:
        """What a frame of episode ``i`` shows about the truth (``answer``: None while it runs); see render.py."""
        to_numpy = self.xp.to_numpy
        if type(self.answer) is answers.Label:
            return {"label": int(self.label[i])}
        truth = to_numpy(self.truth[i]).copy()
        state = {"label": truth}
        if answer is not None:
            half = None if self.half is None else float(self.half[i])
            state["right"] = self.answer.score_one(answer, truth, half)[1]
            state["text"] = self.answer.text(answer, truth)
        if self.is_location:
            state["centre"], state["point"] = truth, None if answer is None else np.asarray(answer, np.float32)
        return state

    # ----------------------------------------------------------------------------------------- reset
    def check_indices(self, indices, b: int) -> np.ndarray:
        """``indices`` as ``b`` int64 image indices of this split (host numpy), or a ValueError saying what is wrong."""
        arr = self.xp.to_numpy(indices)
        if arr.shape != (b,) or arr.dtype.kind not in "iu":
            raise ValueError(
                f"image indices must be {b} integer{'s' if b > 1 else ''} (one per env reset), got {indices!r}"
            )
        if b and (arr.min() < 0 or arr.max() >= self.n_images):
            bad = arr[(arr < 0) | (arr >= self.n_images)]
            raise ValueError(
                f"image indices must be in [0, {self.n_images}) for split {self.config.split!r}, got {bad.tolist()}"
            )
        return arr.astype(np.int64, copy=False)

    def reset(self, rng, rows: np.ndarray | None = None, indices=None) -> None:
        """Start new episodes in ``rows`` (a host index array; ``None``: all), on random images or on ``indices``.

        ``rng`` is the backend's random stream (:meth:`~ram_env.backend.NumpyBackend.generator`).
        """
        xp = self.xp
        every = rows is None
        b = self.num_envs if every else len(rows)
        if b == 0:
            return
        if indices is None:
            indices = xp.integers(rng, self.n_images, b)
        else:
            indices = xp.asarray(self.check_indices(indices, b))
        if self.fixed_layout is not None:
            layout = self.fixed_layout[indices]
        else:
            layout = canvas.sample_layout(self.spec, indices, self.n_images, rng, xp)
        if self.config.start == "center":
            start = xp.zeros((b, 2), xp.float32)
        elif self.fixed_start is not None:
            start = self.fixed_start[indices]
        else:
            start = xp.uniform(rng, (b, 2))
        if every:
            canvas.draw(self.spec, self.images, layout, out=self.canvases, xp=xp)
            self.retina.block_sums(self.canvases, out=self.sums)
            self.index[:] = indices
            self._set_truth(slice(None), layout, indices)
            self.location[:] = start
            if b == 1 and xp is NUMPY:
                x, y = start[0].tolist()
                self.retina.one(self.sums[0], x, y, out=self.glimpse[0])
            else:
                self.retina(self.sums, start, None, out=self.glimpse)
            self.t[:] = 1
            self.done[:] = False
        else:
            at = xp.asarray(rows)
            drawn = canvas.draw(self.spec, self.images, layout, xp=xp)
            self.canvases[at] = drawn
            self.sums[at] = self.retina.block_sums(drawn)
            self.index[at] = indices
            self._set_truth(at, layout, indices)
            self.location[at] = start
            self.glimpse[at] = self.retina(self.sums, start, at)
            self.t[rows] = 1
            self.done[rows] = False

    # ------------------------------------------------------------------------------------- actions
    def split_action(self, action, name: str) -> tuple:
        """The ``location``, ``label`` and ``stop`` (None without ``answer="any_step"``) entries of an action dict."""
        keys = self.action_keys
        if not isinstance(action, dict) or len(action) != len(keys) or any(k not in action for k in keys):
            got = sorted(map(str, action)) if isinstance(action, dict) else repr(action)
            extra = isinstance(action, dict) and "stop" in action and not self.any_step
            hint = " ('stop' needs answer='any_step')" if extra else ""
            names = ", ".join(map(repr, keys[:-1])) + f" and {keys[-1]!r}"
            raise ValueError(f"{name} must be a dict with exactly the keys {names}, got {got}{hint}")
        return action["location"], action[self.answer.key], action["stop"] if self.any_step else None

    def _check_stop(self, stop) -> np.ndarray:
        """``num_envs`` stop flags (0/1 or bools, any backend) as a host bool array, or a ValueError."""
        xp, n = self.xp, self.num_envs
        arr = xp.as_array(stop)
        if arr is None or xp.kind(arr) not in "biu":
            raise ValueError(
                f"action['stop'] must be 0 (look again) or 1 (answer now), integers or bools, got {stop!r}"
            )
        if tuple(arr.shape) != (n,):
            raise ValueError(f"action['stop'] must have shape {(n,)} (one flag per env), got shape {tuple(arr.shape)}")
        host = xp.to_numpy(arr)  # which episodes end is decided on the host
        bad = (host < 0) | (host > 1)
        if bad.any():
            raise ValueError(
                f"action['stop'] must be 0 (look again) or 1 (answer now), "
                f"got {host[bad].tolist()} in envs {np.flatnonzero(bad).tolist()}"
            )
        return host.astype(bool)

    @staticmethod
    def check_stop_one(stop) -> bool:
        """One stop flag (0, 1, a bool, or a numpy scalar of those) as a bool, or a ValueError."""
        value = stop[()] if isinstance(stop, np.ndarray) and stop.shape == () else stop
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
            return bool(value)
        raise ValueError(f"action['stop'] must be 0 (look again) or 1 (answer now), got {stop!r}")

    def _numbers(self, value, what: str, kinds: str):
        """``value`` as a backend array whose dtype kind is one of ``kinds``, or a ValueError naming ``what``."""
        arr = self.xp.as_array(value)
        if arr is None or self.xp.kind(arr) not in kinds:
            wanted = "numbers" if "f" in kinds else "integers"
            raise ValueError(f"{what} must be {wanted}, got {value!r}")
        return arr

    @staticmethod
    def _location_error(location: np.ndarray, envs: bool) -> ValueError:
        bad = ~np.isfinite(location).all(axis=-1)
        what = "must be finite"
        if not bad.any():
            bad = (np.abs(location) > 1.0).any(axis=-1)
            what = "must lie in [-1, 1] (nothing is clipped)"
        where = f" in env{'s' if bad.sum() > 1 else ''} {np.flatnonzero(bad).tolist()}" if envs else ""
        return ValueError(
            f"action['location'] {what}, got {location[bad].tolist() if envs else location.tolist()}{where}"
        )

    def check_action(self, location, label, stop=None) -> tuple:
        """Validate a batch of ``num_envs`` actions; return them as float32 ``(N, 2)`` and int64 ``(N,)`` arrays,
        and the stop flags as a host bool ``(N,)`` array (None without ``answer="any_step"``).

        The arrays are the backend's (on its device); numpy arrays, torch tensors and lists are accepted.
        """
        xp, n = self.xp, self.num_envs
        location = xp.astype(self._numbers(location, "action['location']", "fiu"), xp.float32)
        if tuple(location.shape) != (n, 2):
            raise ValueError(f"action['location'] must have shape {(n, 2)}, got shape {tuple(location.shape)}")
        if not bool(((location >= -1.0) & (location <= 1.0)).all()):  # also catches NaN
            raise self._location_error(xp.to_numpy(location), envs=True)
        label = self.answer.check(label, n)
        return location, label, self._check_stop(stop) if self.any_step else None

    def check_one(self, location, label) -> tuple[np.ndarray, float, float, int]:
        """Validate one action; return the location as a new float32 ``(2,)`` array and as two floats, and the label."""
        loc = self._numbers(location, "action['location']", "fiu").astype(np.float32)  # always a copy
        if loc.shape != (2,):
            raise ValueError(f"action['location'] must have shape (2,), got shape {loc.shape}")
        x, y = loc.tolist()
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):  # also catches NaN
            raise self._location_error(loc, envs=False)
        return loc, x, y, self.answer.check_one(label)

    # --------------------------------------------------------------------------------------- steps
    def step(self, rows: np.ndarray | None, location, label, stop: np.ndarray | None = None) -> tuple:
        """Advance the episodes in ``rows`` (all running; ``None``: all); return their rewards and terminated flags.

        ``location`` and ``label`` hold one entry per advanced episode (backend arrays), ``stop`` one host bool
        each or None. An episode answers on step ``n_glimpses`` or where it stops; it is paid 1 if right, less
        ``glimpse_cost`` per glimpse taken. The rewards (float64) are a backend array, the terminated flags a
        host numpy bool array.
        """
        xp = self.xp
        t = self.t if rows is None else self.t[rows]
        final = t >= self.n_glimpses
        if stop is not None:
            final |= stop
        if rows is None and not final.any():  # the common step: every episode takes a glimpse
            self.location[:] = location
            self.retina(self.sums, location, None, out=self.glimpse)
            self.t += 1
            return xp.zeros(self.num_envs, xp.float64), final
        if rows is None:
            rows = np.arange(self.num_envs)
        paid = xp.asarray(self.glimpse_cost * t) if self.glimpse_cost else 0.0  # before the clocks move
        looks = xp.asarray(~final)
        look = xp.asarray(rows[~final])
        self.location[look] = location[looks]
        self.glimpse[look] = self.retina(self.sums, location[looks], look)
        self.t[rows[~final]] += 1
        self.done[rows[final]] = True
        at = xp.asarray(rows)
        right, _ = self.answer.score(label, self.truth[at], None if self.half is None else self.half[at])
        return xp.where(xp.asarray(final), right - paid, 0.0), final

    def step_one(self, location: np.ndarray, x: float, y: float, label: int, stop: bool = False) -> tuple[float, bool]:
        """:meth:`step` for the single episode of a ``num_envs == 1`` task, from :meth:`check_one`'s output."""
        t = self.t[0]
        if stop or t >= self.n_glimpses:
            self.done[0] = True
            reward, _ = self.answer.score_one(label, self.truth[0], None if self.half is None else float(self.half[0]))
            return (reward - self.glimpse_cost * int(t) if self.glimpse_cost else reward), True
        self.t[0] = t + 1
        self.location[0] = location
        self.retina.one(self.sums[0], x, y, out=self.glimpse[0])
        return 0.0, False
