"""The RAM agent on other answers: K heads read out in sequence, a point head, scoring, checkpoints, flags."""

import itertools
import json

import numpy as np
import pytest
import torch

from agents.ram import RAMConfig, Readout, RecurrentAttentionModel, readout_steps, sum_logits
from agents.training import loop, rollout, run_state, scoring
from agents.training.config import TrainConfig, make_envs, make_model
from agents.training.policy import BatchPolicy

PAIRS = dict(translated_size=60, n_objects=2, n_glimpses=4, patch_size=12, n_patches=2, digit_size=(14, 28))
WHERE = dict(translated_size=60, target="location", n_glimpses=3, patch_size=12, n_patches=3, digit_size=(20, 28))


def small_config(data_dir, env_kwargs, **overrides) -> TrainConfig:
    base = dict(
        batch_size=32,
        lr=3e-3,
        n_epochs=1,
        train_images=640,
        eval_batch=100,
        data_dir=data_dir,
        device="cpu",
        model=dict(glimpse_hidden=32, location_hidden=32, core_hidden=64),
        tensorboard=False,
        env_kwargs=env_kwargs,
        lr_schedule="constant",
    )
    return TrainConfig(**{**base, **overrides})


def test_heads_read_the_core_evenly_the_last_at_the_last_step():
    assert readout_steps(6, 1) == [5]
    assert readout_steps(8, 2) == [3, 7]
    assert readout_steps(6, 3) == [1, 3, 5]
    assert readout_steps(5, 2) == [2, 4]


def test_a_head_keeps_what_it_read_while_the_core_runs_on():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(RAMConfig(n_objects=2, n_glimpses=4, core_hidden=16))
    readout = Readout(model)
    hs = [torch.randn(3, 16) for _ in range(4)]
    for t, h in enumerate(hs):
        logits = readout.step(t, h)
    assert logits.shape == (3, 2, 10)
    assert torch.equal(logits[:, 0], model.classify(hs[1], 0))  # head 0 read step 1 (readout_steps(4, 2) == [1, 3])
    assert torch.equal(logits[:, 1], model.classify(hs[3], 1))
    assert readout.answer().shape == (3, 2)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sum_logits_are_the_log_probabilities_of_the_digits_sum(k):
    torch.manual_seed(k)
    digits = torch.randn(4, k, 10)
    p = digits.softmax(-1)
    expected = torch.zeros(4, 9 * k + 1)
    for combo in itertools.product(range(10), repeat=k):  # every way to draw the K digits
        expected[:, sum(combo)] += torch.stack([p[:, i, d] for i, d in enumerate(combo)]).prod(0)
    assert torch.allclose(sum_logits(digits).exp(), expected, atol=1e-6)


def test_a_sum_agent_answers_the_sum_of_digit_heads_read_in_sequence(data_dir):
    config = small_config(data_dir, dict(PAIRS, target="sum"))
    envs = make_envs(config, "train", 8)
    model = make_model(config, envs)
    c = model.config
    assert (c.summed, c.heads, c.head_classes, c.n_classes, c.n_objects) == (2, 2, 10, 19, 1)
    assert model.classifier.out_features == 20  # two digit heads, not one head of 19 sums
    terms, _, _ = rollout.rollout_loss(model, envs, np.arange(8), config, "cpu")
    sum(terms.values()).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    obs, _ = envs.reset(options={"indices": np.arange(8)})
    policy, hs = BatchPolicy(model), []
    for t in range(4):
        action, logits = policy.act(obs, first=t == 0)
        hs.append(policy.state)  # the RNN core's h after step t
        obs, *_ = envs.step(action)
    heads = torch.stack([model.head_logits(hs[1])[:, 0], model.head_logits(hs[3])[:, 1]], 1)  # steps [1, 3]
    assert logits.shape == (8, 19) and torch.allclose(logits, sum_logits(heads))
    assert action["label"].shape == (8,) and (action["label"] == logits.argmax(-1).numpy()).all()


def test_is_right_scores_whole_sequences_and_points_inside_the_box():
    logits = torch.zeros(2, 2, 10)
    logits[0, 0, 3] = logits[0, 1, 5] = 1  # answers (3, 5) and (0, 0)
    labels = np.array([[3, 5], [0, 1]])
    assert scoring.is_right(logits, labels, 1).tolist() == [True, False]
    points = torch.tensor([[0.1, 0.1], [0.3, 0.0], [0.9, 0.9], [0.9, 0.9]])  # two rollouts each
    truth = np.array([[0.2, 0.0, 0.15], [0.2, 0.0, 0.15], [0.0, 0.0, 0.5], [0.0, 0.0, 0.5]])
    assert scoring.is_right(points, truth, 2).tolist() == [True, False]  # the mean (0.2, 0.05) is inside


