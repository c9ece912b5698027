"""Images from anywhere (ram_env.sources) as a glimpse task: arrays, folders, datasets, torchvision layouts, colour."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import ram_env  # noqa: F401 - registers the tasks
from ram_env import sources
from ram_env.datasets import DatasetError
from ram_env.env import GlimpseEnv
from ram_env.vector import GlimpseVectorEnv


def colour_set(n=40, h=20, w=32, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8), rng.integers(0, k, n)


def act(n_classes=4, location=(0.0, 0.0)):
    return {"location": np.array(location, np.float32), "label": 0}


# ------------------------------------------------------------------------------------------------ arrays
@pytest.mark.parametrize(
    "shape, channels", [((30, 28, 28), 1), ((30, 28, 28, 1), 1), ((30, 32, 32, 3), 3), ((30, 24, 40, 3), 3)]
)
def test_arrays_gray_and_colour_square_and_not_give_glimpses_of_their_channels(shape, channels):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, shape).astype(np.uint8), rng.integers(0, 7, shape[0])
    env = gym.make("RAM/Images-v0", images=images, labels=labels)
    u = env.unwrapped
    p, n = u.config.patch_size, u.config.n_patches
    assert env.observation_space["glimpse"].shape == (n, channels, p, p)
    assert env.action_space["label"].n == labels.max() + 1
    obs, info = env.reset(seed=0, options={"index": 3})
    assert obs["glimpse"].shape == (n, channels, p, p) and env.observation_space.contains(obs)
    # the plain canvas is the image itself, channel for channel
    image = images[3] if images.ndim == 4 else images[3, :, :, None]
    assert np.array_equal(u.task.canvases[0], image.transpose(2, 0, 1))
    assert np.array_equal(u.frame_state()["canvas"], image if channels == 3 else image[:, :, 0])


def test_a_centred_patch_of_a_colour_image_is_its_pixels_over_255():
    images, labels = colour_set(n=4, h=16, w=16)
    env = GlimpseEnv(images=images, labels=labels, patch_size=4, n_patches=1, scale=1, start="center")
    obs, _ = env.reset(options={"index": 2})
    expected = images[2, 6:10, 6:10].transpose(2, 0, 1) / np.float32(255)
    assert np.array_equal(obs["glimpse"][0], expected.astype(np.float32))


def test_float_images_in_0_1_are_the_same_task_as_uint8():
    images, labels = colour_set(n=10)
    as_float = images.astype(np.float64) / 255.0
    data = sources.from_arrays(as_float, labels)
    assert data.planes.dtype == np.uint8 and np.array_equal(data.images, images)
    assert data.fingerprint == sources.from_arrays(images, labels).fingerprint


def test_suited_defaults_follow_the_size_of_the_canvas():
    assert sources.SHAPES["CIFAR10"] == (32, 32)

    def config(h, w, **kw):
        return gym.make(
            "RAM/Images-v0", images=colour_set(n=5, h=h, w=w)[0], labels=np.arange(5), **kw
        ).unwrapped.config

    small = config(32, 32)
    assert (small.patch_size, small.n_patches, small.scale, small.n_glimpses) == (8, 2, 2, 6)
    big = config(64, 64)
    assert (big.patch_size, big.n_patches, big.n_glimpses) == (12, 3, 8)
    placed = config(28, 28, translated_size=100)
    assert (placed.patch_size, placed.n_patches) == (12, 4)  # the paper's 100x100 settings


def test_split_dicts_give_each_split_and_count_classes_over_all():
    images, labels = colour_set(n=30, k=3)
    labels_val = np.zeros(10, int)
    kw = dict(images={"train": images, "val": images[:10]}, labels={"train": labels, "val": labels_val})
    env = GlimpseEnv(split="val", **kw)
    assert env.n_images == 10 and env.action_space["label"].n == 3
    with pytest.raises(ValueError, match="split='test' but images= holds only the splits train, val"):
        GlimpseEnv(split="test", **kw)


# ------------------------------------------------------------------------ fixed val/test episodes, backends
def episode_glimpses(env, index, steps=3):
    obs, _ = env.reset(options={"index": index})
    out = [obs["glimpse"]]
    for t in range(steps - 1):
        out.append(env.step(act(location=(0.3 * t - 0.2, 0.1)))[0]["glimpse"])
    return np.stack(out)


def test_val_episode_of_an_image_is_a_function_of_the_data_and_its_index():
    images, labels = colour_set(n=30)
    kw = dict(split="val", translated_size=(40, 50), n_clutter=3, clutter_size=6)
    a = GlimpseEnv(images=images, labels=labels, **kw)
    b = GlimpseEnv(images=images.copy(), labels=labels.copy(), **kw)
    b.reset(seed=123)
    assert np.array_equal(episode_glimpses(a, 7), episode_glimpses(b, 7))
    other = images.copy()
    other[0, 0, 0, 0] ^= 1  # one pixel of another image: other data, other fixed episodes
    c = GlimpseEnv(images=other, labels=labels, **kw)
    assert c.task.data.fingerprint != a.task.data.fingerprint
    assert not np.array_equal(episode_glimpses(a, 7), episode_glimpses(c, 7))


def test_both_backends_give_the_same_val_episodes_on_a_colour_task():
    pytest.importorskip("torch")
    images, labels = colour_set(n=24, h=28, w=36)
    kw = dict(images=images, labels=labels, split="test", translated_size=(48, 60), n_clutter=4, clutter_size=6)
    host, device = GlimpseVectorEnv(6, **kw), GlimpseVectorEnv(6, device="cpu", **kw)
    rng = np.random.default_rng(0)
    for first in (0, 6, 12):
        idx = np.arange(first, first + 6)
        a, _ = host.reset(seed=1, options={"indices": idx})
        b, _ = device.reset(seed=2, options={"indices": idx})
        assert np.array_equal(a["glimpse"], b["glimpse"].numpy())
        assert np.array_equal(host.task.canvases, device.task.canvases.numpy())
        for _ in range(host.task.n_glimpses):
            action = {"location": rng.uniform(-1, 1, (6, 2)).astype(np.float32), "label": rng.integers(0, 4, 6)}
            a, ra, *_ = host.step(action)
            b, rb, *_ = device.step(action)
            assert np.array_equal(a["glimpse"], b["glimpse"].numpy()) and np.array_equal(ra, rb.numpy())


def test_the_named_digit_task_through_images_v0_keeps_its_episodes(data_dir):
    kw = dict(split="val", data_dir=data_dir, n_glimpses=8, patch_size=12, n_patches=3, scale=2)
    named = gym.make("RAM/ClutteredMNIST60-v0", **kw).unwrapped
    images = gym.make("RAM/Images-v0", dataset="MNIST", translated_size=60, n_clutter=4, **kw).unwrapped
    assert np.array_equal(episode_glimpses(named, 11), episode_glimpses(images, 11))


def test_check_env_passes_on_a_colour_task():
    from gymnasium.utils.env_checker import check_env

    images, labels = colour_set(n=12)
    check_env(GlimpseEnv(images=images, labels=labels, translated_size=40, n_clutter=2), skip_render_check=True)


def test_a_colour_frame_shows_the_colours_of_the_canvas():
    images = np.zeros((3, 16, 24, 3), np.uint8)
    images[..., 0] = 255  # pure red
    env = GlimpseEnv(images=images, labels=[0, 1, 2], render_mode="rgb_array", patch_size=4, n_patches=2)
    env.reset(seed=0)
    frame = env.render()
    from ram_env import render

    layout = render.frame_layout(env.task.retina)
    x0, y0 = layout.canvas_origin
    assert layout.canvas_extent == (24 * layout.scale, 16 * layout.scale)
    assert tuple(frame[y0 + 2, x0 + 2]) == (255, 0, 0) or tuple(frame[y0 + layout.canvas_extent[1] - 3, x0 + 2]) == (
        255,
        0,
        0,
    )


# ------------------------------------------------------------------------------------------- folders, objects
def write_folder(root, sizes=None, n=12, classes=("cat", "dog", "emu"), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            h, w = sizes[i % len(sizes)] if sizes else (18, 22)
            pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w)).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:03d}.png")
    return root


def test_an_image_folder_is_a_colour_task_with_its_classes(tmp_path):
    root = write_folder(tmp_path / "pets")
    train = sources.from_folder(str(root), "train")
    val = sources.from_folder(str(root), "val")
    test = sources.from_folder(str(root), "test")
    assert train.n_classes == 3 and train.shape == (3, 18, 22)
    assert len(train) + len(val) + len(test) == 36 and len(val) == len(test) == 3  # every tenth image each
    first = np.asarray(Image.open(root / "cat" / "000.png"))
    assert np.array_equal(train.images[0], first) and train.labels[0] == 0 and train.labels[-1] == 2
    env = gym.make("RAM/Images-v0", image_folder=str(root), split="val")
    assert env.observation_space["glimpse"].shape[1] == 3 and env.action_space["label"].n == 3


def test_an_image_folder_with_train_and_test_folders_uses_them(tmp_path):
    write_folder(tmp_path / "set" / "train")
    write_folder(tmp_path / "set" / "test", n=2)
    assert len(sources.from_folder(str(tmp_path / "set"), "test")) == 6
    assert (
        len(sources.from_folder(str(tmp_path / "set"), "train"))
        + len(sources.from_folder(str(tmp_path / "set"), "val"))
        == 36
    )


def test_images_of_mixed_sizes_need_resize(tmp_path):
    root = write_folder(tmp_path / "mixed", sizes=[(18, 22), (30, 30)], n=4)
    with pytest.raises(DatasetError, match=r"001\.png is 30x30 but .*000\.png is 18x22; .* need resize="):
        sources.from_folder(str(root), "train")
    data = sources.from_folder(str(root), "train", (24, 24))
    assert data.shape == (3, 24, 24)


def test_gray_images_in_a_folder_give_one_channel(tmp_path):
    data = sources.from_folder(str(write_folder(tmp_path / "g", mode="L")), "train")
    assert data.shape[0] == 1


def test_a_map_style_dataset_of_pil_images_or_tensors_is_a_source():
    torch = pytest.importorskip("torch")
    images, labels = colour_set(n=8, h=12, w=12)

    class Pil:
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return Image.fromarray(images[i]), int(labels[i])

    class Tensors(Pil):
        def __getitem__(self, i):  # torchvision's ToTensor: (C, H, W) floats in [0, 1]
            return torch.from_numpy(images[i].transpose(2, 0, 1) / 255.0), torch.tensor(labels[i])

    for ds in (Pil(), Tensors()):
        data = sources.from_dataset(ds)
        assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)
    env = GlimpseEnv(images=Pil(), n_classes=4)
    assert env.observation_space["glimpse"].shape[1] == 3 and env.action_space["label"].n == 4


def write_cifar10(root, n=20):
    """CIFAR-10's python batches in torchvision's layout: 5 training batches and a test batch of n images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar10_by_name_reads_torchvision_layout_from_data_dir(tmp_path):
    folder = write_cifar10(tmp_path)
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")[b"data"][0].reshape(3, 32, 32)
    train = sources.named("CIFAR10", "train", tmp_path)
    assert len(train) == 90 and len(sources.named("CIFAR10", "val", tmp_path)) == 10  # a tenth of train is val
    assert np.array_equal(train.planes[0], first) and train.n_classes == 10
    env = gym.make_vec(
        "RAM/Images-v0", 2, vectorization_mode="vector_entry_point", dataset="CIFAR10", data_dir=str(tmp_path)
    )
    obs, _ = env.reset(seed=0)
    assert obs["glimpse"].shape == (2, 2, 3, 8, 8) and env.unwrapped.n_images == 90


