"""GlimpseVectorEnv: ``num_envs`` Recurrent Attention Model episodes stepped as one numpy batch."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ram_env.core import GlimpseCore, TaskConfig
from ram_env.env import GlimpseEnv


class GlimpseVectorEnv(VectorEnv):
    """A native vector version of :class:`~ram_env.env.GlimpseEnv`: same task, same arguments, same rules.

    Observations and actions are the single env's with a leading batch axis: ``glimpse``
    ``(num_envs, n_patches, 1, p, p)``, ``location`` ``(num_envs, 2)``; actions ``location``
    ``(num_envs, 2)`` and ``label`` ``(num_envs,)``. All episodes last exactly ``n_glimpses`` steps, so
    episodes started together end together; ``infos["label"]`` / ``infos["correct"]`` (masked by
    ``infos["_label"]`` / ``infos["_correct"]``) are set where an episode ended.

    Autoreset follows Gymnasium's ``NEXT_STEP`` mode: the step after an episode ends starts a new one
    (reward 0, its action ignored). Calling ``reset()`` at any time is also fine, which is what a
    learner that works in whole episodes does.

    ``reset(options={"indices": idx})`` puts image ``idx[k]`` in env ``k`` (evaluation: visit a split
    in chunks of ``num_envs``); ``options={"reset_mask": mask}`` resets only the masked envs (with
    ``indices``, one index per masked env, in order). ``infos["index"]`` (masked by ``infos["_index"]``)
    says which image each new or ended episode shows.

    :param num_envs: number of episodes in the batch
    :param render_mode: ``"rgb_array"`` returns the frames of all envs tiled in a grid
    :param kwargs: the task arguments of :class:`~ram_env.env.GlimpseEnv`
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": GlimpseEnv.metadata["render_fps"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = TaskConfig.from_kwargs(kwargs)
        self.core = GlimpseCore(self.config, num_envs)
        self.num_envs = num_envs
        self.n_images = self.core.n_images
        self.render_mode = render_mode
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._all = np.arange(num_envs)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._answer = np.full(num_envs, -1, dtype=np.int64)
        self._history = np.zeros((num_envs, self.core.n_glimpses, 2), dtype=np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"glimpse": self.core.glimpse.copy(), "location": self.core.location.copy()}

    def _start(self, rows: np.ndarray | None, indices=None) -> None:
        """Start new episodes in ``rows`` (``None``: all)."""
        self.core.reset(self.np_random, rows, indices)
        sel = slice(None) if rows is None else rows
        self._needs_reset[sel] = False
        self._answer[sel] = -1
        self._history[sel, 0] = self.core.location[sel]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        options = options or {}
        unknown = set(options) - {"indices", "reset_mask"}
        if unknown:
            raise ValueError(
                f"unknown reset option{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; the options are 'indices' and 'reset_mask'"
            )
        rows, mask = None, np.ones(self.num_envs, dtype=bool)
        if options.get("reset_mask") is not None:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {options['reset_mask']!r}"
                )
            mask = mask.copy()
            rows = np.flatnonzero(mask)
        indices = options.get("indices")
        if indices is not None:
            indices = self.core.check_indices(indices, self.num_envs if rows is None else len(rows))
        super().reset(seed=seed)
        self._start(rows, indices)
        return self._obs(), {"index": self.core.index.copy(), "_index": mask}

    def step(self, actions: dict):
        core = self.core
        if (core.t < 0).any():
            raise RuntimeError("step() called before reset()")
        if not isinstance(actions, dict) or len(actions) != 2 or "location" not in actions or "label" not in actions:
            keys = sorted(map(str, actions)) if isinstance(actions, dict) else None
            raise ValueError(
                f"actions must be a dict with exactly the keys 'location' and 'label', got {keys if keys is not None else repr(actions)}"
            )
        location, label = core.check_action(actions["location"], actions["label"])
        restart = self._needs_reset.copy()  # _start clears _needs_reset
        if not restart.any():  # the common case: every env takes its step
            rewards, terminated = core.step(None, location, label)
            t = core.t - 1  # where each new location goes in the history
            looked = ~terminated
            if looked.all():
                self._history[self._all, t] = core.location
            else:
                self._history[self._all[looked], t[looked]] = core.location[looked]
        else:  # Gymnasium's NEXT_STEP autoreset: envs that ended last step start anew and ignore their action
            rewards = np.zeros(self.num_envs)
            terminated = np.zeros(self.num_envs, dtype=bool)
            if restart.all():
                self._start(None)
            else:
                self._start(np.flatnonzero(restart))
                running = np.flatnonzero(~restart)
                rewards[running], terminated[running] = core.step(running, location[running], label[running])
                t = core.t[running] - 1
                looked = t < core.n_glimpses
                self._history[running[looked], t[looked]] = core.location[running[looked]]
        infos: dict[str, Any] = {}
        if terminated.any():
            self._answer[terminated] = label[terminated]
            infos = {
                "label": core.label.copy(),
                "_label": terminated,
                "correct": (label == core.label) & terminated,
                "_correct": terminated,
            }
        if restart.any() or terminated.any():
            infos["index"] = core.index.copy()
            infos["_index"] = restart | terminated
        self._needs_reset = terminated
        return self._obs(), rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def frame_state(self, i: int) -> dict[str, Any]:
        """What the frame of env ``i`` shows; see :meth:`GlimpseEnv.frame_state`."""
        t = int(min(self.core.t[i], self.core.n_glimpses))
        answer = int(self._answer[i])
        return {
            "canvas": self.core.canvases[i],
            "history": self._history[i, : max(t, 0)].copy(),
            "glimpse": self.core.glimpse[i],
            "t": t,
            "answer": None if answer < 0 else answer,
            "label": int(self.core.label[i]),
        }

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        from ram_env import render

        return render.tile(
            [
                render.draw_frame(self.frame_state(i), self.core.retina, self.core.n_glimpses)
                for i in range(self.num_envs)
            ]
        )
