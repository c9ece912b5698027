"""GlimpseEnv: one Recurrent Attention Model episode at a time."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ram_env.core import GlimpseCore, TaskConfig


class GlimpseEnv(gym.Env):
    """
    ## Description

    Classify a digit that you may only see through a small, movable, multi-resolution glimpse, as in
    "Recurrent Models of Visual Attention" (Mnih et al., 2014). Each episode serves one image of an
    MNIST-family dataset on a canvas (plain 28x28, translated on a larger canvas, or cluttered); the
    agent chooses where to look ``n_glimpses - 1`` times, then names the class.

    Coordinates: ``(x, y)`` in ``[-1, 1]^2``; ``(-1, -1)`` is the top-left corner of the canvas,
    ``(1, 1)`` the bottom-right, ``(0, 0)`` the centre. Pixels outside the canvas read as 0.

    ## Action Space

    ``Dict(location=Box(-1, 1, (2,), float32), label=Discrete(10))``

    | Key        | Meaning                                                                  |
    |------------|--------------------------------------------------------------------------|
    | `location` | where to take the next glimpse; ignored on the last step                 |
    | `label`    | the answer on the last step (step ``n_glimpses``); ignored before it     |

    Both keys are always validated: a wrong shape or type, a NaN, a location outside ``[-1, 1]``
    (nothing is clipped) or a label outside the classes raises ``ValueError``.

    ## Observation Space

    ``Dict(glimpse=Box(0, 1, (n_patches, 1, patch_size, patch_size), float32), location=Box(-1, 1, (2,), float32))``

    | Key        | Meaning                                                                                 |
    |------------|-----------------------------------------------------------------------------------------|
    | `glimpse`  | patch ``i`` covers ``patch_size * scale**i`` canvas pixels, area-averaged to ``patch_size`` |
    | `location` | the location the glimpse was taken at                                                   |

    ## Rewards

    0 on steps ``1 .. n_glimpses - 1``; on step ``n_glimpses``, 1.0 if ``label`` is the true class, else 0.0.

    ## Starting State

    ``reset`` picks an image (uniformly at random, or ``options={"index": i}``), builds its canvas and
    takes the first glimpse at the start location: uniform in ``[-1, 1]^2`` (``start="random"``) or the
    centre (``start="center"``). On the ``val`` and ``test`` splits the episode of image ``i`` (its
    translation, clutter and random start location) is a pure function of the split and ``i``, so every
    agent, run and library is scored on the same episodes.

    ## Episode End

    The episode terminates on step ``n_glimpses``, so it holds exactly ``n_glimpses`` glimpses. There is
    no truncation. The final ``info`` carries the true ``label`` and ``correct`` (bool); the final
    observation repeats the last glimpse. Stepping after the end, or before ``reset``, raises ``RuntimeError``.

    ## Evaluation

    ``reset(options={"index": i})`` for ``i in range(env.unwrapped.n_images)`` visits every image of
    the split exactly once, in order; ``info["index"]`` says which image an episode shows.

    ## Arguments

    | Argument          | Default    | Meaning                                                         |
    |-------------------|------------|-----------------------------------------------------------------|
    | `dataset`         | `"MNIST"`  | `"MNIST"`, `"FashionMNIST"` or `"KMNIST"`                        |
    | `split`           | `"train"`  | `"train"` (55k), `"val"` (last 5k of the training set), `"test"` |
    | `data_dir`        | `None`     | folder with `<dataset>/raw/`; else `$RAM_DATA_DIR`, else `./data` |
    | `translated_size` | `None`     | canvas side (60, 100); `None` or 28 is the plain digit          |
    | `n_clutter`       | `0`        | clutter pieces (needs `translated_size > 28`)                   |
    | `clutter_size`    | `8`        | side of each clutter piece                                      |
    | `n_glimpses`      | `6`        | glimpses (and steps) per episode                                |
    | `patch_size`      | `8`        | side of each patch after downscaling                            |
    | `n_patches`       | `1`        | patches (scales) per glimpse                                    |
    | `scale`           | `2`        | each patch is `scale` times wider than the previous             |
    | `start`           | `"random"` | first location: `"random"` or `"center"`                        |
    | `render_mode`     | `None`     | `"human"` or `"rgb_array"`                                      |

    An unknown argument raises ``TypeError``; a value of the wrong type or an impossible geometry (a patch
    larger than the canvas, clutter without translation, ``translated_size < 28``) raises ``ValueError``
    or ``TypeError`` naming it. A missing or corrupt data file raises ``ram_env.datasets.DatasetError``
    naming the folder and the files expected there.

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
                "device is an argument of the vector env only (gym.make_vec(id, num_envs, "
                "vectorization_mode='vector_entry_point', device=...)); the single env serves numpy arrays"
            )
        self.config = TaskConfig.from_kwargs(kwargs)
        self.core = GlimpseCore(self.config, num_envs=1)
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.n_images = self.core.n_images
        self.render_mode = render_mode
        self._history: list[np.ndarray] = []  # glimpse locations of this episode, for rendering
        self._answer: int | None = None
        self._renderer = None

    def _obs(self) -> dict[str, np.ndarray]:
        return {"glimpse": self.core.glimpse[0].copy(), "location": self.core.location[0].copy()}

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
        self.core.reset(self.np_random, None, index)
        self._history = [self.core.location[0].copy()]
        self._answer = None
        if self.render_mode == "human":
            self.render()
        return self._obs(), {"index": int(self.core.index[0])}

    def step(self, action: dict):
        core = self.core
        t = core.t[0]
        if t < 0:
            raise RuntimeError("step() called before reset()")
        if t > core.n_glimpses:
            raise RuntimeError(
                f"step() called after the episode terminated (it lasts {core.n_glimpses} steps); call reset()"
            )
        if not isinstance(action, dict) or len(action) != 2 or "location" not in action or "label" not in action:
            keys = sorted(map(str, action)) if isinstance(action, dict) else None
            raise ValueError(
                "action must be a dict with exactly the keys 'location' and 'label', "
                f"got {keys if keys is not None else repr(action)}"
            )
        location, x, y, label = core.check_one(action["location"], action["label"])
        reward, terminated = core.step_one(location, x, y, label)
        if terminated:
            self._answer = label
            info: dict[str, Any] = {"label": int(core.label[0]), "correct": reward > 0.0, "index": int(core.index[0])}
        else:
            self._history.append(location)
            info = {}
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' or 'human' to gym.make"
            )
            return None
        from ram_env import window

        if self._renderer is None:
            self._renderer = window.Renderer(
                self.core.retina, self.core.n_glimpses, self.render_mode, self.metadata["render_fps"]
            )
        return self._renderer.draw(self.frame_state())

    @property
    def window_closed(self) -> bool:
        """True once the person closed the ``"human"`` window (close button or Esc): nothing more is shown."""
        return self._renderer is not None and self._renderer.closed

    def frame_state(self) -> "dict[str, Any]":
        """What a frame shows: the canvas, the fixations so far, the glimpse and the answer."""
        return {
            "canvas": self.core.canvases[0],
            "history": np.array(self._history, dtype=np.float32),
            "glimpse": self.core.glimpse[0],
            "t": min(int(self.core.t[0]), self.core.n_glimpses),
            "answer": self._answer,
            "label": int(self.core.label[0]),
        }

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