def test_a_missing_torchvision_set_is_one_line_naming_the_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_download", lambda *a: "no network")
    with pytest.raises(
        DatasetError, match=r"CIFAR10: missing .*data_batch_1\. Download failed \(no network\)\. .*cifar-10"
    ):
        sources.named("CIFAR10", "train", tmp_path / "nothing")


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((4, 8, 8), np.uint8), [0, 1, 2, -1], r"label -1 of image 3 is out of range"),
        (np.zeros((4, 8, 8), np.uint8), [0, 1, 2], r"labels must be 4 integers \(one per image\)"),
        (np.zeros((4, 3, 8, 8), np.uint8), [0, 1, 2, 3], r"channels first\? pass \(N, H, W, C\)"),
        (np.full((4, 8, 8), 2.0), [0, 1, 2, 3], r"float pixels must lie in \[0, 1\]"),
        (np.zeros((0, 8, 8), np.uint8), [], r"non-empty"),
    ],
)
def test_bad_arrays_are_one_line_errors(images, labels, match):
    with pytest.raises(DatasetError, match=match):
        GlimpseEnv(images=images, labels=labels)


def test_labels_beyond_n_classes_are_out_of_range():
    with pytest.raises(DatasetError, match=r"label 5 of image 1 is out of range: labels must be in 0..4 \(K=5\)"):
        sources.from_arrays(np.zeros((2, 8, 8), np.uint8), [0, 5], n_classes=5)


