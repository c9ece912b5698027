"""What the final action says, and how it is paid: the task's *answer kind*.

One kind per task, chosen by ``target`` and ``n_objects`` (see :func:`make`):

| kind       | ``target``   | K    | action key | space                       | reward                         |
|------------|--------------|------|------------|-----------------------------|--------------------------------|
| `Label`    | `"label"`    | 1    | `label`    | `Discrete(n)` (the paper's) | 1 if right                     |
| `Labels`   | `"label"`    | >= 2 | `label`    | `MultiDiscrete([n] * K)`    | fraction of the K labels right |
| `Sum`      | `"sum"`      | >= 1 | `label`    | `Discrete(K * (n - 1) + 1)` | 1 if the sum is right          |
| `Location` | `"location"` | 1    | `point`    | `Box(-1, 1, (2,), float32)` | ``1 - d / (2 * sqrt(2))``      |

(K is ``n_objects``, n the classes of the data set.)
The K labels are in *reading order*: by the x of each digit's centre, left to right; two centres with the same x
(possible only for digits one above the other) go top to bottom. The location reward ``1 - d / (2 * sqrt(2))``
uses the Euclidean distance ``d`` between the answered point and the digit's centre in location units (the
canvas spans 2 units a side), so it is 1 when exact, falls linearly, and is 0 only from one corner to the
opposite one; the answer counts as ``correct`` when the point lies in the digit's box (``|dx|, |dy| <= s / S``
for a digit of ``s`` px on an ``S`` px canvas).

A kind owns the answer part of the action space, its validation, the reward, the truth that ``info`` carries
and the text a frame shows at the end. Its batch methods take arrays of the backend ``xp``
(:mod:`ram_env.backend`); the ``*_one`` ones are the single env's.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

TARGETS = ("label", "sum", "location")
FAR = 2.0 * math.sqrt(2.0)  # the longest distance between two locations: corner to opposite corner


def _numbers(xp, value, what: str, kinds: str):
    arr = xp.as_array(value)
    if arr is None or xp.kind(arr) not in kinds:
        wanted = "numbers" if "f" in kinds else "integers"
        raise ValueError(f"{what} must be {wanted}, got {value!r}")
    return arr


class Label:
    """One class (the paper's task): ``Discrete(n_classes)``; the truth is ``(N,)`` int64."""

    key = "label"
    truth_shape: tuple = ()

    def __init__(self, n_classes: int, n_objects: int, xp):
        self.n_classes, self.n_objects, self.xp = n_classes, n_objects, xp
        self.n_answers = n_classes  # classes of the answer (the sum has more than the digits)

    @property
    def space(self):
        return spaces.Discrete(self.n_answers)

    def check(self, value, n: int):
        """``n`` answers as a backend int64 array, or a ValueError naming what is wrong."""
        xp, shape = self.xp, (n,) + self.truth_shape
        label = _numbers(xp, value, "action['label']", "iu")
        if tuple(label.shape) != shape:
            what = "one class per env" if not self.truth_shape else f"{self.n_objects} classes per env"
            raise ValueError(f"action['label'] must have shape {shape} ({what}), got shape {tuple(label.shape)}")
        if bool(label.min() < 0) or bool(label.max() >= self.n_answers):
            host = xp.to_numpy(label).reshape(n, -1)
            bad = ((host < 0) | (host >= self.n_answers)).any(axis=1)
            raise ValueError(
                f"action['label'] must be {self._range()}, "
                f"got {host[bad].squeeze(-1).tolist() if not self.truth_shape else host[bad].tolist()} "
                f"in envs {np.flatnonzero(bad).tolist()}"
            )
        return xp.astype(label, xp.int64)

    def _range(self) -> str:
        return f"a class in [0, {self.n_answers})"

    def check_one(self, label):
        """One answer as a Python int, or a ValueError."""
        if type(label) is not int:
            if isinstance(label, np.integer) or (
                isinstance(label, np.ndarray) and label.shape == () and label.dtype.kind in "iu"
            ):
                label = int(label)
            else:
                raise ValueError(f"action['label'] must be an integer {self._range()[2:]}, got {label!r}")
        if not 0 <= label < self.n_answers:
            raise ValueError(f"action['label'] must be {self._range()}, got {label}")
        return label

    def truth(self, classes, centres, sizes):
        """The true answers from the digits' ``classes`` ``(B, K)``, ``centres`` ``(B, K, 2)`` and ``sizes``."""
        return classes[:, 0]

    def score(self, answer, truth, half=None):
        """Rewards (float64) and whether each answer is right (bool) for a batch of answers and truths.

        ``half``: half the side of each digit in location units (only :class:`Location` uses it).
        """
        right = answer == truth
        return self.xp.astype(right, self.xp.float64), right

    def score_one(self, answer, truth, half=None) -> tuple[float, bool]:
        right = bool(answer == truth)
        return float(right), right

    def infos(self, answer, truth, extra) -> dict:
        """The vector env's ``infos`` entries of ended episodes (before masking): the truth and what was right."""
        return {"label": self.xp.copy(truth), "correct": answer == truth}

    def info_one(self, answer, truth, extra) -> dict:
        return {"label": int(truth), "correct": bool(answer == truth)}

    def text(self, answer, truth) -> str:
        """The answer line of a frame at the end of an episode."""
        return f"answer {int(answer)}   truth {int(truth)}"


class Labels(Label):
    """K classes in reading order: ``MultiDiscrete([n_classes] * K)``; the truth is ``(N, K)`` int64."""

    def __init__(self, n_classes: int, n_objects: int, xp):
        super().__init__(n_classes, n_objects, xp)
        self.truth_shape = (n_objects,)

    @property
    def space(self):
        return spaces.MultiDiscrete([self.n_classes] * self.n_objects)

    def _range(self) -> str:
        return f"{self.n_objects} classes in [0, {self.n_classes})"

    def check_one(self, label):
        arr = np.asarray(label) if not isinstance(label, np.ndarray) else label
        if arr.dtype.kind not in "iu" or arr.shape != self.truth_shape:
            raise ValueError(
                f"action['label'] must be {self.n_objects} integer classes in [0, {self.n_classes}) "
                f"(reading order), got {label!r}"
            )
        if (arr < 0).any() or (arr >= self.n_classes).any():
            raise ValueError(f"action['label'] must be {self._range()}, got {arr.tolist()}")
        return arr.astype(np.int64)

    def truth(self, classes, centres, sizes):
        return self.xp.copy(classes)

    def score(self, answer, truth, half=None):
        each = answer == truth
        return self.xp.astype(each, self.xp.float64).mean(-1), each.all(-1)

    def score_one(self, answer, truth, half=None) -> tuple[float, bool]:
        each = np.asarray(answer) == np.asarray(truth)
        return float(each.mean()), bool(each.all())

    def infos(self, answer, truth, extra) -> dict:
        each = answer == truth
        return {"label": self.xp.copy(truth), "correct": each.all(-1), "right": each}

    def info_one(self, answer, truth, extra) -> dict:
        each = np.asarray(answer) == np.asarray(truth)
        return {"label": np.array(truth, dtype=np.int64), "correct": bool(each.all()), "right": each}

    def text(self, answer, truth) -> str:
        return f"answer {' '.join(map(str, np.asarray(answer).tolist()))}   truth {' '.join(map(str, truth.tolist()))}"


class Sum(Label):
    """The sum of the K digits: ``Discrete(K * (n_classes - 1) + 1)``; the truth is ``(N,)`` int64.

    ``info["labels"]`` carries the K digits (reading order) besides the true sum in ``info["label"]``.
    """

    def __init__(self, n_classes: int, n_objects: int, xp):
        super().__init__(n_classes, n_objects, xp)
        self.n_answers = n_objects * (n_classes - 1) + 1

    def _range(self) -> str:
        return f"a sum in [0, {self.n_answers})"

    def truth(self, classes, centres, sizes):
        return classes.sum(-1)

    def infos(self, answer, truth, extra) -> dict:
        return {"label": self.xp.copy(truth), "correct": answer == truth, "labels": self.xp.copy(extra["classes"])}

    def info_one(self, answer, truth, extra) -> dict:
        return {"label": int(truth), "correct": bool(answer == truth), "labels": np.array(extra["classes"])}


class Location:
    """Where the digit is: ``Box(-1, 1, (2,), float32)``; the truth is its centre ``(N, 2)`` float32."""

    key = "point"
    truth_shape = (2,)

    def __init__(self, n_classes: int, n_objects: int, xp):
        self.n_classes, self.n_objects, self.xp = n_classes, n_objects, xp

    @property
    def space(self):
        return spaces.Box(-1.0, 1.0, (2,), np.float32)

    def check(self, value, n: int):
        xp = self.xp
        point = xp.astype(_numbers(xp, value, "action['point']", "fiu"), xp.float32)
        if tuple(point.shape) != (n, 2):
            raise ValueError(f"action['point'] must have shape {(n, 2)}, got shape {tuple(point.shape)}")
        if not bool(((point >= -1.0) & (point <= 1.0)).all()):  # also catches NaN
            host = xp.to_numpy(point)
            bad = ~((host >= -1.0) & (host <= 1.0)).all(axis=-1)
            raise ValueError(
                f"action['point'] must be finite and lie in [-1, 1] (nothing is clipped), "
                f"got {host[bad].tolist()} in envs {np.flatnonzero(bad).tolist()}"
            )
        return point

    def check_one(self, point):
        arr = _numbers(self.xp, point, "action['point']", "fiu").astype(np.float32)
        if arr.shape != (2,):
            raise ValueError(f"action['point'] must have shape (2,), got shape {arr.shape}")
        if not ((arr >= -1.0) & (arr <= 1.0)).all():
            raise ValueError(
                f"action['point'] must be finite and lie in [-1, 1] (nothing is clipped), got {arr.tolist()}"
            )
        return arr

    def truth(self, classes, centres, sizes):
        return self.xp.copy(centres[:, 0])

    @staticmethod
    def reward(distance):
        """The reward of an answer ``distance`` location units from the centre: 1 when exact, 0 corner to corner."""
        return 1.0 - distance / FAR

    def _measure(self, answer, truth, half):
        xp = self.xp
        delta = xp.astype(answer, xp.float64) - xp.astype(truth, xp.float64)
        distance = (delta * delta).sum(-1) ** 0.5
        inside = (abs(delta) <= xp.astype(half, xp.float64)[:, None]).all(-1)
        return distance, inside

    def score(self, answer, truth, half):
        distance, inside = self._measure(answer, truth, half)
        return self.reward(distance), inside

    def score_one(self, answer, truth, half) -> tuple[float, bool]:
        delta = np.asarray(answer, np.float64) - np.asarray(truth, np.float64)
        distance = float(np.sqrt((delta * delta).sum()))
        return self.reward(distance), bool((np.abs(delta) <= half).all())

    def infos(self, answer, truth, extra) -> dict:
        distance, inside = self._measure(answer, truth, extra["half"])
        return {
            "centre": self.xp.copy(truth),
            "correct": inside,
            "distance": distance,
            "label": self.xp.copy(extra["classes"][:, 0]),
            "half": self.xp.copy(extra["half"]),
        }

    def info_one(self, answer, truth, extra) -> dict:
        reward, inside = self.score_one(answer, truth, extra["half"])
        return {
            "centre": np.array(truth, dtype=np.float32),
            "correct": inside,
            "distance": (1.0 - reward) * FAR,
            "label": int(extra["classes"][0]),
            "half": extra["half"],
        }

    def text(self, answer, truth) -> str:
        delta = np.asarray(answer, np.float64) - np.asarray(truth, np.float64)
        distance = float(np.sqrt((delta * delta).sum()))
        return f"d {distance:.2f}   reward {self.reward(distance):.2f}"


def make(target: str, n_classes: int, n_objects: int, xp):
    """The answer kind of a task (see the module's table)."""
    if target == "location":
        return Location(n_classes, n_objects, xp)
    if target == "sum":
        return Sum(n_classes, n_objects, xp)
    return (Labels if n_objects > 1 else Label)(n_classes, n_objects, xp)


def check_target(target, n_objects) -> None:
    """A ValueError in one line where ``target`` is unknown or does not fit ``n_objects``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, TARGETS))}, got {target!r}")
    if target == "location" and n_objects != 1:
        raise ValueError(f"target='location' finds one digit: it needs n_objects=1, got n_objects={n_objects}")
