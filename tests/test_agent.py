"""The RAM agent: learning, loss terms, checkpoints, resume."""

import csv
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from agents import checkpoint, run_scores
from agents.ram import RAMConfig, RecurrentAttentionModel
from agents.runlog import METRICS, read_metrics
from agents.training import config as training_config
from agents.training import loop, rollout, run_state, scoring
from agents.training.config import TrainConfig, make_envs, make_model, resolve_env_device
from agents.training.policy import BatchPolicy
from ram_env import datasets


def small_config(data_dir, **overrides) -> TrainConfig:
    base = dict(
        batch_size=32,
        lr=2e-3,
        n_epochs=1,
        train_images=640,
        eval_batch=250,
        data_dir=data_dir,
        device="cpu",
        model=dict(glimpse_hidden=32, location_hidden=32, core_hidden=64),
        tensorboard=False,
    )
    return TrainConfig(**{**base, **overrides})


def val_accuracy(model, config, limit=500) -> float:
    envs = make_envs(config, "val", 250)
    return float(scoring.evaluate(model, envs, 1, "cpu", limit=limit).mean())


def test_learns_far_above_chance(data_dir, tmp_path):
    # 500 updates of 64 images, from 6,400 training images, with a small network: chance is 10%, 40% is far above.
    config = small_config(
        data_dir, train_images=6400, batch_size=64, n_epochs=5, lr=3e-3, lr_schedule="constant", tensorboard=True
    )
    run = tmp_path / "run"
    summary = loop.train(config, run)
    model, _ = run_state.load_model(run)
    assert val_accuracy(model, config) > 0.4
    assert summary["best_val_error"] < 60
    # The run folder's contract (agents/runlog.py): its columns, percents (30 is no fraction), env steps of
    # 6-glimpse episodes.
    assert (run / "metrics.csv").read_text().splitlines()[0].split(",") == list(METRICS)
    metrics = read_metrics(run)
    assert metrics["epoch"] == [1, 2, 3, 4, 5]
    assert metrics["env_steps"] == [6400 * 6 * k for k in range(1, 6)]
    assert metrics["train_accuracy"][-1] > 30 and min(metrics["val_error"]) == pytest.approx(summary["best_val_error"])
    assert all(s > 0 for s in metrics["samples_per_second"])
    assert list(run.glob("events.out.tfevents.*"))
    assert json.loads((run / "config.json").read_text())["learner"] == "ram"


def loss_terms(data_dir, **overrides):
    torch.manual_seed(0)
    config = small_config(data_dir, **overrides)
    envs = make_envs(config, "train", 16)
    envs.reset(seed=0)
    model = make_model(config, envs)
    terms, *_ = rollout.rollout_loss(model, envs, np.arange(16), config, "cpu")
    return model, terms


