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
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path} is unreadable or corrupt ({e}); delete it and fetch it again") from None
    magic = 0x800 + ndim
    if len(data) < 4 + 4 * ndim or int.from_bytes(data[:4], "big") != magic:
        raise DatasetError(f"{path} is not an IDX file of {ndim}-d unsigned bytes (bad header); delete it and fetch it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(data) != expected:
        raise DatasetError(f"{path} is truncated or corrupt: {len(data)} bytes, header promises {expected}; delete it and fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_or_download(raw: Path, name: str, stem: str, download: bool) -> Path:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    errors = []
    if download:
        for mirror in _MIRRORS[name]:
            try:
                with urllib.request.urlopen(mirror + stem + ".gz", timeout=10) as response:
                    payload = response.read()
            except OSError as e:
                errors.append(f"{mirror}: {e}")
                continue
            raw.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file first so that a failure never leaves half a file behind.
            with tempfile.NamedTemporaryFile(dir=raw, delete=False) as tmp:
                tmp.write(payload)
            os.replace(tmp.name, raw / f"{stem}.gz")
            return raw / f"{stem}.gz"
    files = ", ".join(f for pair in _FILES.values() for f in pair)
    why = f" Download failed ({'; '.join(errors)})." if errors else ""
    raise DatasetError(
        f"{name}: {stem} not found in {raw}.{why} Put the four files {files} (raw or .gz) in that folder, "
        f"or point --data-dir / RAM_DATA_DIR at the folder that holds {name}/raw/."
    )


@functools.lru_cache(maxsize=None)
def _load_file_pair(name: str, root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    raw = root / name / "raw"
    image_stem, label_stem = _FILES[part]
    images = read_idx(_find_or_download(raw, name, image_stem, download), ndim=3)
    labels = read_idx(_find_or_download(raw, name, label_stem, download), ndim=1)
    if len(images) != len(labels) or labels.max(initial=0) >= N_CLASSES:
        raise DatasetError(f"{raw}: {image_stem} and {label_stem} do not match ({len(images)} images, {len(labels)} labels)")
    return images, labels.astype(np.int64)


def load(name: str = "MNIST", split: str = "train", data_dir=None, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
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
