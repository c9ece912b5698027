"""Where images come from: arrays, a torchvision dataset by name, a folder of images per class, any dataset object.

Every source gives an :class:`ImageData`: uint8 images (``images`` is ``(N, H, W, C)``, C = 1 or 3; held
channel-first, ``planes`` ``(N, C, H, W)``, which is what canvases are drawn from), int64 labels ``0..K-1``, the
number of classes K and a fingerprint of the bytes. The fingerprint keys the fixed val/test episodes and is what a
run folder records, so that two runs on the same data score on the same episodes and a checkpoint refuses other data.

| Source                          | How                                                                            |
|---------------------------------|--------------------------------------------------------------------------------|
| arrays                          | ``images=`` uint8 ``(N, H, W)`` / ``(N, H, W, C)`` or float in [0, 1];          |
|                                 | ``labels=`` ints 0..K-1; one split, or ``{"train": x, "val": x, "test": x}``    |
|                                 | for both (with labels of the same form)                                         |
| a dataset object                | ``images=`` anything with ``len()`` and ``[i] -> (image, label)`` (PIL, numpy   |
|                                 | or a ``ToTensor`` tensor), e.g. a torchvision dataset; ``labels=None``          |
| a torchvision dataset by name   | ``dataset=`` one of :data:`NAMED`, in torchvision's layout under ``data_dir``   |
|                                 | (``$RAM_DATA_DIR``, ``./data``); downloaded where a network exists              |
| a folder (ImageFolder layout)   | ``image_folder=DIR``: ``DIR/<class>/<image>``, or ``DIR/train/<class>/...``     |
|                                 | with ``DIR/test/`` (and ``DIR/val/``) beside it                                 |

Splits of a named set: ``test`` is its test set; ``val`` the last ``min(5000, n_train // 10)`` training images
(5,000 for the MNIST family, as always), ``train`` the rest. A folder without ``val/`` (or ``test/``) gives every
tenth image (sorted by class, then file name; image ``i`` with ``i % 10 == 9``) to val (and ``i % 10 == 8`` to test).

Images of different sizes need ``resize=`` (a side or ``(height, width)``; bilinear); gray and colour images in one
set are all made colour. A bad image, label or item raises :class:`~ram_env.datasets.DatasetError` in one line naming
the file or index, before anything is kept.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import numpy as np

from ram_env import datasets
from ram_env.datasets import DatasetError, resolve_data_dir

MNIST_FAMILY = datasets.DATASETS
TORCHVISION = ("CIFAR10", "CIFAR100", "SVHN", "STL10")
NAMED = (*MNIST_FAMILY, *TORCHVISION, "ColourClutteredMNIST")
SHAPES = {**{n: (28, 28) for n in MNIST_FAMILY}, "CIFAR10": (32, 32), "CIFAR100": (32, 32), "SVHN": (32, 32)}
SHAPES |= {"STL10": (96, 96), "ColourClutteredMNIST": (60, 60)}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageData:
    """uint8 images and int64 labels of one split, with the number of classes, a name and a fingerprint.

    :param planes: ``(N, C, H, W)`` uint8, C = 1 or 3 (made read-only)
    :param labels: ``(N,)`` int64 in ``[0, n_classes)``
    """

    def __init__(self, planes: np.ndarray, labels: np.ndarray, n_classes: int, name: str):
        self.planes, self.labels = planes, labels
        planes.flags.writeable = labels.flags.writeable = False
        self.n_classes, self.name = int(n_classes), name

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> np.ndarray:
        """``(N, H, W, C)`` uint8 (a view)."""
        return self.planes.transpose(0, 2, 3, 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.planes.shape[1:])

    @functools.cached_property
    def fingerprint(self) -> str:
        """16 hex digits of a BLAKE2b hash of the shape, pixels and labels."""
        h = hashlib.blake2b(digest_size=8)
        h.update(repr((self.planes.shape, self.n_classes)).encode())
        h.update(np.ascontiguousarray(self.planes).data)
        h.update(np.ascontiguousarray(self.labels).data)
        return h.hexdigest()

    def subset(self, rows) -> "ImageData":
        return ImageData(self.planes[rows], self.labels[rows], self.n_classes, self.name)


# ----------------------------------------------------------------------------------------------- images
def _as_side_pair(resize) -> tuple[int, int] | None:
    if resize is None:
        return None
    pair = tuple(resize) if isinstance(resize, (tuple, list)) else (resize, resize)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in pair):
        raise ValueError(f"resize must be a positive integer or a (height, width) pair, got {resize!r}")
    return int(pair[0]), int(pair[1])


def _pixels(array: np.ndarray, what: str) -> np.ndarray:
    """uint8 pixels from uint8, integers in 0..255 or floats in [0, 1], or a DatasetError naming ``what``."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f"{what}: integer pixels must lie in 0..255, got {array.min()}..{array.max()}")
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise DatasetError(f"{what}: float pixels must lie in [0, 1] (uint8 for 0..255)")
        return np.rint(array * 255.0).astype(np.uint8)
    raise DatasetError(f"{what}: pixels must be uint8 or floats in [0, 1], got dtype {array.dtype}")


