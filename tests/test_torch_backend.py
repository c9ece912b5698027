"""The torch backend of GlimpseVectorEnv (``device=...``), pinned to the numpy backend.

On CPU here (``device="cpu"``); the same tests hold on any torch device: ``RAM_TEST_DEVICE=cuda:0`` runs them on a
GPU (``bench/gpu_check.sh``). Val/test episodes, glimpses, rewards
and infos equal the numpy backend's; train episodes are reproducible under a seed; bad input is refused with
the numpy backend's messages; Gymnasium's vector-env expectations hold.
"""

import os
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from ram_env import GlimpseEnv, GlimpseVectorEnv
from ram_env.backend import NUMPY, get_backend
from ram_env.canvas import CanvasSpec, draw, sample_layout
from ram_env.sensor import Retina

DEVICE = os.environ.get("RAM_TEST_DEVICE", "cpu")
TORCH = get_backend(DEVICE)
TASKS = ["RAM/MNIST-v0", "RAM/TranslatedMNIST60-v0", "RAM/ClutteredMNIST60-v0", "RAM/ClutteredMNIST100-v0"]
SMALL = dict(translated_size=60, n_clutter=4, clutter_size=8, n_glimpses=4, patch_size=12, n_patches=3, scale=2)


def make_pair(id_, num_envs, **kwargs):
    """The same task as a numpy vector env and a torch one."""
    make = dict(num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    return gym.make_vec(id_, **make), gym.make_vec(id_, device=DEVICE, **make)


def as_numpy(tree):
    return {k: v.cpu().numpy() for k, v in tree.items()} if isinstance(tree, dict) else tree.cpu().numpy()


def assert_same_step(numpy_out, torch_out, what):
    """Observations within 1e-5, and rewards, flags and infos equal; the torch side all tensors on DEVICE."""
    (obs_n, *rest_n, info_n), (obs_t, *rest_t, info_t) = numpy_out, torch_out
    for key in ("glimpse", "location"):
        assert isinstance(obs_t[key], torch.Tensor) and obs_t[key].device == torch.device(DEVICE)
        np.testing.assert_allclose(obs_t[key].cpu().numpy(), obs_n[key], rtol=0, atol=1e-5, err_msg=f"{what} {key}")
    for n, t in zip(rest_n, rest_t):  # rewards, terminated, truncated
        assert isinstance(t, torch.Tensor) and t.device == torch.device(DEVICE)
        assert t.cpu().numpy().dtype == n.dtype and np.array_equal(t.cpu().numpy(), n), what
    assert info_t.keys() == info_n.keys(), what
    for key in info_n:
        assert isinstance(info_t[key], torch.Tensor), (what, key)
        assert np.array_equal(info_t[key].cpu().numpy(), info_n[key]), (what, key)


# ------------------------------------------------------------------------------ the arithmetic, both backends
def test_canvases_block_sums_and_glimpses_match_numpy_on_random_layouts():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    spec = CanvasSpec(size=60, n_clutter=4, clutter_size=8)
    layout = sample_layout(spec, rng.integers(0, 30, 50), 30, rng)
    layout.offset[:2] = [[0, 0], [32, 32]]  # the digit in both far corners
    canvases = draw(spec, images, layout)
    drawn = draw(spec, TORCH.asarray(images), layout.to(TORCH), xp=TORCH)
    assert drawn.dtype == torch.uint8 and np.array_equal(drawn.cpu().numpy(), canvases)
    locations = rng.uniform(-1.3, 1.3, (50, 2)).astype(np.float32)  # some outside the canvas: zero padding
    locations[:4] = [[-1, -1], [1, 1], [0, 0], [-1, 1]]
    rows = rng.integers(0, 50, 50)
    for n_patches, scale in ((1, 2), (3, 2), (2, 3)):
        numpy_retina, torch_retina = Retina(60, 8, n_patches, scale), Retina(60, 8, n_patches, scale, TORCH)
        sums = numpy_retina.block_sums(canvases)
        torch_sums = torch_retina.block_sums(drawn)
        assert torch_sums.dtype == torch.int16 and np.array_equal(torch_sums.cpu().numpy(), sums)
        expect = numpy_retina(sums, locations, rows)
        got = torch_retina(torch_sums, TORCH.asarray(locations), rows)
        assert got.dtype == torch.float32 and np.array_equal(got.cpu().numpy(), expect)
        assert np.array_equal(torch_retina.top_left(locations).cpu().numpy(), numpy_retina.top_left(locations))


# ------------------------------------------------------------------------------ Gymnasium's expectations
def test_spaces_metadata_and_types(data_dir):
    numpy_env, torch_env = make_pair("RAM/ClutteredMNIST60-v0", 3)
    assert isinstance(torch_env.unwrapped, GlimpseVectorEnv) and torch_env.unwrapped.device == torch.device(DEVICE)
    assert numpy_env.unwrapped.device is None
    assert torch_env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert torch_env.single_observation_space == numpy_env.single_observation_space
    assert torch_env.single_action_space == numpy_env.single_action_space
    assert torch_env.observation_space == numpy_env.observation_space
    assert torch_env.action_space == numpy_env.action_space
    obs, info = torch_env.reset(seed=0)
    assert as_numpy(obs) in torch_env.observation_space
    assert info["index"].dtype == torch.int64 and info["_index"].dtype == torch.bool and info["_index"].all()
    for _ in range(8):
        obs, rewards, terminated, truncated, infos = torch_env.step(torch_env.action_space.sample())
        assert as_numpy(obs) in torch_env.observation_space
        assert obs["glimpse"].dtype == obs["location"].dtype == torch.float32
        assert rewards.dtype == torch.float64 and terminated.dtype == truncated.dtype == torch.bool
        assert rewards.shape == terminated.shape == truncated.shape == (3,)
    assert terminated.all() and set(infos) == {"label", "_label", "correct", "_correct", "index", "_index"} | {
        "glimpses",
        "_glimpses",
    }
    assert all(isinstance(v, torch.Tensor) for v in infos.values())


def test_the_data_set_on_the_device_is_uint8(data_dir):
    env = GlimpseVectorEnv(num_envs=2, split="val", device=DEVICE, data_dir=data_dir, **SMALL)
    core = env.task
    assert core.images.dtype == torch.uint8 and tuple(core.images.shape) == (5000, 1, 28, 28)
    assert core.images.device == torch.device(DEVICE) and core.sums.dtype == torch.int16


def test_train_episodes_are_reproducible_under_a_seed(data_dir):
    def run(seed):
        env = GlimpseVectorEnv(num_envs=5, device=DEVICE, data_dir=data_dir, **SMALL)
        obs, info = env.reset(seed=seed)
        out = [obs["glimpse"], obs["location"], info["index"]]
        rng = np.random.default_rng(0)
        for _ in range(11):  # across two autoresets
            action = {"location": rng.uniform(-1, 1, (5, 2)).astype(np.float32), "label": np.zeros(5, np.int64)}
            obs, rewards, *_ = env.step(action)
            out += [obs["glimpse"], obs["location"], rewards]
        env.reset()  # an unseeded reset continues the seeded stream
        return out + [env.task.canvases, env.task.index]

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[-1], c[-1]) and not torch.equal(a[1], c[1])


