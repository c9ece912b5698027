"""GlimpseEnv: one Recurrent Attention Model episode at a time."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ram_env import canvas
from ram_env.task import GlimpseTask, TaskConfig


class GlimpseEnv(gym.Env):
    """
    ## Description

    Classify a digit that you may only see through a small, movable, multi-resolution glimpse, as in
    "Recurrent Models of Visual Attention" (Mnih et al., 2014). Each episode serves one image of an
    MNIST-family dataset on a canvas (plain 28x28, translated on a larger canvas, or cluttered); the
    agent chooses where to look ``n_glimpses - 1`` times, then names the class. The images may come from
    anywhere instead (``RAM/Images-v0``; see Data below): gray or colour, any size and aspect.
    With ``answer="any_step"`` it may instead name the class as soon as it is sure, and pay ``glimpse_cost``
    for every glimpse it took.

    Coordinates: ``(x, y)`` in ``[-1, 1]^2``; ``(-1, -1)`` is the top-left corner of the canvas,
    ``(1, 1)`` the bottom-right, ``(0, 0)`` the centre. Pixels outside the canvas read as 0.

    ## Action Space

    ``Dict(location=Box(-1, 1, (2,), float32), label=Discrete(10))``; with ``answer="any_step"``,
    ``Dict(location=Box(-1, 1, (2,), float32), label=Discrete(10), stop=Discrete(2))``.

    | Key        | Meaning                                                                                  |
    |------------|------------------------------------------------------------------------------------------|
    | `location` | where to take the next glimpse; ignored on the step that answers                         |
    | `label`    | the answer on the step that answers (step ``n_glimpses``, or ``stop=1``); ignored before |
    | `stop`     | only with ``answer="any_step"``: 1 answers now, 0 looks again (at step ``n_glimpses`` the |
    |            | answer is forced whatever ``stop`` says); 0/1 or a bool                                  |

    Other answers (see :mod:`ram_env.answers`): with ``n_objects=K > 1``, ``label`` is
    ``MultiDiscrete([10] * K)``, the K labels in reading order (left to right by the digits' centres, ties top
    to bottom); with ``target="sum"`` it is ``Discrete(9 * K + 1)``, the sum of the K digits; with
    ``target="location"`` the key is ``point``, ``Box(-1, 1, (2,), float32)``, where the digit's centre is.

    Every key is always validated: a missing or extra key, a wrong shape or type, a NaN, a location outside
    ``[-1, 1]`` (nothing is clipped), a label outside the classes or a stop flag other than 0/1 raises
    ``ValueError``.

    ## Observation Space

    ``Dict(glimpse=Box(0, 1, (n_patches, C, patch_size, patch_size), float32), location=Box(-1, 1, (2,), float32))``
    with C = 1 for gray images, 3 for colour ones (red, green, blue).

    | Key        | Meaning                                                                                 |
    |------------|-----------------------------------------------------------------------------------------|
    | `glimpse`  | patch ``i`` covers ``patch_size * scale**i`` canvas pixels, area-averaged to ``patch_size`` |
    | `location` | the location the glimpse was taken at                                                   |

    ## Rewards

    0 on every step but the one that answers, which is paid ``correct - glimpse_cost * glimpses``:

    | Term           | Value                                                                                  |
    |----------------|----------------------------------------------------------------------------------------|
    | `correct`      | 1.0 if ``label`` is the true class, else 0.0; with K labels the fraction right; with   |
    |                | ``target="location"`` ``1 - d / (2 * sqrt(2))``, ``d`` the distance to the centre      |
    | `glimpses`     | glimpses the agent saw: the one of ``reset`` and one per earlier step, so answering on |
    |                | step ``k`` counts ``k`` (the answering step takes none); ``n_glimpses`` when forced    |
    | `glimpse_cost` | the argument, 0 by default: the reward is then ``correct``, as in the paper            |

    ## Starting State

    ``reset`` picks an image (uniformly at random, or ``options={"index": i}``), builds its canvas and
    takes the first glimpse at the start location: uniform in ``[-1, 1]^2`` (``start="random"``) or the
    centre (``start="center"``). On the ``val`` and ``test`` splits the episode of image ``i`` (its
    translation, clutter and random start location) is a pure function of the split and ``i``, so every
    agent, run and library is scored on the same episodes.

    ## Episode End

    The episode terminates on the step that answers: step ``n_glimpses`` (``answer="last_step"``: exactly
    ``n_glimpses`` glimpses), or the first step with ``stop=1`` (``answer="any_step"``). There is no
    truncation. By answer kind the final ``info`` also has ``right`` (which of K labels), ``labels`` (the digits
    of a sum), or ``centre`` and ``distance`` (the location: ``correct`` is then the point inside the digit's box).
    The final ``info`` carries the true ``label``, ``correct`` (bool) and ``glimpses`` (int, as in
    the reward); the steps before it return an empty ``info`` (the glimpses so far are the steps so far). The
    final observation repeats the last glimpse. Stepping after the end, or before ``reset``, raises
    ``RuntimeError``.

    ## Evaluation

    ``reset(options={"index": i})`` for ``i in range(env.unwrapped.n_images)`` visits every image of
    the split exactly once, in order; ``info["index"]`` says which image an episode shows.

    ## Arguments

    | Argument          | Default       | Meaning                                                                    |
    |-------------------|---------------|----------------------------------------------------------------------------|
    | `dataset`         | `"MNIST"`     | `"MNIST"`, `"FashionMNIST"`, `"KMNIST"`, `"CIFAR10"`, `"CIFAR100"`,        |
    |                   |               | `"SVHN"`, `"STL10"` or `"ColourClutteredMNIST"` (see Data)                 |
    | `images`,`labels` | `None`        | the data as arrays or a dataset object instead (see Data)                  |
    | `image_folder`    | `None`        | a folder of images per class instead (see Data)                            |
    | `resize`          | `None`        | every image to this side or `(height, width)`, bilinear                    |
    | `n_classes`       | `None`        | the classes; `None`: from the data                                         |
    | `split`           | `"train"`     | `"train"` (55k), `"val"` (last 5k of the training set), `"test"`           |
    | `data_dir`        | `None`        | folder with `<dataset>/raw/`; else `$RAM_DATA_DIR`, else `./data`          |
    | `translated_size` | `None`        | canvas side (60, 100) or `(height, width)`; `None`: the image itself       |
    | `n_clutter`       | `0`           | clutter pieces cut from other images (needs a canvas larger than the image) |
    | `clutter_size`    | `8`           | side of each clutter piece                                                 |
    | `n_glimpses`      | `6`           | glimpses (and steps) per episode; the most with `answer="any_step"`        |
    | `patch_size`      | `8`           | side of each patch after downscaling                                       |
    | `n_patches`       | `1`           | patches (scales) per glimpse                                               |
    | `scale`           | `2`           | each patch is `scale` times wider than the previous                        |
    | `start`           | `"random"`    | first location: `"random"` or `"center"`                                   |
    | `answer`          | `"last_step"` | `"last_step"`: answer on step `n_glimpses`; `"any_step"`: a `stop` action  |
    | `glimpse_cost`    | `0`           | reward lost per glimpse, a finite number `>= 0`; needs `answer="any_step"` |
    | `n_objects`       | `1`           | digits per canvas, placed without overlap; K labels in reading order       |
    | `digit_size`      | `None`        | digit side in px, or a range `(lo, hi)` drawn per digit (area resampling); |
    |                   |               | `None`: the images' own (28 for the digits)                                |
    | `target`          | `"label"`     | `"label"`, `"sum"` (of the K digits) or `"location"` (the centre)          |
    | `render_mode`     | `None`        | `"human"` or `"rgb_array"`                                                 |

    ``RAM/Images-v0`` sets ``n_glimpses``, ``patch_size``, ``n_patches`` and ``scale`` to ``None``: what suits the
    canvas (:func:`ram_env.sensor.suited`: the paper's settings for 28, 60 and 100 px; 8 px patches, 2 scales and
    6 glimpses for 32x32; 12 px, 3 scales and 8 glimpses for 64x64). The resolved numbers are ``env.config``.

    ## Data

    | Source                | Arguments                                                                          |
    |-----------------------|------------------------------------------------------------------------------------|
    | arrays                | ``images=`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` (or floats in [0, 1]), ``labels=`` |
    |                       | ints ``0..K-1``; the env's split is those arrays (pass val/test arrays with           |
    |                       | ``split="val"``/``"test"``), or dicts ``{"train": x, "val": x, "test": x}`` for all   |
    | a dataset object      | ``images=`` any ``len()``-and-``[i]`` object of ``(image, label)`` (PIL, numpy, tensor) |
    | a torchvision set     | ``dataset="CIFAR10"`` ... in torchvision's layout under ``data_dir``                  |
    | a folder              | ``image_folder=DIR``: ``DIR/<class>/*.png`` (or ``DIR/train/``, ``DIR/test/``)         |

    A named set's val split is the last ``min(5000, n_train // 10)`` training images. The val/test episode of image
    ``i`` is a pure function of the data (a fingerprint of its bytes, ``env.task.data.fingerprint``), the split,
    the canvas and ``i``. Images stay uint8 in memory. See :mod:`ram_env.sources`.

    ``glimpse_cost`` without ``answer="any_step"`` is an error rather than ignored: every such episode takes
    ``n_glimpses`` glimpses, so a cost would only shift every reward, which is not what anyone asking for it
    meant.

    An unknown argument raises ``TypeError``; a value of the wrong type or an impossible geometry (a patch
    larger than the canvas, clutter without translation, a canvas smaller than the image) raises ``ValueError``
    or ``TypeError`` naming it. A missing or corrupt data file raises ``ram_env.datasets.DatasetError``
    naming the folder and the files expected there; so do bad data (images of mixed sizes without ``resize``,
    labels out of range, an empty folder, an image file that cannot be read, a dataset item that is not an
    ``(image, label)`` pair), in one line naming the file or index.

    ```python
    >>> import gymnasium as gym, ram_env
    >>> env = gym.make("RAM/TranslatedMNIST60-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["glimpse"].shape
    (3, 1, 12, 12)

    ```
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if "device" in kwargs:
            raise TypeError(
                "GlimpseEnv.__init__() got an unexpected keyword argument 'device'; device is an argument of the "
                "vector env only (gym.make_vec(id, num_envs, vectorization_mode='vector_entry_point', device=...)); "
                "the single env serves numpy arrays"
            )
        images, labels = kwargs.pop("images", None), kwargs.pop("labels", None)
        self.task = GlimpseTask(TaskConfig.from_kwargs({**kwargs, "images": images}), 1, images=images, labels=labels)
        self.config = self.task.config  # with the settings that suit the data filled in
        self.observation_space = self.task.observation_space
        self.action_space = self.task.action_space
        self.n_images = self.task.n_images
        self.render_mode = render_mode
        self._history: list[np.ndarray] = []  # glimpse locations of this episode, for rendering
        self._answer: int | None = None
        self._renderer = None

    def _obs(self) -> dict[str, np.ndarray]:
        return {"glimpse": self.task.glimpse[0].copy(), "location": self.task.location[0].copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        index = None
        if options:
            unknown = set(options) - {"index"}
            if unknown:
                raise ValueError(
                    f"unknown reset option{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                    "the only option is 'index'"
                )
            index = options.get("index")
            if index is not None:
                if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                    raise ValueError(f"options['index'] must be an integer image index, got {index!r}")
                if not 0 <= index < self.n_images:
                    raise ValueError(
                        f"options['index'] must be in [0, {self.n_images}) for split {self.config.split!r}, got {index}"
                    )
                index = np.array([index], dtype=np.int64)
        super().reset(seed=seed)
        self.task.reset(self.np_random, None, index)
        self._history = [self.task.location[0].copy()]
        self._answer = None
        if self.render_mode == "human":
            self.render()
        return self._obs(), {"index": int(self.task.index[0])}

    def step(self, action: dict):
        task = self.task
        t = task.t[0]
        if t < 0:
            raise RuntimeError("step() called before reset()")
        if task.done[0]:
            raise RuntimeError(
                f"step() called after the episode terminated (it ended on its answer, after {t} glimpses); call reset()"
            )
        location, label, stop = task.split_action(action, "action")
        location, x, y, label = task.check_one(location, label)
        stop = task.any_step and task.check_stop_one(stop)
        reward, terminated = task.step_one(location, x, y, label, stop)
        if terminated:
            self._answer = label
            info: dict[str, Any] = task.info_one(label)
            info.update(index=int(task.index[0]), glimpses=int(task.t[0]))
        else:
            self._history.append(location)
            info = {}
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, False, info

    @property
    def data_name(self) -> str:
        """What the images are: a set (``"CIFAR10"``), ``"folder:<path>"``, ``"arrays"`` or ``"dataset:<class>"``."""
        return self.task.data.name

    @property
    def data_fingerprint(self) -> str:
        """A fingerprint of this split's images and labels (16 hex digits): the val/test episodes are keyed by it."""
        return self.task.data.fingerprint

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' or 'human' to gym.make"
            )
            return None
        from ram_env import window

        if self._renderer is None:
            self._renderer = window.Renderer(
                self.task.retina, self.task.n_glimpses, self.render_mode, self.metadata["render_fps"]
            )
        return self._renderer.draw(self.frame_state())

    @property
    def window_closed(self) -> bool:
        """True once the person closed the ``"human"`` window (close button or Esc): nothing more is shown."""
        return self._renderer is not None and self._renderer.closed

    def frame_state(self) -> "dict[str, Any]":
        """What a frame shows: the canvas, the fixations so far, the glimpse and the answer."""
        return {
            "canvas": canvas.as_image(self.task.canvases[0]),
            "history": np.array(self._history, dtype=np.float32),
            "glimpse": self.task.glimpse[0],
            "t": min(int(self.task.t[0]), self.task.n_glimpses),
            "answer": self._answer,
            **self.task.frame_truth(0, self._answer),
        }

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
