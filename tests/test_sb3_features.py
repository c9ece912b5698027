"""The glimpse-aware SB3 feature extractors: one glimpse network shared by every step, unfilled slots ignored."""

import numpy as np
import pytest
import torch

from agents.sb3_features import GlimpseHistoryExtractor, GlimpseStepExtractor
from ram_env.wrappers import history_space

SPACE = history_space((1, 1, 8, 8), 6, flatten=False)


def _history(n: int = 2, taken: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Histories with ``taken`` glimpses filled and the later slots zero, as GlimpseHistory lays them out."""
    g = torch.Generator().manual_seed(seed)
    glimpses = torch.rand(n, 6, 1, 1, 8, 8, generator=g)
    locations = torch.rand(n, 6, 2, generator=g) * 2 - 1
    glimpses[:, taken:] = 0.0
    locations[:, taken:] = 0.0
    step = torch.zeros(n, 6)
    step[:, taken - 1] = 1.0
    return {"glimpses": glimpses, "locations": locations, "step": step}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_same_glimpse_at_two_steps_gets_the_same_code():
    extractor = GlimpseHistoryExtractor(SPACE)
    obs = _history()
    obs["glimpses"][:, 3] = obs["glimpses"][:, 0]
    obs["locations"][:, 3] = obs["locations"][:, 0]
    codes = extractor.encode(obs["glimpses"], obs["locations"])
    torch.testing.assert_close(codes[:, 3], codes[:, 0])
    assert not torch.allclose(codes[:, 1], codes[:, 0])


def test_changing_one_steps_glimpse_changes_only_its_code():
    extractor = GlimpseHistoryExtractor(SPACE)
    obs = _history()
    before = extractor.encode(obs["glimpses"], obs["locations"])
    obs["glimpses"][:, 2] = torch.rand(2, 1, 1, 8, 8)
    after = extractor.encode(obs["glimpses"], obs["locations"])
    changed = (before - after).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False, False, True, False, False, False]


@pytest.mark.parametrize("pool", ["mean_max", "gru"])
def test_features_ignore_the_slots_not_yet_filled(pool):
    extractor = GlimpseHistoryExtractor(SPACE, pool=pool)
    obs = _history(taken=3)
    features = extractor(obs)
    assert features.shape == (2, extractor.features_dim)
    obs["glimpses"][:, 3:] = torch.rand(2, 3, 1, 1, 8, 8)  # content of later slots must not matter
    obs["locations"][:, 3:] = 0.5
    torch.testing.assert_close(extractor(obs), features)
    obs["glimpses"][:, 1] = torch.rand(2, 1, 1, 8, 8)  # a glimpse taken does
    assert not torch.allclose(extractor(obs), features)


def test_encoding_only_the_slots_taken_gives_the_masked_codes_of_every_slot():
    extractor = GlimpseHistoryExtractor(SPACE)
    obs = _history(n=3, taken=2)
    taken = torch.zeros(3, 6, dtype=torch.bool)
    taken[:, :2] = True
    every = extractor.encode(obs["glimpses"], obs["locations"])
    torch.testing.assert_close(extractor.encode(obs["glimpses"], obs["locations"], taken), every * taken[..., None])


def test_mean_max_features_do_not_depend_on_the_order_of_the_glimpses():
    extractor = GlimpseHistoryExtractor(SPACE, pool="mean_max")
    obs = _history(taken=4)
    order = torch.tensor([2, 0, 3, 1, 4, 5])
    shuffled = {"glimpses": obs["glimpses"][:, order], "locations": obs["locations"][:, order], "step": obs["step"]}
    torch.testing.assert_close(extractor(shuffled), extractor(obs))


def test_step_extractor_encodes_the_glimpse_and_its_location():
    import gymnasium as gym

    space = gym.spaces.Box(-1.0, 1.0, (66,), np.float32)
    extractor = GlimpseStepExtractor(space)
    obs = torch.rand(5, 66)
    torch.testing.assert_close(extractor(obs), extractor.encoder(obs[:, :64], obs[:, 64:]))
    moved = obs.clone()
    moved[:, 64:] = -obs[:, 64:]
    assert not torch.allclose(extractor(moved), extractor(obs))  # the location is part of the code
    assert extractor.features_dim == 256


def test_extractors_reject_the_wrong_space_and_pool():
    import gymnasium as gym

    with pytest.raises(ValueError, match="flatten=False"):
        GlimpseHistoryExtractor(gym.spaces.Box(0, 1, (10,)))
    with pytest.raises(ValueError, match="pool"):
        GlimpseHistoryExtractor(SPACE, pool="sum")