def test_pairs_agent_plays_k_labels_and_is_scored_per_sequence(data_dir):
    config = small_config(data_dir, PAIRS)
    envs = make_envs(config, "train", 8)
    model = make_model(config, envs)
    assert (model.config.n_objects, model.config.n_classes, model.config.n_glimpses) == (2, 10, 4)
    terms, reward, glimpses = rollout.rollout_loss(model, envs, np.arange(8), config, "cpu")
    assert set(terms) == {"reinforce", "baseline", "action"} and 0 <= reward <= 1 and glimpses == 4
    sum(terms.values()).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    obs, _ = envs.reset(options={"indices": np.arange(8)})
    action, logits = BatchPolicy(model).act(obs, first=True)
    assert action["label"].shape == (8, 2) and logits.shape == (8, 2, 10)
    val = make_envs(config, "val", 50)
    correct = scoring.evaluate(model, val, 1, "cpu", limit=100)
    assert correct.shape == (100,) and correct.mean() < 0.2  # untrained: both digits right is rare


def test_point_head_learns_where_the_digit_is(data_dir, tmp_path):
    # 60 updates of 32 images: the point head answers inside the digit's box far more often than the canvas's
    # centre does.
    config = small_config(data_dir, WHERE, train_images=1920, n_epochs=1, val_rollouts=1)
    loop.train(config, tmp_path / "run")
    model, _ = run_state.load_model(tmp_path / "run")
    assert model.config.point
    val = make_envs(config, "val", 100)
    learnt = scoring.evaluate(model, val, 1, "cpu", limit=500).mean()
    obs, _ = val.reset(options={"indices": np.arange(100)})
    for _ in range(3):
        _, _, _, _, info = val.step(
            {"location": np.zeros((100, 2), np.float32), "point": np.zeros((100, 2), np.float32)}
        )
    centre_guess = info["correct"].mean()
    assert learnt > centre_guess + 0.15, (learnt, centre_guess)


@pytest.mark.parametrize(
    "env_kwargs, overrides, match",
    [
        (dict(WHERE), dict(classifier_loss="reinforce"), "target='location' trains the point head"),
        (dict(PAIRS, answer="any_step"), {}, r"early answers \(answer='any_step'\) are for one label"),
        (dict(PAIRS, target="sum", answer="any_step"), {}, r"no stop head for K labels, a sum or a point"),
    ],
)
def test_unsupported_agents_are_refused_in_one_line(data_dir, env_kwargs, overrides, match):
    config = small_config(data_dir, env_kwargs, **overrides)
    with pytest.raises(ValueError, match=match):
        make_model(config, make_envs(config, "train", 2))


def test_scoring_refuses_a_network_for_another_answer(data_dir):
    config = small_config(data_dir, PAIRS)
    model = make_model(config, make_envs(config, "train", 2))
    other = small_config(data_dir, dict(PAIRS, target="sum"))
    with pytest.raises(
        ValueError, match=r"answers 2 label\(s\) of 10 classes but the task asks for 1 label\(s\) of 19"
    ):
        scoring.evaluate_split(model, other, "val", 1, limit=10)


# ------------------------------------------------------------------------------ the command lines
TINY = (
    "--n-epochs 1 --train-images 256 --batch-size 64 --glimpse-hidden 16 --location-hidden 16 --core-hidden 32 "
    "--test-rollouts 2 --no-gif --no-tensorboard --translated-size 60 --n-glimpses 3 --patch-size 12 --n-patches 2"
).split()


def test_train_pairs_then_score_at_other_digit_sizes(call_main, data_dir, tmp_path):
    import evaluate
    import train_agent

    run = tmp_path / "run"
    code, out, _ = call_main(train_agent.main, TINY + ["--n-objects", "2", "--digit-size", "14-28", "--out", run])
    assert code == 0 and "test error of best.pt" in out
    config = json.loads((run / "config.json").read_text())
    assert config["env_kwargs"]["n_objects"] == 2 and config["env_kwargs"]["digit_size"] == [14, 28]
    code, out, _ = call_main(evaluate.main, [run, "--limit", "20", "--digit-size", "14,28"])
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4  # two sizes, two protocols each
    assert "with 14 px digits, 2 rollout(s)" in lines[0] and "with 28 px digits, 1 rollout, sampled" in lines[3]


@pytest.mark.parametrize(
    "main, argv, needle",
    [
        ("train_agent", ["--digit-size", "42-14"], "--digit-size: must be a side in px (28) or a range lo-hi (14-42)"),
        ("train_agent", ["--target", "count"], "--target: invalid choice: 'count'"),
        ("train_agent", ["--n-objects", "3"], "a 28 px canvas is too small for 3 digits of up to 28 px"),
        ("evaluate", ["--digit-size", "big"], "--digit-size: must be digit sides in px, comma-separated"),
    ],
)
def test_bad_answer_flags_are_one_line(call_main, main, argv, needle, tmp_path):
    import evaluate
    import train_agent

    module = {"train_agent": train_agent, "evaluate": evaluate}[main]
    head = [tmp_path] if main == "evaluate" else ["--out", tmp_path / "run"]
    code, out, err = call_main(module.main, head + argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) <= 2  # argparse adds its usage line