def test_an_empty_folder_says_what_it_must_hold(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no images in .*empty: it must hold one folder per class"):
        GlimpseEnv(image_folder=str(tmp_path / "empty"))


def test_a_corrupt_image_is_named_and_nothing_is_kept(tmp_path):
    root = write_folder(tmp_path / "bad", n=3)
    (root / "dog" / "001.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*dog/001\.png"):
        sources.from_folder(str(root), "train")
    Image.fromarray(np.zeros((18, 22, 3), np.uint8)).save(root / "dog" / "001.png")
    assert len(sources.from_folder(str(root), "train")) == 9  # fixed: read afresh, nothing half-loaded was cached


@pytest.mark.parametrize(
    "item, match",
    [
        ((np.zeros((8, 8), np.uint8),), r"item 2 of the dataset is a 1-tuple, not an \(image, label\) pair"),
        ("image", r"item 2 of the dataset is a str, not an \(image, label\) pair"),
        ((np.zeros((8, 8), np.uint8), "cat"), r"item 2 of the dataset has label 'cat', not an integer class"),
    ],
)
def test_a_dataset_returning_the_wrong_item_names_the_index(item, match):
    class Broken:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return item if i == 2 else (np.zeros((8, 8), np.uint8), 0)

    with pytest.raises(DatasetError, match=match):
        sources.from_dataset(Broken())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patch_size=30), r"patch_size 30 is larger than the 20x32 canvas"),
        (dict(translated_size=16), r"translated_size 16 is smaller than the 20x32 image"),
        (dict(translated_size=40, n_clutter=2, clutter_size=25), r"clutter_size must be in 1..20"),
        (dict(n_clutter=2), r"clutter needs a translated canvas: set translated_size > 32"),
    ],
)
def test_impossible_geometry_for_the_images_is_a_clear_error(kwargs, match):
    images, labels = colour_set(n=5)
    with pytest.raises(ValueError, match=match):
        GlimpseEnv(images=images, labels=labels, **kwargs)