def _one_image(image, what: str, resize: tuple[int, int] | None) -> np.ndarray:
    """One image (PIL, numpy ``(H, W[, C])``, or a ``(C, H, W)`` tensor) as ``(H, W, C)`` uint8."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image.convert("L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB")
        if resize is not None and image.size != (resize[1], resize[0]):
            image = image.resize((resize[1], resize[0]), Image.BILINEAR)
        array = np.asarray(image)
    else:
        torch_tensor = type(image).__module__.startswith("torch")
        try:
            array = np.asarray(image.detach().cpu() if torch_tensor else image)
        except (TypeError, ValueError):
            raise DatasetError(f"{what} is a {type(image).__name__}, not an image") from None
        if torch_tensor and array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
            array = array.transpose(1, 2, 0)  # torchvision's ToTensor layout (C, H, W)
        array = _pixels(array, what)
        if resize is not None and array.shape[:2] != resize:
            return _one_image(Image.fromarray(array.squeeze(-1) if array.ndim == 3 else array), what, resize)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or min(array.shape[:2]) < 1:
        raise DatasetError(f"{what} has shape {array.shape}; an image is (H, W), (H, W, 1) or (H, W, 3)")
    return array


def _stack(items, resize) -> tuple[np.ndarray, list]:
    """``(N, C, H, W)`` uint8 and the labels from ``(image, label, what)`` triples, all images one size."""
    planes, labels, first = None, [], None
    for i, (image, label, what) in enumerate(items):
        array = _one_image(image, what, resize)
        if planes is None:
            first = (what, array.shape[:2])
            planes = np.empty((len(items), array.shape[2], *array.shape[:2]), np.uint8)
        elif array.shape[:2] != first[1]:
            raise DatasetError(
                f"{what} is {array.shape[0]}x{array.shape[1]} but {first[0]} is {first[1][0]}x{first[1][1]}; "
                "images of different sizes need resize=(height, width) (--resize)"
            )
        if array.shape[2] != planes.shape[1]:  # gray and colour in one set: all colour
            if planes.shape[1] == 1:
                planes = np.repeat(planes, 3, axis=1)
            else:
                array = np.repeat(array, 3, axis=2)
        planes[i] = array.transpose(2, 0, 1)
        labels.append(label)
    return planes, labels


def _labels(labels, n: int, n_classes: int | None, where) -> tuple[np.ndarray, int]:
    """int64 labels ``(n,)`` and the number of classes, or a DatasetError naming the bad label's index."""
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError):
        raise DatasetError(f"labels must be integers 0..K-1, got {type(labels).__name__}") from None
    if array.ndim != 1 or len(array) != n:
        raise DatasetError(f"labels must be {n} integers (one per image), got shape {array.shape}")
    if n and array.dtype.kind not in "iu":
        raise DatasetError(f"labels must be integers 0..K-1, got dtype {array.dtype}")
    array = array.astype(np.int64)
    k = int(array.max(initial=-1)) + 1 if n_classes is None else int(n_classes)
    bad = np.flatnonzero((array < 0) | (array >= k))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"label {array[i]} of {where(i)} is out of range: labels must be in 0..{k - 1} (K={k})")
    return array, max(k, 1)