# ------------------------------------------------------------------------------ the same val/test episodes
@pytest.mark.parametrize("id_", TASKS)
def test_val_and_test_episodes_equal_the_numpy_backends(data_dir, id_):
    rng = np.random.default_rng(1)
    for split, n_images in (("val", 5000), ("test", 10000)):
        numpy_env, torch_env = make_pair(id_, 150, split=split)
        indices = rng.choice(n_images, 150, replace=False)
        indices[:2] = [0, n_images - 1]
        # different seeds on purpose: the val/test episodes do not depend on them
        numpy_out = numpy_env.reset(seed=0, options={"indices": indices})
        torch_out = torch_env.reset(seed=1, options={"indices": torch.as_tensor(indices)})
        assert_same_step((*numpy_out[:1], numpy_out[1]), (*torch_out[:1], torch_out[1]), f"{split} reset")
        assert np.array_equal(torch_env.unwrapped.task.canvases.cpu().numpy(), numpy_env.unwrapped.task.canvases)
        n_glimpses = numpy_env.unwrapped.config.n_glimpses
        for t in range(n_glimpses):
            location = rng.uniform(-1, 1, (150, 2)).astype(np.float32)
            location[:3] = [[-1, -1], [1, 1], [1, -1]]
            label = numpy_env.unwrapped.task.label.copy()
            label[::3] = (label[::3] + 1) % 10  # a third of the answers wrong
            action = {"location": location, "label": label}
            as_tensors = {k: torch.as_tensor(v) for k, v in action.items()}
            # the torch env takes tensors on odd steps, numpy arrays on even ones
            numpy_out, torch_out = numpy_env.step(action), torch_env.step(as_tensors if t % 2 else action)
            assert_same_step(numpy_out, torch_out, f"{split} step {t + 1}")
        assert torch_out[2].all() and torch_out[1].sum() > 0 and not torch_out[1].all()


