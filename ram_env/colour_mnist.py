"""Coloured, cluttered MNIST: a colour data set made offline from MNIST (the named source ``"ColourClutteredMNIST"``).

Image ``i`` of a split is a 60x60 colour canvas: a background of one random dark colour, then ``N_CLUTTER`` 8x8
crops of other random digits of the split, each in its own random bright colour, then the digit ``i`` itself in a
random bright colour at a random position; each piece is alpha-blended by its stroke (the digit's gray level).
Every colour is drawn the same way for the digit and for the clutter, so colour says nothing about which is which.

The images are a pure function of MNIST and the split (one seed per split), made in a few seconds when first asked
for; ``python -m ram_env.colour_mnist --out DIR`` writes a sample sheet of them. As a task it is the paper's
60x60 cluttered task in colour: ``gym.make("RAM/Images-v0", dataset="ColourClutteredMNIST")`` (12 px patches,
3 scales, 8 glimpses: the settings that suit a 60x60 canvas).
"""

from __future__ import annotations

import argparse
import functools
import zlib

import numpy as np

from ram_env import canvas, datasets

SIZE = 60
N_CLUTTER = 4
CLUTTER_SIZE = 8
CHUNK = 4096  # images made at a time (bounds the scratch memory)


def _colours(rng: np.random.Generator, shape: tuple, bright: bool) -> np.ndarray:
    """Random colours ``shape + (3,)`` uint16: bright ones have their largest channel at 255, dark ones below 96."""
    rgb = rng.uniform(0.0, 1.0, (*shape, 3))
    if bright:
        return np.rint(255.0 * rgb / rgb.max(-1, keepdims=True)).astype(np.uint16)
    return np.rint(96.0 * rgb).astype(np.uint16)


def _blend(out: np.ndarray, pieces: np.ndarray, top_left: np.ndarray, colours: np.ndarray) -> None:
    """out[b, :, y:y+h, x:x+w] = blend of its pixels toward ``colours[b]`` by the strokes ``pieces[b]`` (alpha)."""
    b, h, w = pieces.shape
    windows = np.lib.stride_tricks.as_strided(
        out.reshape(-1),
        (out.size - (2 * SIZE * SIZE + (h - 1) * SIZE + w) + 1, 3, h, w),
        (2, 2 * SIZE * SIZE, 2 * SIZE, 2),
    )
    start = np.arange(b) * (3 * SIZE * SIZE) + top_left[:, 1] * SIZE + top_left[:, 0]
    alpha = pieces[:, None].astype(np.uint16)
    windows[start] = (windows[start] * (255 - alpha) + colours[:, :, None, None] * alpha + 127) // 255


def make(images: np.ndarray, seed: int) -> np.ndarray:
    """Coloured cluttered canvases ``(N, 3, 60, 60)`` uint8 from digits ``(N, 28, 28)``; a pure function of both."""
    rng = np.random.default_rng(seed)
    n = len(images)
    planes = np.empty((n, 3, SIZE, SIZE), np.uint8)
    spec = canvas.CanvasSpec(SIZE, N_CLUTTER, CLUTTER_SIZE)
    crops = np.lib.stride_tricks.as_strided(
        images.reshape(-1),
        (images.size - (CLUTTER_SIZE - 1) * 28 - CLUTTER_SIZE + 1, CLUTTER_SIZE, CLUTTER_SIZE),
        (1, 28, 1),
        writeable=False,
    )
    for first in range(0, n, CHUNK):
        rows = np.arange(first, min(first + CHUNK, n))
        layout = canvas.sample_layout(spec, rows, n, rng)
        out = np.empty((len(rows), 3, SIZE, SIZE), np.uint16)
        out[...] = _colours(rng, (len(rows),), bright=False)[:, :, None, None]
        for j in range(N_CLUTTER):
            start = layout.clutter_index[:, j] * 784 + layout.clutter_crop[:, j, 1] * 28 + layout.clutter_crop[:, j, 0]
            _blend(out, crops[start], layout.clutter_offset[:, j], _colours(rng, (len(rows),), bright=True))
        _blend(out, images[rows], layout.offset, _colours(rng, (len(rows),), bright=True))
        planes[rows] = out
    return planes


@functools.lru_cache(maxsize=3)
def _split(split: str, root, download: bool):
    from ram_env.sources import ImageData

    images, labels = datasets.load("MNIST", split, root, download)
    planes = make(images, zlib.crc32(f"ColourClutteredMNIST/{split}".encode()))
    return ImageData(planes, labels, datasets.N_CLASSES, "ColourClutteredMNIST")


def load(split: str = "train", data_dir=None, download: bool = True):
    """One split (MNIST's: train 55,000, val 5,000, test 10,000) as an :class:`~ram_env.sources.ImageData`."""
    return _split(split, datasets.resolve_data_dir(data_dir), download)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a sheet of coloured cluttered MNIST test images (PNG).")
    parser.add_argument("--out", default="colour_mnist.png", help="the PNG to write")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $RAM_DATA_DIR, ./data)")
    parser.add_argument("--count", type=int, default=32, help="images on the sheet")
    args = parser.parse_args(argv)
    from PIL import Image

    images, _ = datasets.load("MNIST", "test", args.data_dir)
    planes = make(images, zlib.crc32(b"ColourClutteredMNIST/test"))[: args.count]
    cols = 8
    rows = -(-len(planes) // cols)
    sheet = np.zeros((rows * (SIZE + 2), cols * (SIZE + 2), 3), np.uint8)
    for i, p in enumerate(planes):
        r, c = divmod(i, cols)
        sheet[r * (SIZE + 2) : r * (SIZE + 2) + SIZE, c * (SIZE + 2) : c * (SIZE + 2) + SIZE] = p.transpose(1, 2, 0)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