def test_no_source_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="no data: give images= and labels=, image_folder= or dataset="):
        gym.make("RAM/Images-v0")


def test_a_colour_glimpse_is_the_gray_glimpse_of_each_channel_on_both_paths():
    from ram_env.sensor import Retina

    rng = np.random.default_rng(3)
    canvases = rng.integers(0, 256, (4, 3, 30, 44)).astype(np.uint8)
    retina = Retina((30, 44), 6, 3, 2)
    locations = rng.uniform(-1, 1, (4, 2)).astype(np.float32)
    sums = retina.block_sums(canvases)
    colour = retina(sums, locations)
    assert colour.shape == (4, 3, 3, 6, 6)
    for k in range(3):
        assert np.array_equal(colour[:, :, k], retina(retina.block_sums(canvases[:, k]), locations)[:, :, 0])
    for b in range(4):  # the single env's path: the same numbers
        assert np.array_equal(retina.one(sums[b], *locations[b].tolist()), colour[b])


def test_a_torchvision_dataset_object_on_a_folder_the_test_wrote_is_a_source(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    root = write_folder(tmp_path / "tv", n=4)
    data = sources.from_dataset(datasets.ImageFolder(str(root)))
    assert data.shape == (3, 18, 22) and data.n_classes == 3 and len(data) == 12
    assert np.array_equal(data.images[0], np.asarray(Image.open(root / "cat" / "000.png")))
    env = gym.make("RAM/Images-v0", images=datasets.ImageFolder(str(root)))
    assert env.action_space["label"].n == 3 and env.observation_space["glimpse"].shape[1] == 3