def test_masked_resets_equal_the_numpy_backends(data_dir):
    numpy_env, torch_env = make_pair("RAM/ClutteredMNIST60-v0", 6, split="test", n_glimpses=3)
    for env in (numpy_env, torch_env):
        env.reset(seed=0, options={"indices": np.arange(6)})
        env.step({"location": np.full((6, 2), 0.5, np.float32), "label": np.zeros(6, np.int64)})
    mask = np.array([True, False, False, True, True, False])
    numpy_out = numpy_env.reset(options={"reset_mask": mask, "indices": [70, 71, 9999]})
    torch_out = torch_env.reset(options={"reset_mask": torch.as_tensor(mask), "indices": [70, 71, 9999]})
    assert_same_step(numpy_out, torch_out, "masked reset")
    action = {"location": np.full((6, 2), -0.25, np.float32), "label": np.arange(6) % 10}
    for t in range(2):  # envs 1, 2 and 5 end on the second step
        assert_same_step(numpy_env.step(action), torch_env.step(action), f"step {t + 1}")
    # The next step restarts envs 1, 2 and 5 alone, on random images (two random streams): the others end.
    (obs_n, rewards_n, terminated_n, _, info_n), (obs_t, rewards_t, terminated_t, _, info_t) = (
        numpy_env.step(action),
        torch_env.step(action),
    )
    assert terminated_n.tolist() == terminated_t.tolist() == mask.tolist()
    assert np.array_equal(rewards_t.cpu().numpy(), rewards_n)
    glimpses_t = obs_t["glimpse"].cpu().numpy()[mask]
    np.testing.assert_allclose(glimpses_t, obs_n["glimpse"][mask], rtol=0, atol=1e-5)  # as assert_same_step compares
    assert np.array_equal(info_t["label"].cpu().numpy()[mask], info_n["label"][mask])
    assert np.array_equal(info_t["correct"].cpu().numpy(), info_n["correct"])


# ------------------------------------------------------------------------------ bad input: numpy's messages
def error_of(fn) -> str:
    with pytest.raises((ValueError, RuntimeError, TypeError)) as caught:
        fn()
    return str(caught.value)


BAD_ACTIONS = [
    (np.zeros((4, 3)), np.zeros(4, int)),
    (np.zeros(2), np.zeros(4, int)),
    ([["a", "b"]] * 4, np.zeros(4, int)),
    (np.array([[0, 0], [0, np.nan], [0, 0], [0, 0]]), np.zeros(4, int)),
    (np.array([[0, 0], [2, 0], [0, 0], [0, -3]]), np.zeros(4, int)),
    (np.array([[0, 0], [2, 0], [0, 0], [0, -3]]), np.zeros(3, int)),
    (np.zeros((4, 2)), np.zeros(3, int)),
    (np.zeros((4, 2)), np.zeros(4)),
    (np.zeros((4, 2)), np.array([0, 10, 0, -1])),
    (np.zeros((4, 2)), np.zeros(4, bool)),
    (np.zeros((4, 2), complex), np.zeros(4, int)),
]


