"""The RAM agent on a task with early answers (``answer="any_step"``): its halting policy, its losses, its scores."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents import runlog
from agents.ram import RAMConfig, RecurrentAttentionModel, to_tensor
from agents.training import loop, rollout, scoring
from agents.training.config import TrainConfig, make_envs, make_model
from agents.training.policy import BatchPolicy

COST = 0.125
ANYTIME = dict(answer="any_step", glimpse_cost=COST)
SIZES = dict(glimpse_hidden=32, location_hidden=32, core_hidden=64)


def config_of(data_dir, **overrides) -> TrainConfig:
    base = dict(batch_size=32, data_dir=data_dir, device="cpu", env_kwargs=ANYTIME, model=SIZES, tensorboard=False)
    return TrainConfig(**{**base, **overrides})


def halting_model(config, envs, stop_bias: float | None = None) -> RecurrentAttentionModel:
    torch.manual_seed(0)
    model = make_model(config, envs)
    if stop_bias is not None:  # the stop head's weights off: every step stops with probability sigmoid(stop_bias)
        with torch.no_grad():
            model.stopper.weight.zero_()
            model.stopper.bias.fill_(stop_bias)
    return model


def first_endings(envs) -> list:
    """Wrap ``envs.step`` to record each step's (terminated, reward, correct) on the host."""
    steps, step = [], envs.step

    def recording_step(action):
        out = step(action)
        info = out[4]
        steps.append((np.asarray(out[2]), np.asarray(out[1]), np.asarray(info.get("correct", np.zeros(envs.num_envs)))))
        return out

    envs.step = recording_step
    return steps


