"""RAM gym: the Recurrent Attention Model's glimpse task as Gymnasium environments.

Importing this package registers, for each of MNIST, FashionMNIST and KMNIST, the four tasks of
Mnih et al. (2014), each with the reference's settings as defaults (any keyword overrides them):

| id                               | canvas | clutter | glimpses | patch | patches | scale |
|----------------------------------|--------|---------|----------|-------|---------|-------|
| ``RAM/{D}-v0``                   | 28     | 0       | 6        | 8     | 1       | 2     |
| ``RAM/Translated{D}60-v0``       | 60     | 0       | 8        | 12    | 3       | 2     |
| ``RAM/Cluttered{D}60-v0``        | 60     | 4 of 8  | 8        | 12    | 3       | 2     |
| ``RAM/Cluttered{D}100-v0``       | 100    | 4 of 8  | 8        | 12    | 4       | 2     |

``gym.make(id)`` is one episode at a time (numpy); ``gym.make_vec(id, num_envs=N,
vectorization_mode="vector_entry_point")`` is N episodes as one numpy batch, and with ``device="cuda"`` (any
torch device) as torch tensors that never leave that device (see :class:`GlimpseVectorEnv`).

``RAM/Images-v0`` is the same task on images from anywhere: ``images=`` and ``labels=`` arrays (gray or colour,
any size), ``dataset=`` a torchvision set by name (``"CIFAR10"``, ``"SVHN"``, ``"STL10"``, the MNIST family ...),
``image_folder=`` a folder of images per class, or ``images=`` any dataset object of ``(image, label)`` items
(:mod:`ram_env.sources`); its glimpse settings default to what suits the image size (:func:`ram_env.sensor.suited`).

Every id also takes the task options, each off by default: ``answer="any_step"`` adds a ``stop`` action so the
agent may answer before ``n_glimpses``, and ``glimpse_cost`` charges each glimpse taken (see :class:`GlimpseEnv`);
``n_objects``, ``digit_size`` and ``target`` ask for several digits, other digit sizes, their sum or the digit's
centre (see :mod:`ram_env.answers`).

Two more per dataset follow the MNIST experiments of the Deep Recurrent Attention Model (Ba, Mnih and Kavukcuoglu,
2015, "Multiple Object Recognition with Visual Attention", arXiv:1412.7755): two digits on a 100x100 canvas,

| id                         | canvas | digits | answer                       | glimpses | patch | patches |
|----------------------------|--------|--------|------------------------------|----------|-------|---------|
| ``RAM/{D}Pairs100-v0``     | 100    | 2      | both labels, left to right   | 8        | 12    | 4       |
| ``RAM/{D}PairSum100-v0``   | 100    | 2      | their sum (``Discrete(19)``) | 8        | 12    | 4       |
"""

import gymnasium

from ram_env.datasets import DATASETS, DatasetError
from ram_env.env import GlimpseEnv
from ram_env.task import TaskConfig
from ram_env.vector import GlimpseVectorEnv

__all__ = ["DatasetError", "GlimpseEnv", "GlimpseVectorEnv", "TaskConfig", "TASKS", "DRAM_TASKS", "task_id"]

# name pattern -> task defaults; "{D}" is the dataset.
TASKS = {
    "{D}": dict(n_glimpses=6, patch_size=8, n_patches=1, scale=2),
    "Translated{D}60": dict(translated_size=60, n_glimpses=8, patch_size=12, n_patches=3, scale=2),
    "Cluttered{D}60": dict(
        translated_size=60, n_clutter=4, clutter_size=8, n_glimpses=8, patch_size=12, n_patches=3, scale=2
    ),
    "Cluttered{D}100": dict(
        translated_size=100, n_clutter=4, clutter_size=8, n_glimpses=8, patch_size=12, n_patches=4, scale=2
    ),
}


# DRAM's two MNIST experiments (arXiv:1412.7755): the labels of a pair, and the sum of a pair.
DRAM_TASKS = {
    "{D}Pairs100": dict(translated_size=100, n_objects=2, n_glimpses=8, patch_size=12, n_patches=4, scale=2),
    "{D}PairSum100": dict(
        translated_size=100, n_objects=2, target="sum", n_glimpses=8, patch_size=12, n_patches=4, scale=2
    ),
}


def task_id(pattern: str, dataset: str) -> str:
    """The registered id of a task pattern for a dataset, e.g. ``task_id("Cluttered{D}60", "KMNIST")``."""
    return f"RAM/{pattern.format(D=dataset)}-v0"


# Images from anywhere (see ram_env.sources and GlimpseEnv): the glimpse settings default to what suits the canvas.
if "RAM/Images-v0" not in gymnasium.registry:
    gymnasium.register(
        id="RAM/Images-v0",
        entry_point="ram_env.env:GlimpseEnv",
        vector_entry_point="ram_env.vector:GlimpseVectorEnv",
        kwargs=dict(dataset=None, n_glimpses=None, patch_size=None, n_patches=None, scale=None),
    )

for _dataset in DATASETS:
    for _pattern, _defaults in {**TASKS, **DRAM_TASKS}.items():
        _id = task_id(_pattern, _dataset)
        if _id not in gymnasium.registry:
            gymnasium.register(
                id=_id,
                entry_point="ram_env.env:GlimpseEnv",
                vector_entry_point="ram_env.vector:GlimpseVectorEnv",
                kwargs=dict(dataset=_dataset, **_defaults),
            )
