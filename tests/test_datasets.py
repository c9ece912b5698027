"""The IDX loader on small files written here, its errors, the splits, and the real data of this machine."""

import functools
import gzip
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ram_env import GlimpseEnv, datasets
from ram_env.datasets import DatasetError, load, read_idx, resolve_data_dir

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
N_TRAIN = datasets.N_VAL + 3  # the smallest training set with a train split left: 3 train, 5000 val


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, as in yann.lecun.com/exdb/mnist."""
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, compresslevel=1))
    else:
        path.write_bytes(data)
    return path


def write_dataset(root: Path, name: str, gz: bool, seed: int = 0):
    """Four small IDX files in ``root/name/raw``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 7).astype(np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(root / name / "raw" / stem, array, gz)
    return arrays


# ------------------------------------------------------------------------------------ the IDX loader
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "KMNIST"])
def test_loads_small_idx_files_raw_and_gz(tmp_path, name, gz):
    arrays = write_dataset(tmp_path, name, gz)
    images, labels = load(name, "test", data_dir=tmp_path, download=False)
    assert images.dtype == np.uint8 and images.shape == (7, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (7,)
    assert np.array_equal(images, arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(labels, arrays["t10k-labels-idx1-ubyte"])
    train_images, train_labels = load(name, "train", data_dir=tmp_path, download=False)
    val_images, val_labels = load(name, "val", data_dir=tmp_path, download=False)
    # train is the head of the training file, val its last N_VAL images
    assert len(train_images) == 3 and len(val_images) == datasets.N_VAL
    assert np.array_equal(np.concatenate([train_images, val_images]), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(np.concatenate([train_labels, val_labels]), arrays["train-labels-idx1-ubyte"])


def test_kmnist_tasks_work_wherever_the_files_exist(tmp_path):
    write_dataset(tmp_path, "KMNIST", gz=True)
    env = GlimpseEnv(dataset="KMNIST", split="train", data_dir=str(tmp_path), translated_size=60, n_glimpses=2)
    obs, info = env.reset(seed=0)
    assert 0 <= info["index"] < 3
    env.step({"location": np.zeros(2, np.float32), "label": 0})
    obs, reward, terminated, truncated, info = env.step({"location": np.zeros(2, np.float32), "label": 0})
    assert terminated and info["label"] == env.task.labels[info["index"]]


def test_read_idx_checks_the_header(tmp_path):
    path = write_idx(tmp_path / "labels", np.arange(5, dtype=np.uint8), gz=False)
    assert np.array_equal(read_idx(path, ndim=1), np.arange(5))
    with pytest.raises(DatasetError, match=r"labels is not an IDX file of 3-d unsigned bytes \(bad header\)"):
        read_idx(path, ndim=3)


def _corrupt(tmp_path: Path, stem: str, how: str) -> Path:
    write_dataset(tmp_path, "MNIST", gz=how.startswith("gz"))
    path = tmp_path / "MNIST" / "raw" / (stem + (".gz" if how.startswith("gz") else ""))
    data = path.read_bytes()
    if how in ("truncated", "gz-truncated"):
        path.write_bytes(data[: len(data) // 2])
    elif how == "gz-garbage":
        path.write_bytes(data[:10] + bytes(range(256)) * 4)
    elif how == "longer":
        path.write_bytes(data + b"\0\0")
    elif how == "bad-magic":
        path.write_bytes(b"\0\0\x09\x03" + data[4:])
    return path


@pytest.mark.parametrize(
    "how, match",
    [
        ("truncated", "truncated or corrupt"),
        ("longer", "truncated or corrupt"),
        ("bad-magic", "bad header"),
        ("gz-truncated", "unreadable, truncated or corrupt"),
        ("gz-garbage", "unreadable, truncated or corrupt"),
    ],
)
@pytest.mark.parametrize("stem, split", [("t10k-images-idx3-ubyte", "test"), ("train-labels-idx1-ubyte", "val")])
def test_a_corrupt_file_is_named(tmp_path, how, match, stem, split):
    path = _corrupt(tmp_path, stem, how)
    with pytest.raises(DatasetError, match=match) as err:
        load("MNIST", split, data_dir=tmp_path, download=False)
    assert str(path) in str(err.value)
    assert "delete it and fetch it again" in str(err.value)


def test_images_and_labels_must_agree(tmp_path):
    write_dataset(tmp_path, "MNIST", gz=False)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(6, np.uint8), gz=False)
    with pytest.raises(DatasetError, match="do not match: 7 images, 6 labels"):
        load("MNIST", "test", data_dir=tmp_path, download=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.full(7, 10, np.uint8), gz=False)
    with pytest.raises(DatasetError, match="holds label 10, outside the 10 classes"):
        load("MNIST", "test", data_dir=tmp_path, download=False)
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((7, 32, 32), np.uint8), gz=False)
    with pytest.raises(DatasetError, match="holds 32x32 images, not 28x28"):
        load("MNIST", "test", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("name", ["MNIST", "KMNIST"])
def test_missing_files_name_the_folder_and_the_expected_files(tmp_path, name):
    with pytest.raises(DatasetError, match="Downloading is off") as err:
        load(name, "test", data_dir=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / name / "raw") in message
    for stem in FILES:
        assert stem in message
    assert "RAM_DATA_DIR" in message
    assert not (tmp_path / name).exists()  # nothing written


def test_missing_only_some_files(tmp_path):
    write_dataset(tmp_path, "KMNIST", gz=False)
    (tmp_path / "KMNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    assert len(load("KMNIST", "test", data_dir=tmp_path, download=False)[0]) == 7
    with pytest.raises(DatasetError, match="KMNIST: missing train-images-idx3-ubyte in"):
        load("KMNIST", "train", data_dir=tmp_path, download=False)


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_data_dir() == (tmp_path / "env").resolve()
    monkeypatch.delenv("RAM_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir() == (tmp_path / "data").resolve()


def test_unknown_dataset_or_split():
    with pytest.raises(ValueError, match="unknown dataset 'CIFAR'; choose one of MNIST, FashionMNIST, KMNIST"):
        load("CIFAR", "test")
    with pytest.raises(ValueError, match="unknown split 'dev'; choose one of train, val, test"):
        load("MNIST", "dev")


# ------------------------------------------------------------------- downloading through torchvision
@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 for this test; yields ``(folder, url)``."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def serve_mnist(monkeypatch, url: str, md5s: dict[str, str]) -> None:
    """Point torchvision's MNIST class at ``url``, expecting the files ``md5s`` names with those checksums."""
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", list(md5s.items()))


def publish(folder: Path, seed: int = 0) -> tuple[dict, dict[str, str]]:
    """Small MNIST files as ``.gz`` in ``folder``; the arrays and the MD5 of each file."""
    arrays = write_dataset(folder / "made", "MNIST", gz=True, seed=seed)
    md5s = {}
    for stem in FILES:
        data = (folder / "made" / "MNIST" / "raw" / f"{stem}.gz").read_bytes()
        (folder / f"{stem}.gz").write_bytes(data)
        md5s[f"{stem}.gz"] = hashlib.md5(data).hexdigest()
    return arrays, md5s


def test_a_download_through_torchvision_lands_files_that_load(tmp_path, mirror, monkeypatch):
    folder, url = mirror
    arrays, md5s = publish(folder)
    serve_mnist(monkeypatch, url, md5s)
    images, labels = load("MNIST", "test", data_dir=tmp_path / "data", download=True)
    assert np.array_equal(images, arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(labels, arrays["t10k-labels-idx1-ubyte"])
    raw = tmp_path / "data" / "MNIST" / "raw"
    for stem in FILES:  # all four, unpacked beside the checked .gz
        assert (raw / stem).is_file() and (raw / f"{stem}.gz").is_file()
    train_labels = load("MNIST", "train", data_dir=tmp_path / "data", download=False)[1]
    assert np.array_equal(train_labels, arrays["train-labels-idx1-ubyte"][:3])


def test_a_failed_download_is_one_line_naming_the_folder_and_files(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port on which nothing listens: the connection is refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_mnist(monkeypatch, f"http://127.0.0.1:{port}/", {f"{stem}.gz": "0" * 32 for stem in FILES})
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(DatasetError, match=r"MNIST: missing .* Download failed \(Error downloading") as err:
        load("MNIST", "test", data_dir=tmp_path, download=True)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "MNIST" / "raw") in message
    assert all(stem in message for stem in FILES)


def test_a_download_that_fails_its_checksum_names_the_file(tmp_path, mirror, monkeypatch):
    folder, url = mirror
    _, md5s = publish(folder)
    md5s["t10k-labels-idx1-ubyte.gz"] = "0" * 32  # what torchvision expects differs from what the mirror serves
    serve_mnist(monkeypatch, url, dict(sorted(md5s.items(), reverse=True)))  # the t10k files first
    with pytest.raises(DatasetError) as err:
        load("MNIST", "test", data_dir=tmp_path / "data", download=True)
    path = tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    assert str(err.value) == f"{path} fails its MD5 checksum (expected {'0' * 32}); delete it and download again"


def test_reading_does_not_import_torchvision(data_dir):
    code = (
        "import sys; from ram_env.datasets import load; "
        f"load('MNIST', 'test', data_dir={data_dir!r}, download=False); "
        "assert 'torchvision' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------------ the real data here
@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_real_split_sizes(data_dir, name):
    sizes = {}
    for split in datasets.SPLITS:
        images, labels = load(name, split, data_dir=data_dir, download=False)
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        assert labels.dtype == np.int64 and len(labels) == len(images)
        assert set(np.unique(labels)) == set(range(10))
        sizes[split] = len(images)
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    train, _ = load(name, "train", data_dir=data_dir, download=False)
    val, _ = load(name, "val", data_dir=data_dir, download=False)
    # val is the tail of the training file, right after train: disjoint, and fixed
    assert not np.shares_memory(train, val) and train.ctypes.data + train.nbytes == val.ctypes.data


def test_real_kmnist_test_loads_and_train_gives_the_missing_file_error(data_dir):
    images, labels = load("KMNIST", "test", data_dir=data_dir, download=False)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    with pytest.raises(
        DatasetError, match=r"KMNIST: missing train-images-idx3-ubyte in .*KMNIST/raw\. Downloading is off\."
    ):
        load("KMNIST", "train", data_dir=data_dir, download=False)
