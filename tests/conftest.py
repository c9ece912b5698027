import os

import pytest
import torch

# The networks under test are tiny: one thread is fastest, and several fight badly on a busy machine.
torch.set_num_threads(1)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets: ``$RAM_DATA_DIR`` (``.ci/run`` points it at ``../shared/data``)."""
    from ram_env.datasets import resolve_data_dir

    path = resolve_data_dir()
    if not (path / "MNIST" / "raw").is_dir():
        pytest.fail(f"no MNIST in {path}: set RAM_DATA_DIR to the folder holding MNIST/raw/")
    return str(path)