@pytest.fixture(scope="module")
def both(data_dir):
    return [GlimpseVectorEnv(num_envs=4, data_dir=data_dir, device=device, **SMALL) for device in (None, DEVICE)]


@pytest.mark.parametrize("location, label", BAD_ACTIONS)
def test_bad_actions_get_the_numpy_message(both, location, label):
    messages = []
    for env in both:
        env.reset(seed=0)
        messages.append(error_of(lambda: env.step({"location": location, "label": label})))
        assert (env.task.t == 1).all()  # nothing moved
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    "location, label, match",
    [
        (torch.tensor([[0.0, 0.0], [0.0, float("nan")], [0, 0], [0, 0]]), torch.zeros(4, dtype=torch.int64), "finite"),
        (torch.full((4, 2), 1.5), torch.zeros(4, dtype=torch.int64), r"must lie in \[-1, 1\]"),
        (torch.zeros(4, 2), torch.zeros(4), r"action\['label'\] must be integers"),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.bool), r"action\['label'\] must be integers"),
        (torch.zeros(4, 2), torch.tensor([0, 10, 0, -1]), r"got \[10, -1\] in envs \[1, 3\]"),
        (torch.zeros(4, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.int64), r"got shape \(2, 2\)"),
    ],
)
def test_bad_tensor_actions_are_refused(both, location, label, match):
    env = both[1]
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step({"location": location, "label": label})


@pytest.mark.parametrize(
    "call",
    [
        lambda env: env.reset(options={"reset_mask": [1, 0, 1, 0]}),
        lambda env: env.reset(options={"indices": [1, 2]}),
        lambda env: env.reset(options={"indices": [1, 2, 3, 4], "reset_mask": np.array([True, False, True, False])}),
        lambda env: env.reset(options={"indices": [0, 1, 2, 55000]}),
        lambda env: env.reset(options={"indices": [0.5, 1, 2, 3]}),
        lambda env: env.reset(options={"index": 3}),
        lambda env: env.reset(seed=1.5),
        lambda env: env.step({"location": np.zeros((4, 2))}),
        lambda env: env.step("left"),
    ],
)
def test_bad_calls_get_the_numpy_message(both, call):
    messages = [error_of(lambda: call(env)) for env in both]
    assert messages[0] == messages[1]


def test_step_before_reset_gets_the_numpy_message(data_dir):
    envs = [GlimpseVectorEnv(num_envs=2, data_dir=data_dir, device=device, **SMALL) for device in (None, DEVICE)]
    messages = [error_of(lambda: env.step({"location": np.zeros((2, 2)), "label": np.zeros(2, int)})) for env in envs]
    assert messages[0] == messages[1] == "step() called before reset()"


@pytest.mark.parametrize("device", ["nonsense", "cuda:99"])
def test_an_unusable_device_is_one_clear_error(data_dir, device):
    message = error_of(lambda: GlimpseVectorEnv(num_envs=2, data_dir=data_dir, device=device))
    assert re.fullmatch(rf"device '{device}' cannot be used by torch here \(.+\); pass 'cpu', .+", message)
    assert "\n" not in message


def test_the_single_env_has_no_device(data_dir):
    expected = (
        r"^GlimpseEnv.__init__\(\) got an unexpected keyword argument 'device'; device is an argument of the vector"
    )
    with pytest.raises(TypeError, match=expected):
        GlimpseEnv(data_dir=data_dir, device="cpu")


# ------------------------------------------------------------------------------ torch stays optional
def test_torch_is_imported_only_when_a_device_is_given(data_dir):
    script = (
        "import sys, numpy as np, gymnasium as gym, ram_env\n"
        "make = dict(num_envs=2, vectorization_mode='vector_entry_point', data_dir=sys.argv[1])\n"
        "env = gym.make_vec('RAM/MNIST-v0', **make)\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "assert 'torch' not in sys.modules, 'numpy backend imported torch'\n"
        "env = gym.make_vec('RAM/MNIST-v0', device='cpu', **make)\n"
        "assert 'torch' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script, data_dir], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_numpy_backend_is_the_default():
    assert get_backend(None) is NUMPY