def touched(model, loss) -> set[str]:
    """Names of the submodules that receive a non-zero gradient from ``loss``."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_the_network_has_a_stop_head_only_on_a_task_with_early_answers(data_dir):
    config = config_of(data_dir)
    assert make_model(config, make_envs(config, "val", 2)).config.halting
    default = config_of(data_dir, env_kwargs={})
    model = make_model(default, make_envs(default, "val", 2))
    assert not model.config.halting and not hasattr(model, "stopper")
    # A checkpoint saved before the option existed has no "halting" key: it loads as a fixed-budget network.
    assert RAMConfig(**{k: v for k, v in model.config.to_dict().items() if k != "halting"}) == model.config


@pytest.mark.parametrize("classifier_loss", ["hybrid", "reinforce"])
def test_each_halting_loss_term_trains_only_its_own_part(data_dir, classifier_loss):
    config = config_of(data_dir, classifier_loss=classifier_loss)
    envs = make_envs(config, "train", 32)
    envs.reset(seed=0)
    model = halting_model(config, envs)
    with torch.no_grad():
        model.stopper.bias.fill_(0.0)  # stop half the time: episodes of every length
    terms, *_ = rollout.rollout_loss(model, envs, np.arange(32), config, "cpu")
    # The stop head learns from REINFORCE and its entropy bonus alone; the baseline from its squared error alone.
    assert touched(model, terms["baseline"]) == {"baseliner"}
    assert touched(model, terms["entropy"]) == {"stopper"}
    if classifier_loss == "hybrid":
        assert set(terms) == {"action", "reinforce", "baseline", "entropy"}
        assert touched(model, terms["reinforce"]) == {"locator", "stopper"}
        assert touched(model, terms["action"]) == {"classifier", "core", "what", "where"}
    else:  # pure RL: the sampled answers join the REINFORCE sum
        assert set(terms) == {"reinforce", "baseline", "entropy", "label_entropy"}
        assert touched(model, terms["reinforce"]) == {"locator", "stopper", "classifier", "core", "what", "where"}
        assert touched(model, terms["label_entropy"]) == {"classifier", "core", "what", "where"}


def test_an_agent_that_answers_at_once_is_paid_and_trained_for_one_glimpse(data_dir):
    config = config_of(data_dir)
    envs = make_envs(config, "val", 16)  # val: the episode of an image is fixed, so it can be replayed
    model = halting_model(config, envs, stop_bias=1e4)
    steps = first_endings(envs)
    terms, accuracy, glimpses = rollout.rollout_loss(model, envs, np.arange(16), config, "cpu")
    assert len(steps) == 1 and steps[0][0].all()  # every episode ended on step 1: the batch stops stepping
    assert glimpses == 1
    np.testing.assert_allclose(steps[0][1], steps[0][2] - COST)  # paid for one glimpse
    assert accuracy == pytest.approx(steps[0][2].mean())
    # The losses are those of the first glimpse alone.
    obs, _ = envs.reset(options={"indices": np.arange(16)})
    with torch.no_grad():
        h, _ = model(*to_tensor(obs, "cpu"), model.initial_state(16))
        labels = torch.as_tensor(envs.unwrapped.task.label)
        reward = torch.as_tensor(steps[0][1]).float()
        torch.testing.assert_close(terms["action"], F.cross_entropy(model.classify(h), labels))
        torch.testing.assert_close(terms["baseline"], F.mse_loss(model.baseline(h), reward))


@pytest.mark.parametrize("env_device", [None, "cpu"])
def test_episodes_count_only_until_their_first_answer(data_dir, env_device):
    config = config_of(data_dir)
    envs = make_envs(config, "train", 64, env_device)
    envs.reset(seed=1)
    model = halting_model(config, envs, stop_bias=0.0)  # answer now with probability 1/2
    with torch.no_grad():  # a constant baseline: its loss is then a plain function of each episode's (R, T)
        model.baseliner.weight.zero_()
        model.baseliner.bias.fill_(0.25)
    steps = first_endings(envs)
    terms, accuracy, mean_glimpses = rollout.rollout_loss(model, envs, np.arange(64), config, "cpu")
    n_glimpses = envs.unwrapped.config.n_glimpses
    assert len(steps) <= n_glimpses
    ended = np.array([terminated for terminated, _, _ in steps])  # (steps, envs)
    first = ended.argmax(0)  # each env's first ending; after it the env restarted on a new image
    assert ended.any(0).all() and (ended.sum(0) > 1).any()  # some restarted episodes ended again: masked out
    reward = np.array([steps[t][1][k] for k, t in enumerate(first)])
    correct = np.array([steps[t][2][k] for k, t in enumerate(first)])
    glimpses = first + 1
    assert set(glimpses) == set(range(1, n_glimpses + 1))  # every length
    np.testing.assert_allclose(reward, correct - COST * glimpses)
    assert accuracy == pytest.approx(correct.mean())
    assert mean_glimpses == pytest.approx(glimpses.mean())
    expected = sum(t * (r - 0.25) ** 2 for r, t in zip(reward, glimpses)) / glimpses.sum()
    assert terms["baseline"].item() == pytest.approx(expected, rel=1e-5)
    # The entropy bonus: log 2 per stop decision taken at p = 1/2 (none on the last step, where the env answers).
    decisions = np.minimum(glimpses, n_glimpses - 1)
    assert terms["entropy"].item() == pytest.approx(-config.stop_entropy * np.log(2) * decisions.mean(), rel=1e-5)


def test_scores_count_the_glimpses_of_each_first_answer(data_dir):
    config = config_of(data_dir)
    envs = make_envs(config, "val", 40)
    n_glimpses = envs.unwrapped.config.n_glimpses
    for bias, glimpses in ((1e4, 1), (-1e4, n_glimpses)):
        scores = scoring.score(halting_model(config, envs, stop_bias=bias), envs, rollouts=4, limit=25)
        assert scores.correct.shape == (25,) and scores.glimpses.shape == (25, 4)
        assert (scores.glimpses == glimpses).all()
    # A stop head that turns on what it has seen: mixed lengths, the same under a seed.
    model = halting_model(config, envs)
    with torch.no_grad():
        model.stopper.weight.normal_(0.0, 1.0)
        model.stopper.weight[:, -2:] = 0.0  # on h_t alone, not the classifier's confidence (alike on every image)
        model.stopper.bias.fill_(0.0)
    one, again = (scoring.score(model, envs, 1, limit=40, sample=True, seed=3) for _ in range(2))
    np.testing.assert_array_equal(one.glimpses, again.glimpses)
    assert len(np.unique(one.glimpses)) > 2
    # The stop flag is "answer if p > 1/2" in both protocols: at p = 1/2 it never answers early.
    for sample in (False, True):
        never = scoring.score(halting_model(config, envs, stop_bias=0.0), envs, 1, limit=40, sample=sample)
        assert (never.glimpses == n_glimpses).all()


def test_per_step_scores_end_with_the_answer_of_a_fixed_budget_agent(data_dir):
    config = config_of(data_dir, env_kwargs={})
    envs = make_envs(config, "val", 50)
    model = halting_model(config, envs)
    scores = scoring.score(model, envs, rollouts=2, limit=60, per_step=True)
    assert scores.per_step.shape == (6, 60)
    np.testing.assert_array_equal(scores.per_step[-1], scores.correct)
    assert (scores.glimpses == 6).all()
    with pytest.raises(ValueError, match="per-step scores are for a fixed-budget agent"):
        halting = config_of(data_dir)
        scoring.score(halting_model(halting, make_envs(halting, "val", 2)), envs, per_step=True)


def test_sampled_single_rollouts_differ_from_the_mean_locations(data_dir):
    config = config_of(data_dir, env_kwargs={})
    envs = make_envs(config, "val", 8)
    model = halting_model(config, envs)
    seen = []
    policy_act = BatchPolicy.act

    def act(self, obs, first, repeats=1):
        action, logits = policy_act(self, obs, first, repeats)
        seen.append(action["location"].copy())
        return action, logits

    BatchPolicy.act = act
    try:
        scoring.score(model, envs, 1, limit=8)
        scoring.score(model, envs, 1, limit=8, sample=True)
    finally:
        BatchPolicy.act = policy_act
    means, sampled = np.array(seen[:6]), np.array(seen[6:])
    assert not np.allclose(means, sampled)


def glimpses_after_training(data_dir, glimpse_cost: float, updates: int = 60) -> tuple[float, float]:
    """Mean glimpses on 200 val images of a new agent, then after ``updates`` updates of 64 images at this cost."""
    config = config_of(data_dir, batch_size=64, lr=1e-2, env_kwargs=dict(answer="any_step", glimpse_cost=glimpse_cost))
    envs = make_envs(config, "train", 64)
    envs.reset(seed=0)
    val = make_envs(config, "val", 200)
    model = halting_model(config, envs)
    before = scoring.score(model, val, limit=200).glimpses.mean()
    optimizer, scheduler = loop.make_optimizer(config, model, updates)
    rng = np.random.default_rng(0)
    for _ in range(updates):
        loop.update(model, optimizer, scheduler, envs, rng.integers(0, 5000, 64), config, "cpu")
    return before, scoring.score(model, val, limit=200).glimpses.mean()


def test_a_short_run_with_a_glimpse_cost_learns_to_answer_earlier(data_dir):
    before, with_cost = glimpses_after_training(data_dir, 0.2)
    assert before == 6  # a new agent looks at every glimpse, as the fixed-budget agent does
    _, free = glimpses_after_training(data_dir, 0.0)
    assert with_cost < 4 and with_cost < free  # paying per glimpse, it answers earlier than one that does not pay


def test_a_halting_run_logs_its_glimpses_and_counts_only_the_env_steps_taken(data_dir, tmp_path):
    config = config_of(data_dir, n_epochs=2, train_images=128, eval_batch=250)
    loop.train(config, tmp_path)
    metrics = runlog.read_metrics(tmp_path)
    glimpses, steps = np.array(metrics["glimpses"]), np.array(metrics["env_steps"])
    assert ((1 <= glimpses) & (glimpses < 6)).all()  # a new agent answers early now and then
    episodes = 128  # per epoch: 4 batches of 32
    np.testing.assert_allclose(np.diff(steps, prepend=0), episodes * glimpses, rtol=1e-4)
