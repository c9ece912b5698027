"""Action wrappers: the native ``Dict`` action as one flat ``Box`` or a ``MultiDiscrete``, converted both ways."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Answer(NamedTuple):
    """The answer part of a native action (:mod:`ram_env.answers`): ``blocks`` labels of ``n_classes`` classes
    each (one label, K labels in reading order, or a sum), or (``point``) a location."""

    n_classes: int = 10
    blocks: int = 1
    point: bool = False

    @property
    def size(self) -> int:
        """Entries of a flat action the answer takes: a score per class of each label, or the point's two."""
        return 2 if self.point else self.n_classes * self.blocks


def native_answer(space: spaces.Dict) -> Answer:
    """What a native ``Dict`` action space answers with: ``label`` (``Discrete`` or ``MultiDiscrete``) or ``point``."""
    if "point" in space.spaces:
        return Answer(0, 1, True)
    label = space["label"]
    if isinstance(label, spaces.MultiDiscrete):
        return Answer(int(label.nvec[0]), len(label.nvec))
    return Answer(int(label.n))


def native_spaces(env: gym.Env) -> tuple[spaces.Dict, int, int, bool]:
    """The native action space, number of classes (per label; 0 for a point) and of glimpses of a (wrapped) glimpse
    env, and whether its action has a ``stop`` flag (``answer="any_step"``)."""
    space = env.action_space
    keys = set(space.spaces) if isinstance(space, spaces.Dict) else set()
    if keys - {"stop"} not in ({"location", "label"}, {"location", "point"}):
        raise ValueError(f"expected a glimpse env with a Dict(location, label[, stop]) action space, got {space}")
    config = getattr(env.unwrapped, "config", None)
    if config is None or not hasattr(config, "n_glimpses"):
        raise ValueError(f"expected a ram_env glimpse env (with a TaskConfig), got {env.unwrapped!r}")
    return space, native_answer(space).n_classes, int(config.n_glimpses), "stop" in keys


def one_label(env: gym.Env, what: str) -> None:
    """A ValueError in one line where ``what`` (a wrapper) meets an env that answers K labels or a point."""
    answer = native_answer(env.action_space)
    if answer.blocks > 1 or answer.point:
        said = "a point" if answer.point else f"{answer.blocks} labels"
        raise ValueError(f"{what} is for one label per episode; this env answers {said} (FlatActionWrapper takes them)")


def flat_action_space(n_classes: int, stop: bool = False, answer: Answer | None = None) -> spaces.Box:
    """The action space of :class:`FlatActionWrapper`: two location coordinates, a score per class (``answer``:
    a block of scores per label, or the point's two coordinates), then (with ``stop``, for ``answer="any_step"``)
    the stop entry."""
    size = int(n_classes) if answer is None else answer.size
    return spaces.Box(-1.0, 1.0, (2 + size + int(bool(stop)),), np.float32)


def discrete_action_space(grid: int, n_classes: int, stop: bool = False) -> spaces.MultiDiscrete:
    """The action space of :class:`DiscreteActionWrapper`: lattice column, lattice row, label, then (with
    ``stop``, for ``answer="any_step"``) the stop flag."""
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}")
    return spaces.MultiDiscrete([int(grid), int(grid), int(n_classes)] + ([2] if stop else []))


def _as_float_action(action: Any, size: int) -> np.ndarray:
    try:
        a = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"flat action must be numbers, got {action!r}") from None
    if a.ndim < 1 or a.shape[-1] != size:
        raise ValueError(f"flat action must have shape (..., {size}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"flat action must be finite, got {a.tolist()}")
    if np.abs(a).max() > 1.0:
        raise ValueError(f"flat action must lie in [-1, 1] (no clipping is done), got {a.tolist()}")
    return a


def _scalar(a: np.ndarray):
    return a if a.ndim else a.dtype.type(a)


def _flat_to_native(action: Any, n_classes: int, stop: bool, answer: Answer | None = None) -> dict[str, np.ndarray]:
    answer = answer or Answer(n_classes)
    a = _as_float_action(action, 2 + answer.size + int(stop))
    said = a[..., 2 : 2 + answer.size]
    native = {"location": a[..., :2].copy()}
    if answer.point:
        native["point"] = said.copy()
    elif answer.blocks > 1:  # a block of scores per label
        native["label"] = np.argmax(said.reshape(said.shape[:-1] + (answer.blocks, -1)), axis=-1).astype(np.int64)
    else:
        native["label"] = _scalar(np.argmax(said, axis=-1).astype(np.int64))
    if stop:
        native["stop"] = _scalar((a[..., -1] > 0).astype(np.int64))
    return native


def _discrete_to_native(action: Any, nvec: np.ndarray, stop: bool) -> dict[str, np.ndarray]:
    a = np.asarray(action)
    size = 3 + int(stop)
    if a.ndim < 1 or a.shape[-1] != size or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"discrete action must be integers of shape (..., {size}), got {action!r}")
    if (a < 0).any() or (a >= nvec).any():
        raise ValueError(f"discrete action must lie in [0, {nvec.tolist()}), got {a.tolist()}")
    lattice = np.linspace(-1.0, 1.0, int(nvec[0]), dtype=np.float32)
    native = {"location": lattice[a[..., :2]], "label": _scalar(a[..., 2].astype(np.int64))}
    if stop:
        native["stop"] = _scalar(a[..., 3].astype(np.int64))
    return native