def touched(model, loss) -> set[str]:
    """Names of the submodules that receive a non-zero gradient from ``loss``."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("glimpse_net", ["mlp", "conv"])
def test_each_loss_term_trains_only_its_own_part(data_dir, glimpse_net):
    model, terms = loss_terms(
        data_dir, model=dict(glimpse_hidden=32, location_hidden=32, core_hidden=64, glimpse_net=glimpse_net)
    )
    assert set(terms) == {"action", "reinforce", "baseline"}
    # The baseline's squared error must not leak into the policy or the core.
    assert touched(model, terms["baseline"]) == {"baseliner"}
    # REINFORCE moves the location policy only: the sampled locations are detached actions.
    assert touched(model, terms["reinforce"]) == {"locator"}
    # Cross-entropy trains the classifier, core and glimpse network, never the policy or the baseline.
    assert touched(model, terms["action"]) == {"classifier", "core", "what", "where"}


def test_pure_rl_drops_cross_entropy_and_trains_the_classifier_by_reward(data_dir):
    model, terms = loss_terms(data_dir, classifier_loss="reinforce")
    assert set(terms) == {"reinforce", "baseline", "label_entropy"}
    assert {"classifier", "locator"} <= touched(model, terms["reinforce"])
    # The entropy bonus keeps the sampled label off one class: it reaches what computes the label, not the policy.
    assert touched(model, terms["label_entropy"]) == {"classifier", "core", "what", "where"}
    assert terms["label_entropy"].item() < 0


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (3, 1, 12, 12), (4, 1, 12, 12)])
def test_conv_glimpse_network_sees_every_scale(shape):
    model = RecurrentAttentionModel(RAMConfig(glimpse_shape=shape, glimpse_net="conv", core_hidden=64))
    assert isinstance(model.what[1], torch.nn.Conv2d) and model.what[1].in_channels == shape[0]
    glimpse = torch.zeros(2, *shape, requires_grad=True)
    h, _ = model(glimpse, torch.zeros(2, 2), model.initial_state(2))
    assert h.shape == (2, 64)
    h[0].sum().backward()
    # Every patch (scale) reaches the feature, and images in a batch stay apart.
    assert all(glimpse.grad[0, i].abs().sum() > 0 for i in range(shape[0]))
    assert glimpse.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="glimpse_net must be 'mlp' or 'conv', got 'cnn'"):
        RAMConfig(glimpse_net="cnn")


def test_conv_glimpse_network_keeps_the_flatten_linear_weight_layout():
    # The channels-last flatten must compute what nn.Flatten + nn.Linear compute with the same stored weights,
    # so that checkpoints of either layout mean the same network.
    torch.manual_seed(0)
    what = RecurrentAttentionModel(RAMConfig(glimpse_shape=(3, 1, 12, 12), glimpse_net="conv")).what
    reference = torch.nn.Sequential(*what[:5], torch.nn.Flatten(), torch.nn.Linear(64 * 6 * 6, 128), *what[7:])
    reference.load_state_dict(what.state_dict())
    glimpse = torch.rand(4, 3, 1, 12, 12)
    torch.testing.assert_close(what(glimpse), reference(glimpse), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_policy_reads_repeated_first_glimpses_once_with_the_same_result(core):
    torch.manual_seed(0)
    model = RecurrentAttentionModel(RAMConfig(glimpse_shape=(2, 1, 8, 8), core=core, core_hidden=32))
    first = {
        "glimpse": np.random.rand(2, 2, 1, 8, 8).astype(np.float32).repeat(3, 0),
        "location": np.random.uniform(-1, 1, (2, 2)).astype(np.float32).repeat(3, 0),
    }
    later = {
        "glimpse": np.random.rand(6, 2, 1, 8, 8).astype(np.float32),
        "location": np.random.uniform(-1, 1, (6, 2)).astype(np.float32),
    }
    once, every = BatchPolicy(model), BatchPolicy(model)
    for obs, repeats in ((first, 3), (later, 1)):  # the first step in blocks of 3, then the recurrent state goes on
        (a, logits_a), (b, logits_b) = once.act(obs, obs is first, repeats), every.act(obs, obs is first)
        np.testing.assert_allclose(a["location"], b["location"], atol=1e-6)
        torch.testing.assert_close(logits_a, logits_b)
        np.testing.assert_array_equal(a["label"], logits_a.argmax(-1).numpy())
    assert not torch.allclose(logits_a[0], logits_a[1])  # the later glimpses differ, so do the rollouts


def test_baseline_learns_to_predict_the_reward(data_dir):
    # Episodes that always end right: digits 0 and a classifier that always answers 0, so R = 1 at every step,
    # while a fresh baseline predicts about 0. Its own loss term alone must bring every b_t to R.
    torch.manual_seed(0)
    config = small_config(data_dir)
    _, labels = datasets.load("MNIST", "train", data_dir)
    zeros = np.flatnonzero(labels == 0)[:16]
    envs = make_envs(config, "train", 16)
    envs.reset(seed=0)
    model = make_model(config, envs)
    with torch.no_grad():
        model.classifier.bias[0] = 1e4
    optimizer = torch.optim.Adam(model.baseliner.parameters(), lr=0.05)
    errors = []
    for _ in range(100):
        terms, reward, _ = rollout.rollout_loss(model, envs, zeros, config, "cpu")
        assert reward == 1.0
        optimizer.zero_grad()
        terms["baseline"].backward()
        optimizer.step()
        errors.append(terms["baseline"].item())
    assert errors[0] > 0.5 and errors[-1] < 1e-3


def test_save_load_gives_identical_predictions(data_dir, tmp_path):
    config = small_config(data_dir)
    envs = make_envs(config, "val", 64)
    model = make_model(config, envs)
    checkpoint.save(
        tmp_path / "m.pt",
        {"config": asdict(config), "model_config": model.config.to_dict(), "model": model.state_dict()},
    )
    loaded, loaded_config = run_state.load_model(tmp_path / "m.pt")
    assert loaded_config == config
    obs, _ = envs.reset(seed=3, options={"indices": np.arange(64)})
    a, b = BatchPolicy(model), BatchPolicy(loaded)
    for t in range(config.model.get("n_glimpses", 6)):
        (act_a, logits_a), (act_b, logits_b) = a.act(obs, t == 0), b.act(obs, t == 0)
        np.testing.assert_array_equal(act_a["location"], act_b["location"])
        obs, *_ = envs.step(act_a)
    torch.testing.assert_close(logits_a, logits_b, rtol=0, atol=0)


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


@pytest.mark.parametrize(
    "device, env_device, precision",
    [
        ("cpu", "numpy", "fp32"),
        ("cpu", "cpu", "fp32"),
        ("cpu", "numpy", "bf16"),
        pytest.param("cuda", "numpy", "fp32", marks=GPU),
        pytest.param("cuda", "auto", "fp32", marks=GPU),
        pytest.param("cuda", "auto", "bf16", marks=GPU),
    ],
)
def test_resume_continues_the_same_run(data_dir, tmp_path, monkeypatch, device, env_device, precision):
    # env_device "cpu": episodes from the torch backend, whose generator last.pt must keep too.
    monkeypatch.setattr(training_config, "bf16_native", lambda device: True)  # bf16's path even on a CPU without it
    config = small_config(data_dir, n_epochs=2, device=device, env_device=env_device, precision=precision)
    loop.train(config, tmp_path / "straight")
    # The same run, stopped after its first epoch (a zero time budget) and resumed.
    loop.train(replace(config, max_minutes=1e-9), tmp_path / "stopped")
    assert checkpoint.load(tmp_path / "stopped", "last.pt")["epoch"] == 1
    loop.train(config, tmp_path / "stopped", resume=True)
    a, b = checkpoint.load(tmp_path / "straight", "last.pt"), checkpoint.load(tmp_path / "stopped", "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=0, atol=0)
        assert a["model"][name].dtype == torch.float32  # bf16 is the step's arithmetic, never the weights'
    assert (tmp_path / "straight" / "metrics.csv").read_text().count("\n") == (
        tmp_path / "stopped" / "metrics.csv"
    ).read_text().count("\n")


def test_bf16_falls_back_to_fp32_with_one_line_on_a_device_without_it(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training_config, "bf16_native", lambda device: False)
    loop.train(small_config(data_dir, n_epochs=1, precision="bf16"), tmp_path / "run")
    assert (
        "--precision bf16: this CPU (no AVX512-BF16 or AMX) has no bfloat16 arithmetic, so the network runs in fp32"
        in capsys.readouterr().out
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "fp32"
    # where the device has it, or does not say, the step keeps bf16
    for native in (True, None):
        monkeypatch.setattr(training_config, "bf16_native", lambda device, native=native: native)
        config = small_config(data_dir, precision="bf16")
        assert training_config.precision_on(config, torch.device("cpu")) == ("bf16", None)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_val_and_test_are_scored_in_the_runs_precision(data_dir, tmp_path, monkeypatch, precision):
    monkeypatch.setattr(training_config, "bf16_native", lambda device: True)
    under = []  # whether each scoring ran under bf16 autocast
    real_score = scoring.score

    def recording_score(*args, **kwargs):
        under.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return real_score(*args, **kwargs)

    monkeypatch.setattr(scoring, "score", recording_score)
    config = small_config(data_dir, n_epochs=1, precision=precision)
    loop.train(config, tmp_path / "run")  # val, through evaluate -> score
    run_scores.score_ram(tmp_path / "run", "test", None, 20, 2, 0, False, "cpu")  # evaluate.py's path
    assert len(under) == 3 and set(under) == {precision == "bf16"}


def test_a_bf16_run_resumed_without_bfloat16_says_why_in_one_line(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(training_config, "bf16_native", lambda device: True)
    config = small_config(data_dir, n_epochs=2, precision="bf16")
    loop.train(replace(config, max_minutes=1e-9), tmp_path / "run")
    monkeypatch.setattr(training_config, "bf16_native", lambda device: False)
    with pytest.raises(checkpoint.CheckpointError, match="trained in bf16 and this run would be fp32: resume it with"):
        loop.train(replace(config, precision="bf16"), tmp_path / "run", resume=True)


def test_bf16_native_reads_the_cpu_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(training_config, "CPUINFO", str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
    assert training_config.bf16_native(torch.device("cpu")) is False
    cpuinfo.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    assert training_config.bf16_native(torch.device("cpu")) is True
    cpuinfo.unlink()
    assert training_config.bf16_native(torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_evaluate_scores_the_same_on_the_gpu(data_dir):
    # Sampled locations come from a CPU generator, so a checkpoint scores the same wherever it runs.
    config = small_config(data_dir)
    envs = make_envs(config, "val", 500)
    model = make_model(config, envs)
    on_cpu = scoring.evaluate(model, envs, 10, "cpu", limit=500)
    on_gpu = scoring.evaluate(model.cuda(), envs, 10, "cuda", limit=500)
    np.testing.assert_array_equal(on_cpu, on_gpu)


def test_resume_extends_a_finished_run_along_the_longer_schedule(data_dir, tmp_path):
    config = small_config(data_dir, n_epochs=1)
    loop.train(config, tmp_path / "run")
    loop.train(replace(config, n_epochs=3), tmp_path / "run", resume=True)
    with open(tmp_path / "run" / "metrics.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]
    # Epoch 1 annealed to 0; the extension warms back up to where a 3-epoch cosine stands after 2 and 3.
    np.testing.assert_allclose(lrs, [0, config.lr * (1 + math.cos(2 * math.pi / 3)) / 2, 0], atol=1e-9)
    assert checkpoint.load(tmp_path / "run", "last.pt")["epoch"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["n_epochs"] == 3
    with pytest.raises(ValueError, match="n_epochs 2 is shorter than the run's 3"):
        loop.train(replace(config, n_epochs=2), tmp_path / "run", resume=True)


def test_resume_may_switch_val_rollouts_and_rescores_best(data_dir, tmp_path):
    config = small_config(data_dir)
    loop.train(config, tmp_path / "run")
    config = replace(config, n_epochs=2, val_rollouts=3)
    val_envs = make_envs(config, "val", 249)

    def score(path) -> float:
        return 100 * (1 - float(scoring.evaluate(run_state.load_model(path)[0], val_envs, 3).mean()))

    first = score(tmp_path / "run" / "best.pt")  # epoch 1, chosen on one rollout, scored as the resumed run will
    loop.train(config, tmp_path / "run", resume=True)
    second = score(tmp_path / "run" / "last.pt")
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert float(list(csv.DictReader(f))[-1]["val_error"]) == pytest.approx(second, abs=1e-4)
    state = checkpoint.load(tmp_path / "run", "last.pt")
    assert state["best_val_error"] == pytest.approx(min(first, second), abs=1e-4)
    assert state["best_epoch"] == (2 if second < first else 1)


def test_resume_refuses_another_config(data_dir, tmp_path):
    config = small_config(data_dir)
    loop.train(config, tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointError, match="another config"):
        loop.train(replace(config, lr=0.5), tmp_path / "run", resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="another config"):
        loop.train(replace(config, model={**config.model, "glimpse_net": "conv"}), tmp_path / "run", resume=True)
    # A network option left at its default is the same run as one saved before the option existed.
    loop.train(replace(config, n_epochs=2, model={**config.model, "glimpse_net": "mlp"}), tmp_path / "run", resume=True)
    assert checkpoint.load(tmp_path / "run", "last.pt")["epoch"] == 2


def test_bad_checkpoints_get_clear_errors(data_dir, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        run_state.load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="truncated or not a checkpoint"):
        run_state.load_model(tmp_path / "junk.pt")
    config = small_config(data_dir)
    model = make_model(config, make_envs(config, "val", 4))
    payload = {"config": asdict(config), "model_config": model.config.to_dict(), "model": model.state_dict()}
    checkpoint.save(tmp_path / "good.pt", payload)
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:2000])
    with pytest.raises(checkpoint.CheckpointError, match="truncated"):
        run_state.load_model(tmp_path / "truncated.pt")
    torch.save({"some": "dict"}, tmp_path / "foreign.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a RAM agent checkpoint"):
        run_state.load_model(tmp_path / "foreign.pt")
    checkpoint.save(
        tmp_path / "mismatch.pt", {**payload, "model_config": {**payload["model_config"], "core_hidden": 99}}
    )
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        run_state.load_model(tmp_path / "mismatch.pt")


def test_evaluate_visits_every_image_once_and_pads_the_last_chunk(data_dir):
    config = small_config(data_dir)
    envs = make_envs(config, "val", 64)
    model = make_model(config, envs)
    played, reset = [], envs.reset
    envs.reset = lambda **kwargs: played.append(kwargs["options"]["indices"]) or reset(**kwargs)
    correct = scoring.evaluate(model, envs, rollouts=4, limit=37)  # 16 images per chunk: 16 + 16 + 5
    assert correct.shape == (37,)
    # Each chunk fills all 64 envs with 4 rollouts of each image in a row; the last pads with its own images.
    assert [sorted(set(indices)) for indices in played] == [list(range(16)), list(range(16, 32)), list(range(32, 37))]
    assert all(len(indices) == 64 and (indices.reshape(16, 4) == indices[::4, None]).all() for indices in played)
    again = scoring.evaluate(model, envs, rollouts=4, limit=37)
    np.testing.assert_array_equal(correct, again)  # seeded sampling: the same score every time
    # Padding does not change a score: with one rollout (mean locations), images 0..36 score the same whether
    # they fill a padded chunk of 64 envs or share a full one with images 37..63.
    padded, full = scoring.evaluate(model, envs, limit=37), scoring.evaluate(model, envs, limit=64)
    np.testing.assert_array_equal(padded, full[:37])
    with pytest.raises(ValueError, match="3 rollouts need a multiple of 3 envs, got 64"):
        scoring.evaluate(model, envs, rollouts=3)


def test_error_interval():
    err, low, high = scoring.error_with_interval(np.array([True] * 99 + [False]))
    assert err == pytest.approx(1.0) and low < 1.0 < high and low > 0


def test_torch_backend_episodes_give_the_numpy_backends_losses_and_scores(data_dir):
    # Val episodes are the same on both backends, so the same network and noise give the same loss and scores.
    config = small_config(data_dir)
    numpy_envs, torch_envs = make_envs(config, "val", 64), make_envs(config, "val", 64, "cpu")
    assert isinstance(torch_envs.reset()[0]["glimpse"], torch.Tensor)
    model = make_model(config, numpy_envs)
    terms = []
    for envs in (numpy_envs, torch_envs):
        torch.manual_seed(0)
        losses, reward, _ = rollout.rollout_loss(model, envs, np.arange(64), config, torch.device("cpu"))
        terms.append({**{k: v.item() for k, v in losses.items()}, "reward": reward})
    assert terms[0] == pytest.approx(terms[1], abs=1e-6)
    on_numpy = scoring.evaluate(model, make_envs(config, "val", 500), 10, "cpu", limit=300)
    on_torch = scoring.evaluate(model, make_envs(config, "val", 500, "cpu"), 10, "cpu", limit=300)
    np.testing.assert_array_equal(on_numpy, on_torch)


def test_env_device_auto_keeps_numpy_on_a_cpu_and_follows_a_gpu():
    config = TrainConfig()
    assert resolve_env_device(config, torch.device("cpu")) is None
    assert resolve_env_device(config, torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert resolve_env_device(replace(config, env_device="numpy"), torch.device("cuda", 0)) is None
    assert resolve_env_device(replace(config, env_device="cpu"), torch.device("cpu")) == torch.device("cpu")


def test_scoring_refuses_a_network_of_other_classes_than_the_tasks_action_space(data_dir):
    config = TrainConfig(data_dir=data_dir)
    model = RecurrentAttentionModel(RAMConfig(n_classes=5))
    with pytest.raises(ValueError, match="answers 5 classes but the task's action space has 10 labels"):
        scoring.evaluate_split(model, config, "val", 1, limit=10)