# ----------------------------------------------------------------------------------------------- sources
def from_arrays(images, labels, n_classes: int | None = None, resize=None, name: str = "arrays") -> ImageData:
    """An :class:`ImageData` from arrays (or tensors) ``(N, H, W)`` / ``(N, H, W, C)``, or a list of images."""
    resize = _as_side_pair(resize)
    if isinstance(images, (list, tuple)):
        planes, _ = _stack([(im, 0, f"image {i}") for i, im in enumerate(images)], resize)
    else:
        torch_tensor = type(images).__module__.startswith("torch")
        array = np.asarray(images.detach().cpu() if torch_tensor else images)
        if array.ndim == 4 and array.shape[-1] not in (1, 3):
            hint = " (channels first? pass (N, H, W, C))" if array.shape[1] in (1, 3) else ""
            raise DatasetError(f"images must be (N, H, W) or (N, H, W, C) with C = 1 or 3, got {array.shape}{hint}")
        if array.ndim not in (3, 4) or len(array) == 0:
            raise DatasetError(f"images must be a non-empty (N, H, W) or (N, H, W, C) array, got shape {array.shape}")
        array = _pixels(array, "images")
        if resize is not None and array.shape[1:3] != resize:
            planes, _ = _stack([(im, 0, f"image {i}") for i, im in enumerate(array)], resize)
        else:
            planes = np.ascontiguousarray(array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2))
    labels, k = _labels(labels, len(planes), n_classes, lambda i: f"image {i}")
    return ImageData(planes, labels, k, name)


def from_dataset(dataset, n_classes: int | None = None, resize=None) -> ImageData:
    """An :class:`ImageData` from a map-style dataset whose item ``i`` is ``(image, label)``."""
    resize = _as_side_pair(resize)
    n = len(dataset)
    if n == 0:
        raise DatasetError(f"the dataset {type(dataset).__name__} is empty")
    items = []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            got = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else f"a {type(item).__name__}"
            raise DatasetError(f"item {i} of the dataset is {got}, not an (image, label) pair")
        label = item[1]
        if type(label).__module__.startswith("torch"):
            label = label.item() if label.numel() == 1 else label
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DatasetError(f"item {i} of the dataset has label {label!r}, not an integer class")
        items.append((item[0], int(label), f"item {i} of the dataset"))
    planes, labels = _stack(items, resize)
    labels, k = _labels(labels, n, n_classes, lambda i: f"item {i} of the dataset")
    return ImageData(planes, labels, k, f"dataset:{type(dataset).__name__}")


