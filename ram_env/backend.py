"""The array operations of the environment, for numpy and for torch: one description of the task, two libraries.

canvas.py, sensor.py and task.py write their arithmetic once against a backend ``xp`` (``xp.add``,
``xp.take``, ``xp.zeros`` ...). Most operations have the same name and signature in both libraries; a backend
names those, and wraps the handful that differ (dtype arguments, ``out=`` conventions, strided views, random
streams). :data:`NUMPY` is the default; :func:`get_backend` makes the torch one for a device and is the only
place that imports torch.

Arrays live where the backend keeps them (host memory, or the torch device); ``rows``, masks and clocks of the
environment stay host numpy arrays, and :meth:`NumpyBackend.asarray` moves them to the device where they index
device arrays.
"""

from __future__ import annotations

import numpy as np


class NumpyBackend:
    """numpy arrays in host memory: the default backend, and the one of the single env."""

    name = "numpy"
    device = None
    uint8, int16, int32, int64 = np.uint8, np.int16, np.int32, np.int64
    float32, float64, bool = np.float32, np.float64, np.bool_
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    maximum = staticmethod(np.maximum)
    floor = staticmethod(np.floor)
    where = staticmethod(np.where)
    stack = staticmethod(np.stack)

    # ---------------------------------------------------------------------------------------- arrays
    def asarray(self, x, dtype=None):
        return np.asarray(x, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def arange(self, n: int):
        return np.arange(n, dtype=np.int64)

    def astype(self, x, dtype):
        return x.astype(dtype, copy=False)

    def copy(self, x):
        return x.copy()

    def to_numpy(self, x) -> np.ndarray:
        """``x`` as a host numpy array (a view where it already is one)."""
        return np.asarray(x)

    def as_array(self, value):
        """A user's value (an action) as an array of this backend, or None where it is not an array of numbers.

        Arrays of other kinds (strings, objects) come back as they are: the caller rejects them by :meth:`kind`.
        """
        try:
            return value if type(value) is np.ndarray else np.asarray(value)
        except (TypeError, ValueError):
            return None

    def kind(self, x) -> str:
        """numpy's dtype kind letter of an array: ``b`` bool, ``i``/``u`` integers, ``f`` floats, ..."""
        return x.dtype.kind

    # ------------------------------------------------------------------------------------ arithmetic
    def take(self, flat, index, out):
        """``out[...] = flat[index]``: every index is in range by construction, so skip the bounds check.

        numpy's "wrap" mode skips the per-index check of the default "raise" mode and is about twice as fast.
        """
        return np.take(flat, index, mode="wrap", out=out)

    def divide(self, a, b, out):
        """``out = a / b`` computed in float32 (integer ``a`` is cast to float32 first, not to float64)."""
        return np.divide(a, b, out=out, dtype=np.float32)

    def clip_(self, x, lo, hi):
        """Clamp ``x`` to ``[lo, hi]`` in place (two ufuncs: faster than ``np.clip``)."""
        return np.minimum(np.maximum(x, lo, out=x), hi, out=x)

    def windows(self, flat, side: int, h: int, w: int, c: int = 1, plane: int = 0):
        """Every ``c x h x w`` window of a flat buffer of ``c`` planes ``plane`` apart, rows ``side`` long.

        ``windows[k]`` starts at ``flat[k]``. A strided view (no copy); indexing it with an array of start offsets
        copies or writes whole windows at C speed, which is how a batch of images is pasted at a batch of
        positions without a loop.
        """
        n = flat.size - ((c - 1) * plane + (h - 1) * side + w) + 1
        e = flat.strides[0]
        return np.lib.stride_tricks.as_strided(
            flat, shape=(n, c, h, w), strides=(e, plane * e, side * e, e), writeable=flat.flags.writeable
        )

    # --------------------------------------------------------------------------------- random streams
    def generator(self, np_random: np.random.Generator) -> np.random.Generator:
        """The random stream of the episodes: the env's own ``np_random``."""
        return np_random

    def integers(self, rng: np.random.Generator, high: int, size):
        """Uniform int64 in ``[0, high)``."""
        return rng.integers(0, high, size=size)

    def uniform(self, rng: np.random.Generator, size):
        """Uniform float32 in ``[-1, 1)``."""
        return rng.uniform(-1.0, 1.0, size=size).astype(np.float32)


NUMPY = NumpyBackend()


def get_backend(device=None):
    """The backend for ``device``: :data:`NUMPY` for None, else torch tensors on that torch device.

    A device torch cannot use here raises ValueError in one line.
    """
    if device is None:
        return NUMPY
    from ram_env.torch_backend import TorchBackend

    return TorchBackend(device)
