"""MNIST, FashionMNIST and KMNIST in torchvision's on-disk layout, loaded once into memory.

Files live in ``<data_dir>/<NAME>/raw/`` as ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
``data_dir`` is the argument, else ``$RAM_DATA_DIR``, else ``./data``.

Splits: ``train`` is the first 55,000 of the 60,000 training images, ``val`` the last 5,000
(fixed, for model selection), ``test`` the 10,000 test images.
"""

from __future__ import annotations

import functools
import gzip
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

DATASETS = ("MNIST", "FashionMNIST", "KMNIST")
SPLITS = ("train", "val", "test")
N_CLASSES = 10
N_VAL = 5_000

_MIRRORS = {
    "MNIST": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "FashionMNIST": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "KMNIST": ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(RuntimeError):
    """The data folder lacks a file, or holds one that is not a valid IDX file."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$RAM_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("RAM_DATA_DIR") or "data").expanduser().resolve()


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` or raw), checking its header and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path} is unreadable, truncated or corrupt ({e}); delete it and fetch it again") from None
    magic = 0x800 + ndim
    if len(data) < 4 + 4 * ndim or int.from_bytes(data[:4], "big") != magic:
        raise DatasetError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes (bad header); delete it and fetch it again"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(data) != expected:
        raise DatasetError(
            f"{path} is truncated or corrupt: {len(data)} bytes, header promises {expected}; delete it and fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _existing(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _download(raw: Path, stem: str, mirror: str, ndim: int) -> Path:
    """Fetch ``stem.gz`` from a mirror into ``raw``, checked before it takes its final name."""
    with urllib.request.urlopen(mirror + stem + ".gz", timeout=10) as response:
        payload = response.read()
    raw.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and check it first, so that a failure never leaves half a file behind.
    fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{stem}.", suffix=".gz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        read_idx(Path(tmp), ndim)
        os.replace(tmp, raw / f"{stem}.gz")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return raw / f"{stem}.gz"


def _find_or_download(raw: Path, name: str, stem: str, download: bool, ndim: int) -> Path:
    found = _existing(raw, stem)
    if found is not None:
        return found
    errors = []
    if download:
        for mirror in _MIRRORS[name]:
            try:
                return _download(raw, stem, mirror, ndim)
            except (OSError, DatasetError) as e:
                errors.append(f"{mirror}: {e}")
    expected = [f for pair in _FILES.values() for f in pair]
    missing = [f for f in expected if _existing(raw, f) is None]
    why = f" Download failed ({'; '.join(errors)})." if errors else (" Downloading is off." if not download else "")
    raise DatasetError(
        f"{name}: missing {', '.join(missing)} in {raw}.{why} That folder must hold the four files "
        f"{', '.join(expected)} (raw or .gz); put them there, or point --data-dir / RAM_DATA_DIR at the folder "
        f"that holds {name}/raw/."
    )


@functools.lru_cache(maxsize=None)
def _load_file_pair(name: str, root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    raw = root / name / "raw"
    image_stem, label_stem = _FILES[part]
    image_path = _find_or_download(raw, name, image_stem, download, ndim=3)
    label_path = _find_or_download(raw, name, label_stem, download, ndim=1)
    images = read_idx(image_path, ndim=3)
    labels = read_idx(label_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{image_path} holds {images.shape[1]}x{images.shape[2]} images, not 28x28")
    if len(images) != len(labels):
        raise DatasetError(f"{image_path} and {label_path} do not match: {len(images)} images, {len(labels)} labels")
    if labels.max(initial=0) >= N_CLASSES:
        raise DatasetError(
            f"{label_path} holds label {labels.max()}, outside the {N_CLASSES} classes 0..{N_CLASSES - 1}"
        )
    return images, labels.astype(np.int64)


def load(
    name: str = "MNIST", split: str = "train", data_dir=None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split, read once per process.

    :param name: one of ``MNIST``, ``FashionMNIST``, ``KMNIST``
    :param split: ``train`` (first 55,000 training images), ``val`` (last 5,000) or ``test``
    :param data_dir: folder holding ``<name>/raw/``; see :func:`resolve_data_dir`
    :param download: fetch missing files from the dataset's mirrors
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    images, labels = _load_file_pair(name, resolve_data_dir(data_dir), "test" if split == "test" else "train", download)
    if split == "train":
        return images[:-N_VAL], labels[:-N_VAL]
    if split == "val":
        return images[-N_VAL:], labels[-N_VAL:]
    return images, labels
