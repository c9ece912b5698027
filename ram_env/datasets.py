"""MNIST, FashionMNIST and KMNIST in torchvision's on-disk layout, loaded once into memory.

Files live in ``<data_dir>/<NAME>/raw/`` as ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
``data_dir`` is the argument, else ``$RAM_DATA_DIR``, else ``./data``. Missing files are downloaded by
torchvision's own dataset classes (their mirrors, their MD5 checksums); reading never needs torchvision.

Splits: ``train`` is the first 55,000 of the 60,000 training images, ``val`` the last 5,000
(fixed, for model selection), ``test`` the 10,000 test images.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import os
import socket
import zlib
from pathlib import Path

import numpy as np

DATASETS = ("MNIST", "FashionMNIST", "KMNIST")
SPLITS = ("train", "val", "test")
N_CLASSES = 10
N_VAL = 5_000

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
            f"{path} is truncated or corrupt: {len(data)} bytes, header promises {expected}; "
            "delete it and fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _existing(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """A default socket timeout while downloading: torchvision's requests have none, and a silent network would hang."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(before or seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _snapshot(raw: Path) -> dict[Path, tuple[int, int]]:
    """Modification time and size of each ``.gz`` in ``raw``: tells which files a download wrote."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in raw.glob("*.gz")} if raw.is_dir() else {}


def _fetch(name: str, root: Path) -> str | None:
    """Download the four files of ``name`` into ``root/name/raw`` through torchvision's dataset class.

    torchvision (``torchvision.datasets.MNIST``, ``FashionMNIST`` or ``KMNIST``) tries its mirrors in turn,
    checks each ``.gz`` against its MD5 and unpacks it beside itself.

    :return: None on success, else why it failed (one line)
    :raises DatasetError: a file this download wrote fails its checksum (naming the file)
    """
    try:
        import torchvision.datasets  # slow to import: only here, when a file is missing
        from torchvision.datasets.utils import check_md5
    except ImportError as e:
        return f"downloading needs torchvision ({e}): pip install torchvision, or the package's 'download' extra"
    dataset_class = getattr(torchvision.datasets, name)
    raw = root / name / "raw"
    before = _snapshot(raw)
    try:
        with _socket_timeout(30):
            dataset_class(str(root), train=False, download=True)
    except (RuntimeError, OSError, http.client.HTTPException) as e:
        after = _snapshot(raw)
        for filename, md5 in dataset_class.resources:
            path = raw / filename
            if path in after and after[path] != before.get(path) and not check_md5(path, md5):
                raise DatasetError(f"{path} fails its MD5 checksum (expected {md5}); delete it and download again")
        return " ".join(str(e).split())
    return None


def _find_pair(root: Path, name: str, part: str, download: bool) -> tuple[Path, Path]:
    """The image and label files of ``part`` in ``root/name/raw``, downloading the dataset if one is missing."""
    raw = root / name / "raw"
    paths = [_existing(raw, stem) for stem in _FILES[part]]
    why = " Downloading is off."
    if None in paths and download:
        failure = _fetch(name, root)
        why = f" Download failed ({failure})." if failure else ""
        paths = [_existing(raw, stem) for stem in _FILES[part]]
    if None not in paths:
        return paths[0], paths[1]
    expected = [f for pair in _FILES.values() for f in pair]
    missing = [f for f in expected if _existing(raw, f) is None]
    raise DatasetError(
        f"{name}: missing {', '.join(missing)} in {raw}.{why} That folder must hold the four files "
        f"{', '.join(expected)} (raw or .gz); put them there, or point --data-dir / RAM_DATA_DIR at the folder "
        f"that holds {name}/raw/."
    )


@functools.lru_cache(maxsize=None)
def _load_file_pair(name: str, root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    image_path, label_path = _find_pair(root, name, part, download)
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
    :param download: fetch missing files through torchvision (their mirrors and MD5 checksums)
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
