"""The torch backend: the environment's arrays as torch tensors on one device; see :mod:`ram_env.backend`.

Every method answers its namesake of :class:`~ram_env.backend.NumpyBackend` with the same numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


class TorchBackend:
    """torch tensors on ``device`` (any torch device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...)."""

    name = "torch"
    uint8, int16, int32, int64, float32, float64, bool = (
        torch.uint8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float32,
        torch.float64,
        torch.bool,
    )
    add = staticmethod(torch.add)
    subtract = staticmethod(torch.subtract)
    maximum = staticmethod(torch.maximum)
    floor = staticmethod(torch.floor)
    where = staticmethod(torch.where)
    stack = staticmethod(torch.stack)

    def __init__(self, device):
        try:
            self.device = torch.device(device)
            torch.empty(1, device=self.device)  # fails here, in one line, where torch cannot use the device
        except (RuntimeError, TypeError, ValueError, AssertionError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"device {device!r} cannot be used by torch here ({reason}); "
                "pass 'cpu', an available 'cuda:N', or no device for numpy arrays"
            ) from None

    # ---------------------------------------------------------------------------------------- arrays
    def asarray(self, x, dtype=None):
        if isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)  # torch refuses numpy's negative strides
            if not x.flags.writeable:  # the data sets are read-only; no tensor made from one is written to
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                    return torch.as_tensor(x, dtype=dtype, device=self.device)
        return torch.as_tensor(x, dtype=dtype, device=self.device)

    def zeros(self, shape, dtype):
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def empty(self, shape, dtype):
        return torch.empty(shape, dtype=dtype, device=self.device)

    def arange(self, n: int):
        return torch.arange(n, dtype=torch.int64, device=self.device)

    def astype(self, x, dtype):
        return x.to(dtype)

    def copy(self, x):
        return x.clone()

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    def as_array(self, value):
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            return None
        if arr.dtype.kind not in "biuf":
            return arr  # not numbers: the caller rejects it by its kind
        return self.asarray(arr)

    def kind(self, x) -> str:
        if isinstance(x, np.ndarray):
            return x.dtype.kind
        if x.dtype == torch.bool:
            return "b"
        if x.dtype.is_floating_point:
            return "f"
        if x.dtype.is_complex:
            return "c"
        return "i" if x.dtype.is_signed else "u"

    # ------------------------------------------------------------------------------------ arithmetic
    def take(self, flat, index, out):
        return torch.take(flat, index, out=out)

    def divide(self, a, b, out):
        return torch.divide(a, b, out=out)  # integers / float32 is computed in float32

    def clip_(self, x, lo, hi):
        return x.clamp_(lo, hi)

    def windows(self, flat, side: int, h: int, w: int, c: int = 1, plane: int = 0):
        n = flat.numel() - ((c - 1) * plane + (h - 1) * side + w) + 1
        return flat.as_strided((n, c, h, w), (1, plane, side, 1))

    # --------------------------------------------------------------------------------- random streams
    def generator(self, np_random: np.random.Generator) -> torch.Generator:
        """A torch generator on the device, seeded from the env's ``np_random`` (so by ``reset(seed=...)``)."""
        return torch.Generator(device=self.device).manual_seed(int(np_random.integers(2**63)))

    def integers(self, rng: torch.Generator, high: int, size):
        size = size if isinstance(size, tuple) else (size,)
        return torch.randint(0, high, size, generator=rng, device=self.device)

    def uniform(self, rng: torch.Generator, size):
        size = size if isinstance(size, tuple) else (size,)
        return torch.rand(size, generator=rng, device=self.device) * 2.0 - 1.0
