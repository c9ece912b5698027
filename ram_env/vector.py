"""GlimpseVectorEnv: ``num_envs`` Recurrent Attention Model episodes stepped as one batch (numpy or torch)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ram_env import canvas
from ram_env.backend import get_backend
from ram_env.env import GlimpseEnv
from ram_env.task import GlimpseTask, TaskConfig


class GlimpseVectorEnv(VectorEnv):
    """A native vector version of :class:`~ram_env.env.GlimpseEnv`: same task, same arguments, same rules.

    ## Spaces

    The single env's with a leading batch axis: observations ``glimpse`` ``(num_envs, n_patches, C, p, p)``
    float32 and ``location`` ``(num_envs, 2)`` float32; actions ``location`` ``(num_envs, 2)`` and ``label``
    ``(num_envs,)``, and with ``answer="any_step"`` ``stop`` ``(num_envs,)`` (0/1 or bools). The spaces are
    Gymnasium's numpy spaces whatever the backend.

    ## Backends

    ``device=None`` (the default) is the numpy backend; ``device="cuda"`` (any torch device, ``"cpu"``
    included) keeps the images, canvases, clutter, block sums and glimpses as torch tensors on that
    device, so that episodes never leave it. torch is imported only when a device is given.

    | What                                   | numpy (`device=None`)          | torch (`device="cuda"`, ...)          |
    |----------------------------------------|--------------------------------|---------------------------------------|
    | `obs["glimpse"]`, `obs["location"]`    | `np.ndarray` float32           | `torch.Tensor` float32 on `device`    |
    | rewards                                | `np.ndarray` float64           | `torch.Tensor` float64 on `device`    |
    | terminations, truncations              | `np.ndarray` bool              | `torch.Tensor` bool on `device`       |
    | `infos[...]` arrays (and their masks)  | `np.ndarray`                   | `torch.Tensor` on `device`            |
    | actions accepted                       | arrays, lists                  | tensors (any device), arrays, lists   |
    | data set held                          | uint8 images in host memory    | uint8 images on `device`              |
    | train episodes drawn from              | `np_random`                    | a torch generator on `device`, seeded |
    |                                        |                                | from `np_random` at `reset(seed=...)` |
    | val/test episodes                      | fixed per image                | the same episodes, the same glimpses  |
    | `options["indices"]`, `["reset_mask"]` | arrays, lists                  | tensors, arrays, lists                |

    Both backends validate every action the same way and reject a bad one with the same message. Train
    episodes under a seed are reproducible on a given device, but differ between backends (two random
    streams); val/test episodes are a function of the image alone, so they are the same everywhere.

    ## Episodes

    With ``answer="last_step"`` (the default) all episodes last exactly ``n_glimpses`` steps, so episodes
    started together end together. With ``answer="any_step"`` an env's episode ends on the step its ``stop``
    is 1 (at the latest on step ``n_glimpses``), so episodes of different lengths share the batch. Rewards are
    the single env's (``correct - glimpse_cost * glimpses`` on the answering step, else 0).
    ``infos["label"]``, ``infos["correct"]`` and ``infos["glimpses"]`` (masked by ``infos["_label"]``,
    ``infos["_correct"]``, ``infos["_glimpses"]``) are set where an episode ended; other answers
    (:mod:`ram_env.answers`) add theirs the same way: ``right`` ``(num_envs, K)`` beside ``label``
    ``(num_envs, K)`` for K labels, ``labels`` for a sum, ``centre``, ``distance`` and ``half`` for the location.

    Autoreset follows Gymnasium's ``NEXT_STEP`` mode: on the step after an env's episode ends, that env
    alone starts a new one (its action is ignored, though validated; reward 0, not terminated, not
    truncated; the observation is the new episode's first, and ``infos["index"]`` says its image), while the
    other envs step as usual. Calling ``reset()`` at any time is also fine, which is what a learner that
    works in whole episodes does. With ``autoreset_mode=AutoresetMode.DISABLED`` (Gymnasium's other mode, the one
    TorchRL prefers) no env restarts by itself: the client resets the ended ones with ``reset_mask``, and stepping
    an env whose episode has ended is an error.

    ``reset(options={"indices": idx})`` puts image ``idx[k]`` in env ``k`` (evaluation: visit a split
    in chunks of ``num_envs``); ``options={"reset_mask": mask}`` resets only the masked envs (with
    ``indices``, one index per masked env, in order). ``infos["index"]`` (masked by ``infos["_index"]``)
    says which image each new or ended episode shows. With ``answer="any_step"`` an evaluation keeps only
    each env's first ending after ``reset(options={"indices": ...})`` (an env that answered early restarts
    on a random image on its next step), or refills ended envs with ``reset_mask`` and the next indices.

    ## Arguments

    :param num_envs: number of episodes in the batch
    :param render_mode: ``"rgb_array"`` returns the frames of all envs tiled in a grid
    :param device: None for numpy arrays, else the torch device of every array (``"cpu"``, ``"cuda"``, ...)
    :param autoreset_mode: ``AutoresetMode.NEXT_STEP`` (the default) or ``AutoresetMode.DISABLED``
    :param kwargs: the task arguments of :class:`~ram_env.env.GlimpseEnv`
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": GlimpseEnv.metadata["render_fps"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        device=None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        # an attribute as well as metadata, as on Gymnasium's own vector envs: clients (TorchRL) read either
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        images, labels = kwargs.pop("images", None), kwargs.pop("labels", None)
        owner, also = "GlimpseVectorEnv.__init__", "num_envs, render_mode, device, autoreset_mode"
        config = TaskConfig.from_kwargs({**kwargs, "images": images}, owner, also)
        self.xp = xp = get_backend(device)
        self.device = xp.device
        self.task = GlimpseTask(config, num_envs, xp, images=images, labels=labels)
        self.config = self.task.config  # with the settings that suit the data filled in
        self.num_envs = num_envs
        self.n_images = self.task.n_images
        self.render_mode = render_mode
        self.single_observation_space = self.task.observation_space
        self.single_action_space = self.task.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rng = self._rng_source = None  # the backend's random stream, and the np_random it was made from
        self._all = np.arange(num_envs)
        kind = self.task.answer
        shape = (num_envs,) + (kind.truth_shape if kind.key == "label" else (2,))
        self._answer = xp.zeros(shape, xp.int64 if kind.key == "label" else xp.float32)  # the last answer given
        self._answered = np.zeros(num_envs, dtype=bool)
        self._history = xp.zeros((num_envs, self.task.n_glimpses, 2), xp.float32)

    def _obs(self) -> dict:
        return {"glimpse": self.xp.copy(self.task.glimpse), "location": self.xp.copy(self.task.location)}

    def _start(self, rows: np.ndarray | None, indices=None) -> None:
        """Start new episodes in ``rows`` (host indices; ``None``: all)."""
        self.task.reset(self._rng, rows, indices)
        at = slice(None) if rows is None else self.xp.asarray(rows)
        self._answered[slice(None) if rows is None else rows] = False
        self._history[at, 0] = self.task.location[at]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        options = options or {}
        unknown = set(options) - {"indices", "reset_mask"}
        if unknown:
            raise ValueError(
                f"unknown reset option{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                "the options are 'indices' and 'reset_mask'"
            )
        rows, mask = None, np.ones(self.num_envs, dtype=bool)
        if options.get("reset_mask") is not None:
            mask = self.xp.to_numpy(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                    f"got {options['reset_mask']!r}"
                )
            mask = mask.copy()
            rows = np.flatnonzero(mask)
        indices = options.get("indices")
        if indices is not None:
            indices = self.task.check_indices(indices, self.num_envs if rows is None else len(rows))
        super().reset(seed=seed)
        if self._rng_source is not self.np_random:  # first reset, a seed (a new np_random), or one set by hand
            self._rng, self._rng_source = self.xp.generator(self.np_random), self.np_random
        self._start(rows, indices)
        return self._obs(), {"index": self.xp.copy(self.task.index), "_index": self.xp.asarray(mask)}

    def get_random_state(self) -> dict[str, Any]:
        """The random streams of the train episodes (``np_random``'s state and, for the torch backend, its generator's),
        for a training run that must resume exactly; :meth:`set_random_state` puts them back."""
        state = {"np_random": self.np_random.bit_generator.state}
        if self.device is not None and self._rng is not None:
            state["generator"] = self._rng.get_state()
        return state

    def set_random_state(self, state: dict[str, Any]) -> None:
        if self._rng_source is not self.np_random:  # made first: making it draws from np_random
            self._rng, self._rng_source = self.xp.generator(self.np_random), self.np_random
        self.np_random.bit_generator.state = state["np_random"]
        if "generator" in state and self.device is not None:  # a run resumed on the other backend goes on inexactly
            self._rng.set_state(state["generator"])

    def step(self, actions: dict):
        task, xp = self.task, self.xp
        if (task.t < 0).any():
            raise RuntimeError("step() called before reset()")
        location, label, stop = task.check_action(*task.split_action(actions, "actions"))
        restart = task.done.copy()  # envs that answered last step; _start clears task.done
        if restart.any() and self.autoreset_mode == AutoresetMode.DISABLED:
            raise RuntimeError(
                f"envs {np.flatnonzero(restart).tolist()} ended their episodes and autoreset_mode is DISABLED: reset "
                "them first with reset(options={'reset_mask': mask})"
            )
        if not restart.any():  # the common case: every env takes its step
            rewards, terminated = task.step(None, location, label, stop)
            self._record(self._all, ~terminated)
        else:  # Gymnasium's NEXT_STEP autoreset: envs that ended last step start anew and ignore their action
            rewards = xp.zeros(self.num_envs, xp.float64)
            terminated = np.zeros(self.num_envs, dtype=bool)
            if restart.all():
                self._start(None)
            else:
                self._start(np.flatnonzero(restart))
                running = np.flatnonzero(~restart)
                at = xp.asarray(running)
                stopped = None if stop is None else stop[running]
                rewards[at], terminated[running] = task.step(running, location[at], label[at], stopped)
                self._record(running, ~terminated[running])
        infos = self._infos(label, restart, terminated)
        truncated = xp.zeros(self.num_envs, xp.bool)
        return self._obs(), rewards, xp.asarray(terminated), truncated, infos

    def _record(self, rows: np.ndarray, looked: np.ndarray) -> None:
        """Add the new locations of the envs ``rows[looked]`` (host arrays) to their histories."""
        rows = rows[looked]
        if len(rows):
            at, t = self.xp.asarray(rows), self.xp.asarray(self.task.t[rows] - 1)
            self._history[at, t] = self.task.location[at]

    def _infos(self, label, restart: np.ndarray, terminated: np.ndarray) -> dict[str, Any]:
        """The step's infos: label, correct and glimpses where an episode ended, index where one ended or began."""
        task, xp = self.task, self.xp
        infos: dict[str, Any] = {}
        if terminated.any():
            ended = xp.asarray(terminated)
            self._answer[ended] = label[ended]
            self._answered |= terminated
            for key, value in task.answer.infos(label, task.truth, task.truth_extra()).items():
                infos[key] = value & ended if key == "correct" else value
                infos["_" + key] = xp.copy(ended)
            infos.update(glimpses=xp.asarray(task.t.copy()), _glimpses=xp.copy(ended))
        if restart.any() or terminated.any():
            infos["index"] = xp.copy(task.index)
            infos["_index"] = xp.asarray(restart | terminated)
        return infos

    def frame_state(self, i: int) -> dict[str, Any]:
        """What the frame of env ``i`` shows (host numpy arrays); see :meth:`GlimpseEnv.frame_state`."""
        task, to_numpy = self.task, self.xp.to_numpy
        t = int(task.t[i])
        answer = None
        if self._answered[i]:
            answer = to_numpy(self._answer[i]).copy()
            answer = int(answer) if answer.shape == () else answer
        return {
            "canvas": canvas.as_image(to_numpy(task.canvases[i])),
            "history": to_numpy(self._history[i, : max(t, 0)]).copy(),
            "glimpse": to_numpy(task.glimpse[i]),
            "t": t,
            "answer": answer,
            **task.frame_truth(i, answer),
        }

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
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        from ram_env import render

        return render.tile(
            [
                render.draw_frame(self.frame_state(i), self.task.retina, self.task.n_glimpses)
                for i in range(self.num_envs)
            ]
        )


def check_autoreset_mode(mode) -> AutoresetMode:
    """``mode`` as an AutoresetMode the vector env plays, or a ValueError naming the two it does."""
    try:
        known = AutoresetMode(mode)
    except ValueError:
        known = None
    if known not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
        raise ValueError(
            f"autoreset_mode must be AutoresetMode.NEXT_STEP (the default) or AutoresetMode.DISABLED, got {mode!r}"
        )
    return known