def _check_action_space(space: spaces.Space, stop: bool) -> None:
    size = 3 + int(stop)
    flat = isinstance(space, spaces.Box) and len(space.shape) == 1 and space.shape[0] > size - 1
    discrete = isinstance(space, spaces.MultiDiscrete) and space.shape == (size,) and space.nvec[0] == space.nvec[1]
    if stop and discrete and space.nvec[3] != 2:
        discrete = False
    if not (flat or discrete):
        extra = (" + 1", ", 2") if stop else ("", "")
        raise ValueError(
            f"expected a flat Box(2 + n_classes{extra[0]}) or MultiDiscrete([grid, grid, n_classes{extra[1]}]) "
            f"space (stop={stop}), got {space}"
        )


def to_native_action(action: Any, space: spaces.Space, stop: bool = False, answer: Answer | None = None):
    """The native ``dict(location=(..., 2) float32, label=(...,) int64[, stop=(...,) int64])`` of wrapped action(s).

    :param action: one action of ``space``, or a batch of them (a leading axis)
    :param space: :func:`flat_action_space` (label = arg-max of the scores, first on ties; stop = the last
        entry > 0) or :func:`discrete_action_space` (location = the lattice point)
    :param stop: the space has the stop entry (``answer="any_step"``); the native action then has ``stop``
    :param answer: a flat space's answer part (:func:`native_answer`) where it is not one label: K blocks of
        scores (``label`` then has K entries, the arg-max of each block) or a point (``point``, as given)
    """
    _check_action_space(space, stop)
    if isinstance(space, spaces.Box):
        return _flat_to_native(action, space.shape[0] - 2 - int(stop), stop, answer)
    return _discrete_to_native(action, np.asarray(space.nvec), stop)


def from_native_action(native: dict, space: spaces.Space, stop: bool = False, answer: Answer | None = None):
    """The action of ``space`` for native ``dict(location, label[, stop])`` action(s), optionally batched.

    Flat: the location, then +1 on the label's score and -1 on the others, then (``stop``) +1 to stop and
    -1 to look again, so ``to_native_action(from_native_action(a))`` is ``a``. Discrete: the nearest lattice
    point, the label and (``stop``) the stop flag.
    """
    _check_action_space(space, stop)
    tail = [np.asarray(native["stop"], dtype=np.int64)[..., None]] if stop else []
    if isinstance(space, spaces.Box):
        answer = answer or Answer(space.shape[0] - 2 - int(stop))
        location = np.asarray(native["location"], dtype=np.float32)
        if answer.point:
            said = np.asarray(native["point"], dtype=np.float32)
        else:
            label = np.asarray(native["label"], dtype=np.int64)
            scores = np.full(label.shape + (answer.n_classes,), -1.0, dtype=np.float32)
            np.put_along_axis(scores, label[..., None], 1.0, axis=-1)
            said = scores.reshape(scores.shape[: scores.ndim - 1 - (answer.blocks > 1)] + (answer.size,))
        return np.concatenate([location, said] + [2.0 * t.astype(np.float32) - 1.0 for t in tail], axis=-1)
    label = np.asarray(native["label"], dtype=np.int64)
    grid = int(space.nvec[0])
    location = np.asarray(native["location"], dtype=np.float64)
    index = np.clip(np.rint((location + 1.0) / 2.0 * (grid - 1)), 0, grid - 1).astype(np.int64)
    return np.concatenate([index, label[..., None]] + tail, axis=-1)


def _single_action(wrapper: gym.ActionWrapper, action: Any) -> dict[str, Any]:
    """One native action for the wrapped single env, refusing a batch or a wrong shape in one line."""
    shape = np.shape(action) if isinstance(action, (np.ndarray, list, tuple)) else None
    kind = "flat" if isinstance(wrapper.action_space, spaces.Box) else "discrete"
    if shape is not None and shape != wrapper.action_space.shape:
        raise ValueError(
            f"{type(wrapper).__name__} takes one {kind} action of shape {wrapper.action_space.shape}, got shape {shape}"
            " (a batch of actions goes to a vector env, e.g. through to_native_action)"
        )
    native = to_native_action(action, wrapper.action_space, wrapper.stop, getattr(wrapper, "answer", None))
    key = "point" if "point" in native else "label"
    single = {"location": native["location"], key: native[key] if np.ndim(native[key]) else int(native[key])}
    if wrapper.stop:
        single["stop"] = int(native["stop"])
    return single


class FlatActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """A ``Box`` action for learners with Gaussian policies (PPO, A2C, SAC, ...).

    ## Action Space

    ``Box(-1, 1, (2 + n_classes,), float32)``; with ``answer="any_step"``, ``Box(-1, 1, (3 + n_classes,), float32)``.
    With K labels (``n_objects=K``) the scores are K blocks of ``n_classes``, one per label in reading order (each
    label the arg-max of its block): ``Box(-1, 1, (2 + K * n_classes [+ 1],))``; with ``target="location"`` the two
    entries after the location are the native ``point``: ``Box(-1, 1, (4 [+ 1],))``. A sum is one label of
    ``K * (n_classes - 1) + 1`` classes.

    | Index              | Meaning                                                                  |
    |--------------------|--------------------------------------------------------------------------|
    | `0, 1`             | ``(x, y)`` of the next glimpse, as the native ``location``               |
    | `2 .. 1+n_classes` | one score per class; the native ``label`` is the arg-max (first on ties) |
    | `2+n_classes`      | only with ``answer="any_step"``: the native ``stop`` is 1 where it is > 0 |

    An action outside ``[-1, 1]``, NaN or of the wrong shape (a batch included) raises ``ValueError``
    (nothing is clipped here; SB3 clips its Gaussian samples to the bounds itself before stepping).

    Reversible: ``to_native(from_native(a)) == a`` for every native action ``a`` (``from_native`` puts
    +1 on the label's score and -1 on the others, and +1 to stop, -1 to look again); ``from_native(to_native(f))``
    keeps the location, the arg-max of ``f``'s scores and the sign of its stop entry.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        native, self.n_classes, _, self.stop = native_spaces(env)
        self.answer = native_answer(native)
        self.action_space = flat_action_space(self.n_classes, self.stop, self.answer)

    def to_native(self, action: Any) -> dict[str, np.ndarray]:
        """Flat action(s) -> ``dict(location=(..., 2) float32, label=(...,) int64[, stop=(...,) int64])``."""
        return to_native_action(action, self.action_space, self.stop, self.answer)

    def from_native(self, action: dict) -> np.ndarray:
        """``dict(location, label[, stop])`` (optionally batched) -> the flat action whose arg-max is ``label``."""
        return from_native_action(action, self.action_space, self.stop, self.answer)

    def action(self, action: Any) -> dict[str, Any]:
        return _single_action(self, action)


class DiscreteActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """A ``MultiDiscrete`` action for learners with categorical policies (PPO, A2C, DQN-style, ...).

    ## Action Space

    ``MultiDiscrete([grid, grid, n_classes])``; with ``answer="any_step"``,
    ``MultiDiscrete([grid, grid, n_classes, 2])``

    | Index | Meaning                                                                       |
    |-------|-------------------------------------------------------------------------------|
    | `0`   | column ``i`` of a ``grid x grid`` lattice: ``x = -1 + 2 i / (grid - 1)``       |
    | `1`   | row ``j`` of the lattice: ``y = -1 + 2 j / (grid - 1)``                          |
    | `2`   | the label, as the native ``label``                                              |
    | `3`   | only with ``answer="any_step"``: the native ``stop`` (1 answers now)            |

    With ``grid=7`` the lattice is ``{-1, -2/3, -1/3, 0, 1/3, 2/3, 1}`` on each axis; ``(-1, -1)`` is
    the top-left corner as everywhere in ``ram_env``.

    Reversible: ``from_native(to_native(d)) == d`` for every discrete action ``d``;
    ``from_native`` snaps a native location to the nearest lattice point, so ``to_native(from_native(a))``
    equals ``a`` exactly when its location lies on the lattice.

    :param grid: lattice points per axis (at least 2)
    """

    def __init__(self, env: gym.Env, grid: int = 7):
        gym.utils.RecordConstructorArgs.__init__(self, grid=grid)
        gym.ActionWrapper.__init__(self, env)
        _, self.n_classes, _, self.stop = native_spaces(env)
        one_label(env, "DiscreteActionWrapper")
        self.action_space = discrete_action_space(grid, self.n_classes, self.stop)
        self.grid = int(grid)
        self.lattice = np.linspace(-1.0, 1.0, self.grid, dtype=np.float32)

    def to_native(self, action: Any) -> dict[str, np.ndarray]:
        """``(..., 3[+1])`` integer action(s) -> ``dict(location=(..., 2) float32, label=(...,) int64[, stop])``."""
        return to_native_action(action, self.action_space, self.stop)

    def from_native(self, action: dict) -> np.ndarray:
        """``dict(location, label[, stop])`` (optionally batched) -> the discrete action, nearest lattice point."""
        return from_native_action(action, self.action_space, self.stop)

    def action(self, action: Any) -> dict[str, Any]:
        return _single_action(self, action)