def _folder_files(folder: Path, classes: list[str] | None) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(file, class index)`` of a folder of class folders, sorted by class then file name."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder; it must hold one folder of images per class")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    classes = classes or found
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise DatasetError(f"{folder} has class folders {unknown} that the training folder lacks")
    files = [
        (p, classes.index(c))
        for c in found
        for p in sorted((folder / c).iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise DatasetError(
            f"no images in {folder}: it must hold one folder per class with images in it "
            f"({', '.join(IMAGE_EXTENSIONS)}), as torchvision's ImageFolder"
        )
    return files, classes


def _read(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DatasetError(f"cannot read image {path} ({' '.join(str(e).split())}); fix or remove it") from None


def from_folder(root, split: str = "train", resize=None) -> ImageData:
    """An :class:`ImageData` of one split of a folder in torchvision's ImageFolder layout (see the module).

    The decoded images are kept per process (at most :data:`FOLDER_CACHE` splits) while no file changes."""
    root = Path(root).expanduser().resolve()
    resize = _as_side_pair(resize)
    pool_dir = root / "train" if (root / "train").is_dir() else root
    pool, classes = _folder_files(pool_dir, None)
    carved = {"val": 9, "test": 8} if pool_dir == root else {"val": 9}
    if (root / split).is_dir() and split != "train":
        files, _ = _folder_files(root / split, classes)
    elif split in carved:
        files = [f for i, f in enumerate(pool) if i % 10 == carved[split]]
    elif split == "train":
        files = [f for i, f in enumerate(pool) if i % 10 not in carved.values() or len(pool) < 10]
    else:
        raise DatasetError(f"{root} has train/ but no {split}/ folder; put the {split} images there")
    if not files:
        raise DatasetError(f"{root} holds too few images for a {split} split (every tenth image is carved off)")
    stats = tuple((str(p), k, p.stat().st_mtime_ns, p.stat().st_size) for p, k in files)
    return _decode(stats, resize, len(classes), f"folder:{root}")


FOLDER_CACHE = 8


@functools.lru_cache(maxsize=FOLDER_CACHE)
def _decode(files: tuple, resize, n_classes: int, name: str) -> ImageData:
    """The images of ``files`` (path, class, mtime, size), decoded; cached by those, so a changed file is read anew."""
    planes, labels = _stack([(_read(Path(p)), k, p) for p, k, *_ in files], resize)
    return ImageData(planes, np.asarray(labels, np.int64), n_classes, name)


# ------------------------------------------------------------------------------------------- named sets
def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(2, "missing", str(path))
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DatasetError(f"{path} is unreadable or corrupt ({e}); delete it and fetch it again") from None


def _cifar(root: Path, name: str, part: str) -> tuple[np.ndarray, np.ndarray, int]:
    """CIFAR-10/100's python pickle batches, as torchvision keeps them."""
    folder = root / ("cifar-10-batches-py" if name == "CIFAR10" else "cifar-100-python")
    if name == "CIFAR10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if part == "train" else ["test_batch"]
    else:
        files = ["train"] if part == "train" else ["test"]
    batches = [_unpickle(folder / f) for f in files]
    key = b"labels" if name == "CIFAR10" else b"fine_labels"
    try:
        data = np.concatenate([np.asarray(b[b"data"], np.uint8).reshape(-1, 3, 32, 32) for b in batches])
        labels = np.concatenate([np.asarray(b[key], np.int64) for b in batches])
    except (KeyError, ValueError) as e:
        raise DatasetError(f"{folder} holds a batch without its {e} entry, not CIFAR's layout") from None
    return data, labels, 10 if name == "CIFAR10" else 100


def _stl10(root: Path, part: str) -> tuple[np.ndarray, np.ndarray, int]:
    folder = root / "stl10_binary"
    x, y = folder / f"{part}_X.bin", folder / f"{part}_y.bin"
    data = np.fromfile(x, np.uint8)
    if data.size % (3 * 96 * 96):
        raise DatasetError(f"{x} is truncated: {data.size} bytes is not a whole number of 96x96 colour images")
    data = np.ascontiguousarray(data.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2))  # stored column by column
    return data, np.fromfile(y, np.uint8).astype(np.int64) - 1, 10


def _svhn(root: Path, part: str) -> tuple[np.ndarray, np.ndarray, int]:
    import torchvision.datasets

    if not (root / "svhn" / f"{part}_32x32.mat").is_file():
        raise FileNotFoundError(2, "missing", str(root / "svhn" / f"{part}_32x32.mat"))
    ds = torchvision.datasets.SVHN(str(root / "svhn"), split=part, download=False)
    return np.ascontiguousarray(ds.data), np.asarray(ds.labels, np.int64), 10


def _download(name: str, root: Path, part: str) -> str | None:
    """Fetch a named set through torchvision's own class (its mirrors and checksums); None, or why it failed."""
    try:
        import torchvision.datasets
    except ImportError as e:
        return f"downloading needs torchvision: {e}"
    cls = getattr(torchvision.datasets, name)
    try:
        with datasets._socket_timeout(30):
            if name in ("SVHN", "STL10"):
                cls(str(root / "svhn") if name == "SVHN" else str(root), split=part, download=True)
            else:
                cls(str(root), train=part == "train", download=True)
    except Exception as e:  # noqa: BLE001 - torchvision raises anything from urllib, tarfile or its checks
        return " ".join(str(e).split()) or type(e).__name__
    return None


LAYOUT = {
    "CIFAR10": "cifar-10-batches-py/{data_batch_1..5, test_batch}",
    "CIFAR100": "cifar-100-python/{train, test}",
    "SVHN": "svhn/{train,test}_32x32.mat",
    "STL10": "stl10_binary/{train,test}_{X,y}.bin",
}


@functools.lru_cache(maxsize=4)
def _torchvision_part(name: str, root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray, int]:
    readers = {"CIFAR10": _cifar, "CIFAR100": _cifar}
    read = functools.partial(readers[name], root, name) if name in readers else None
    read = read or (functools.partial(_stl10, root) if name == "STL10" else functools.partial(_svhn, root))
    try:
        return read(part)
    except FileNotFoundError as first:
        why = " Downloading is off."
        if download:
            failure = _download(name, root, part)
            if failure is None:
                return read(part)
            why = f" Download failed ({failure})."
        raise DatasetError(
            f"{name}: missing {first.filename}.{why} torchvision's "
            f"layout is {root}/{LAYOUT[name]}; put them there, or point --data-dir / RAM_DATA_DIR at the folder "
            "that holds them."
        ) from None


def named(name: str, split: str = "train", data_dir=None, download: bool = True) -> ImageData:
    """One split of a set named in :data:`NAMED`, in torchvision's layout under ``data_dir``."""
    if name not in NAMED:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMED)}")
    if name in MNIST_FAMILY:
        return _mnist(name, split, resolve_data_dir(data_dir), download)
    if name == "ColourClutteredMNIST":
        from ram_env import colour_mnist

        return colour_mnist.load(split, data_dir, download)
    data, labels, k = _torchvision_part(
        name, resolve_data_dir(data_dir), "test" if split == "test" else "train", download
    )
    data = ImageData(data, labels, k, name)
    if split == "test":
        return data
    n_val = min(datasets.N_VAL, len(data) // 10)
    return data.subset(slice(-n_val, None) if split == "val" else slice(None, -n_val))


@functools.lru_cache(maxsize=None)
def _mnist(name: str, split: str, root: Path, download: bool) -> ImageData:
    """An MNIST-family split as an :class:`ImageData` (a view of :func:`ram_env.datasets.load`'s arrays)."""
    images, labels = datasets.load(name, split, root, download)
    return ImageData(images[:, None], labels, datasets.N_CLASSES, name)


def load(
    dataset: str = "MNIST",
    split: str = "train",
    data_dir=None,
    image_folder=None,
    resize=None,
    images=None,
    labels=None,
    n_classes: int | None = None,
) -> ImageData:
    """The data of one split from whichever source is given (``images`` first, then ``image_folder``, then the name)."""
    if images is not None:
        if isinstance(images, dict) or isinstance(labels, dict):
            return _split_of_dicts(images, labels, split, n_classes, resize)
        if labels is None and hasattr(images, "__getitem__") and hasattr(images, "__len__"):
            return from_dataset(images, n_classes, resize)
        if labels is None:
            raise ValueError("images= needs labels= (or a dataset object whose items are (image, label) pairs)")
        return from_arrays(images, labels, n_classes, resize)
    if image_folder is not None:
        data = from_folder(image_folder, split, resize)
    else:
        data = named(dataset, split, data_dir)
        if resize is not None and data.shape[1:] != _as_side_pair(resize):
            data = from_arrays(data.images, data.labels, data.n_classes, resize, data.name)
    if n_classes is not None and n_classes != data.n_classes:
        raise DatasetError(f"n_classes={n_classes} but {data.name} has {data.n_classes} classes")
    return data


def of_config(config, images=None, labels=None) -> ImageData:
    """The data of a :class:`~ram_env.task.TaskConfig` (with ``images`` and ``labels`` given beside it)."""
    c = config
    return load(c.dataset, c.split, c.data_dir, c.image_folder, c.resize, images, labels, c.n_classes)


def _split_of_dicts(images, labels, split: str, n_classes, resize) -> ImageData:
    """One split of ``{"train": ..., "val": ..., "test": ...}`` arrays; the classes counted over every split."""
    if not (isinstance(images, dict) and isinstance(labels, dict) and set(images) == set(labels)):
        raise ValueError("images= and labels= given as dicts must both be dicts with the same split names as keys")
    unknown = set(images) - set(datasets.SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)} in images=; use {', '.join(datasets.SPLITS)}")
    if split not in images:
        raise ValueError(f"split={split!r} but images= holds only the splits {', '.join(images)}")
    if n_classes is None:
        n_classes = max(int(np.max(np.asarray(v), initial=-1)) + 1 for v in labels.values())
    return from_arrays(images[split], labels[split], n_classes, resize)
