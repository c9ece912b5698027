"""Stable-Baselines3 / sb3-contrib on the RAM tasks: training runs, run folders, save/load, evaluation."""

import csv
import json
import re
import shutil
import warnings

import numpy as np
import pytest

from agents import sb3
from agents.runlog import METRICS, TAGS, read_metrics
from ram_env.vector import GlimpseVectorEnv

TASK = dict(dataset="MNIST", n_glimpses=6, patch_size=8, n_patches=1, scale=2)
SMALL = {  # short rollouts so a few thousand steps make several updates and checkpoints
    "ppo": dict(n_steps=64, batch_size=128, n_epochs=2),
    "a2c": dict(n_steps=12),
    "recurrent_ppo": dict(n_steps=64, batch_size=128, n_epochs=2),
}
SMALL.update({f"{algo}_glimpse": hp for algo, hp in SMALL.items()})


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(algo, run_dir, data_dir, steps=2048, **kw):
    kw.setdefault("hyperparameters", SMALL[algo])
    kw.setdefault("progress_bar", False)
    return sb3.train(
        algo, dict(TASK, data_dir=data_dir), run_dir, steps, n_envs=4, eval_episodes=64, eval_every=512, **kw
    )


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("ppo")
    return run_dir, _train("ppo", run_dir, data_dir, steps=2048)


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory, data_dir):
    pytest.importorskip("sb3_contrib")
    run_dir = tmp_path_factory.mktemp("recurrent_ppo")
    return run_dir, _train("recurrent_ppo", run_dir, data_dir, steps=1024)


def _single_env_correct(run_dir, split, data_dir, n):
    """The reference scoring: one deterministic episode at a time on the wrapped single env."""
    model, config = sb3.load(run_dir)
    scores = bool(config["hyperparameters"].get("observe_scores"))
    env = sb3.make_env(
        config["algo"], config["env"], split, data_dir, config["action"], config["grid"], observe_scores=scores
    )
    correct = np.zeros(n, dtype=bool)
    for i in range(n):
        obs, _ = env.reset(seed=0 if i == 0 else None, options={"index": i})
        state, start, terminated = None, np.ones(1, dtype=bool), False
        while not terminated:
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
            obs, _, terminated, _, info = env.step(action)
            start = np.zeros(1, dtype=bool)
        correct[i] = info["correct"]
    return correct


def test_ppo_run_folder_follows_the_runlog_contract(ppo_run):
    run_dir, summary = ppo_run
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "metrics.csv", "model.zip", "best.zip"}
    assert not list(run_dir.glob(".*tmp*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["learner"] == "sb3" and config["algo"] == "ppo" and config["total_timesteps"] == 2048
    assert config["env"]["dataset"] == "MNIST" and "split" not in config["env"]
    assert config["hyperparameters"]["gamma"] == 1.0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert tuple(rows[0]) == METRICS and len(rows) >= 3
    m = read_metrics(run_dir)
    assert m["epoch"] == list(range(1, len(rows) + 1))  # one evaluation round per row
    assert m["env_steps"] == sorted(m["env_steps"]) and m["env_steps"][-1] == summary["timesteps"] >= 2048
    # percents, not fractions: 64 val episodes make steps of 1/64 = 1.5625%
    assert all(0.0 <= v <= 100.0 and (v / 1.5625).is_integer() for v in m["val_error"])
    assert all(0.0 <= a <= 100.0 for a in m["train_accuracy"]) and max(m["train_accuracy"]) > 1.0
    assert all(lr == 3e-4 for lr in m["lr"]) and all(s > 0 for s in m["samples_per_second"])
    assert m["elapsed_seconds"] == sorted(m["elapsed_seconds"])
    assert summary["best_val_error"] == min(m["val_error"])


def test_tensorboard_events_hold_the_runlog_tags(ppo_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = ppo_run
    events = EventAccumulator(str(run_dir))
    events.Reload()
    # Every tag but the glimpses, which only the RAM agent that decides when to answer writes.
    assert set(TAGS.values()) - {TAGS["glimpses"]} <= set(events.Tags()["scalars"])
    m = read_metrics(run_dir)
    val = events.Scalars("val/error")
    assert [e.step for e in val] == m["env_steps"]
    np.testing.assert_allclose([e.value for e in val], m["val_error"], rtol=1e-5)
    sb3_events = EventAccumulator(str(run_dir / "sb3_0"))  # SB3's own logger, in the run folder
    sb3_events.Reload()
    assert "rollout/ep_rew_mean" in sb3_events.Tags()["scalars"]


def test_no_tensorboard_writes_no_events(tmp_path, data_dir):
    _train("ppo", tmp_path, data_dir, steps=256, tensorboard=False)
    assert (tmp_path / "metrics.csv").is_file() and not list(tmp_path.rglob("events.out.tfevents*"))


def test_save_load_predicts_identically(ppo_run, data_dir):
    from stable_baselines3 import PPO

    run_dir, _ = ppo_run
    model, config = sb3.load(run_dir / "model.zip")
    again = PPO.load(run_dir / "model.zip", device="cpu")
    env = sb3.make_env("ppo", config["env"], "val")
    obs = np.stack([env.reset(seed=i)[0] for i in range(16)])
    a, _ = model.predict(obs, deterministic=True)
    b, _ = again.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16, 12)


def test_batch_policy_matches_the_wrapped_env(ppo_run, data_dir):
    """The rendering policy on the vector env acts as the model does on the wrapped single env."""
    run_dir, _ = ppo_run
    model, config = sb3.load(run_dir)
    policy = sb3.batch_policy(run_dir)
    venv = GlimpseVectorEnv(num_envs=3, **dict(config["env"], split="test", start="center"))
    env = sb3.make_env("ppo", dict(config["env"], start="center"), "test")
    obs, _ = venv.reset(seed=0, options={"indices": np.array([7, 8, 9])})
    sobs, _ = env.reset(options={"index": 8})
    first = True
    for t in range(6):
        action = policy(obs, first)
        assert action["location"].shape == (3, 2) and action["location"].dtype == np.float32
        assert action["label"].shape == (3,) and action["label"].dtype == np.int64
        wrapped, _ = model.predict(sobs, deterministic=True)
        native = env.to_native(wrapped)
        np.testing.assert_allclose(action["location"][1], native["location"], atol=1e-6)
        if t == 5:
            assert action["label"][1] == native["label"]
        obs, _, terminated, _, _ = venv.step(action)
        sobs, *_ = env.step(wrapped)
        first = False
    assert terminated.all()


def test_evaluate_scores_one_episode_per_image(ppo_run, data_dir):
    run_dir, _ = ppo_run
    correct, config = sb3.evaluate(run_dir, split="test", data_dir=data_dir, limit=50)
    assert correct.shape == (50,) and correct.dtype == bool
    assert config["algo"] == "ppo"
    again, _ = sb3.evaluate(run_dir / "best.zip", split="test", data_dir=data_dir, limit=50)
    np.testing.assert_array_equal(correct, again)  # deterministic


@pytest.mark.parametrize("run", ["ppo_run", "recurrent_run"])
def test_batched_evaluate_equals_single_env_episodes(run, data_dir, request):
    """The vector env plays the same fixed test episodes: the same flags as one episode at a time."""
    run_dir, _ = request.getfixturevalue(run)
    reference = _single_env_correct(run_dir, "test", data_dir, 60)
    assert 0 < reference.sum() < 60  # a model that is neither always right nor always wrong
    for batch_size in (500, 7):  # one batch; several with a padded last one
        correct, _ = sb3.evaluate(run_dir, "test", data_dir, limit=60, batch_size=batch_size)
        np.testing.assert_array_equal(correct, reference)


def test_resume_continues_to_the_budget(ppo_run, data_dir, tmp_path):
    src, _ = ppo_run
    run_dir = tmp_path / "resumed"
    shutil.copytree(src, run_dir)
    before = read_metrics(run_dir)
    with open(run_dir / "metrics.csv", "a") as f:  # a round interrupted after its row, before model.zip
        f.write(f"{len(before['epoch']) + 1},{int(before['env_steps'][-1]) + 512},,,12.345,,,,1\n")
    summary = sb3.train("ppo", dict(TASK, data_dir=data_dir), run_dir, 3072, resume=True, progress_bar=False)
    assert summary["timesteps"] >= 3072
    m = read_metrics(run_dir)
    k = len(before["epoch"])
    assert m["epoch"] == list(range(1, len(m["epoch"]) + 1)) and len(m["epoch"]) > k
    assert m["val_error"][:k] == before["val_error"] and 12.345 not in m["val_error"]  # the stale row is gone
    assert m["env_steps"][-1] == summary["timesteps"] and m["env_steps"] == sorted(m["env_steps"])
    assert m["elapsed_seconds"][k] > before["elapsed_seconds"][-1]
    assert json.loads((run_dir / "config.json").read_text())["total_timesteps"] == 3072
    with pytest.raises(FileExistsError, match="resume"):
        sb3.train("ppo", dict(TASK, data_dir=data_dir), run_dir, 3072, progress_bar=False)
    with pytest.raises(ValueError, match="cannot resume"):
        sb3.train("a2c", dict(TASK, data_dir=data_dir), run_dir, 8192, resume=True, progress_bar=False)


def test_a2c_trains(tmp_path, data_dir):
    summary = _train("a2c", tmp_path, data_dir)
    assert summary["timesteps"] >= 2048
    m = read_metrics(tmp_path)
    assert m["env_steps"][-1] == summary["timesteps"] and len(m["epoch"]) >= 3
    assert all(lr == 1e-4 for lr in m["lr"])  # A2C's own learning rate, read from its optimizer
    assert (tmp_path / "best.zip").is_file() and (tmp_path / "model.zip").is_file()
    correct, config = sb3.evaluate(tmp_path, data_dir=data_dir, limit=20)
    assert correct.shape == (20,) and config["algo"] == "a2c"


def test_discrete_action_ppo_trains(tmp_path, data_dir):
    summary = _train("ppo", tmp_path, data_dir, steps=1024, action="discrete", grid=5)
    assert summary["timesteps"] >= 1024
    correct, config = sb3.evaluate(tmp_path, data_dir=data_dir, limit=10)
    assert correct.shape == (10,) and config["action"] == "discrete"
    out = sb3.batch_policy(tmp_path)(
        GlimpseVectorEnv(num_envs=2, **dict(TASK, data_dir=data_dir)).reset(seed=0)[0], True
    )
    assert set(np.unique(out["location"])) <= set(np.linspace(-1, 1, 5, dtype=np.float32))


def test_recurrent_ppo_round_trip(recurrent_run):
    from sb3_contrib import RecurrentPPO

    tmp_path, summary = recurrent_run
    assert summary["timesteps"] >= 1024
    model, config = sb3.load(tmp_path)
    again = RecurrentPPO.load(tmp_path / "best.zip", device="cpu")
    env = sb3.make_env("recurrent_ppo", config["env"], "val")
    obs = np.stack([env.reset(seed=i)[0] for i in range(4)])
    starts = np.ones(4, dtype=bool)
    a, state_a = model.predict(obs, episode_start=starts, deterministic=True)
    b, state_b = again.predict(obs, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state_a[0], state_b[0])
    # the rendering policy carries the LSTM state over a whole episode of the vector env
    venv = GlimpseVectorEnv(num_envs=2, **config["env"])
    policy = sb3.batch_policy(tmp_path)
    obs, _ = venv.reset(seed=0)
    for t in range(6):
        obs, _, terminated, _, _ = venv.step(policy(obs, t == 0))
    assert terminated.all()


def test_bad_inputs_raise_clear_errors(tmp_path, data_dir):
    with pytest.raises(ValueError, match="unknown algo 'dqn'"):
        sb3.train("dqn", TASK, tmp_path / "x", 100)
    with pytest.raises(ValueError, match="total_timesteps"):
        sb3.train("ppo", TASK, tmp_path / "x", 0)
    with pytest.raises(ValueError, match="unknown action"):
        sb3.train("ppo", TASK, tmp_path / "x", 100, action="grid")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        sb3.train("ppo", TASK, tmp_path / "x", 100, resume=True)
    with pytest.raises(FileNotFoundError, match="config.json"):
        sb3.evaluate(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"algo": "ppo", "env": TASK, "hyperparameters": {}}))
    with pytest.raises(FileNotFoundError, match="best.zip"):
        sb3.evaluate(tmp_path)
    (tmp_path / "best.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="best.zip is not a readable PPO model"):
        sb3.evaluate(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        sb3.evaluate(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"algo": "dqn", "env": TASK, "hyperparameters": {}}))
    with pytest.raises(ValueError, match="unknown algo"):
        sb3.batch_policy(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a run folder"):
        sb3.evaluate(tmp_path / "notes.txt")


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_vec_env_shows_what_the_wrappers_show(algo, data_dir):
    """The batched SB3 VecEnv used for training lays out observations exactly as make_env's wrappers."""
    from stable_baselines3.common.vec_env import VecEnv

    kw = dict(TASK, data_dir=data_dir, start="center")
    venv = sb3.make_vec_env(algo, kw, 3, seed=5)
    assert isinstance(venv, VecEnv) and venv.num_envs == 3
    single = sb3.make_env(algo, kw)
    assert venv.observation_space == single.observation_space and venv.action_space == single.action_space
    obs = venv.reset()
    sobs, _ = single.reset(options={"index": venv.reset_infos[1]["index"]})
    np.testing.assert_array_equal(obs[1], sobs)
    rng = np.random.default_rng(0)
    for t in range(6):
        actions = rng.uniform(-1, 1, (3, 12)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        sobs, sreward, terminated, _, sinfo = single.step(actions[1])
        if t < 5:
            np.testing.assert_array_equal(obs[1], sobs)
            assert not dones.any() and infos[1] == {}
    assert dones.all() and terminated and rewards[1] == sreward
    np.testing.assert_array_equal(infos[1]["terminal_observation"], sobs)
    assert infos[1]["correct"] == sinfo["correct"] and infos[1]["episode"]["r"] == sreward
    # new episodes have begun: the observation is the first one of the image each env now shows
    fresh, _ = single.reset(options={"index": venv.reset_infos[2]["index"]})
    np.testing.assert_array_equal(obs[2], fresh)
    assert obs.shape == (3,) + single.observation_space.shape
    venv.close()


def test_progress_bar_with_rich(tmp_path, data_dir):
    pytest.importorskip("rich")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        summary = _train("ppo", tmp_path, data_dir, steps=256, progress_bar=True)
    assert summary["timesteps"] >= 256


def test_a_run_budgeted_in_minutes_alone_has_no_step_budget_and_its_bar_counts_minutes(tmp_path, data_dir, capsys):
    summary = _train("ppo", tmp_path, data_dir, steps=None, progress_bar=True, max_minutes=0.03)
    bar = capsys.readouterr().err.split("\r")[-1]
    assert re.search(r"\| 0\.03/0\.03 min \[00:0\d, [\d,]+ env steps\]", bar), bar
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["total_timesteps"] is None and config["max_minutes"] == 0.03
    assert summary["timesteps"] > 0 and read_metrics(tmp_path)["elapsed_seconds"][-1] >= 1.8
    with pytest.raises(ValueError, match="total_timesteps may be left out .None. only with max_minutes"):
        _train("ppo", tmp_path / "other", data_dir, steps=None)


@pytest.mark.parametrize(
    "algo, reward",
    [("ppo_glimpse", "graded"), ("a2c_glimpse", "binary"), ("recurrent_ppo_glimpse", "graded"), ("ppo", "graded")],
)
def test_glimpse_algos_and_graded_reward_train_and_score(algo, reward, tmp_path, data_dir):
    if algo.startswith("recurrent"):
        pytest.importorskip("sb3_contrib")
    summary = _train(algo, tmp_path, data_dir, steps=512, reward=reward)
    assert summary["timesteps"] >= 512
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == algo and config["reward"] == reward
    assert config["wrappers"][-1] == ("GradedRewardWrapper" if reward == "graded" else "FlatActionWrapper")
    assert config["hyperparameters"]["gae_lambda"] == (0.5 if reward == "graded" else 1.0)  # shaping needs < 1
    observes = algo == "ppo_glimpse" and reward == "graded"  # the graded glimpse PPO sees its last scores
    assert ("LastScoresWrapper" in config["wrappers"]) == observes
    model, _ = sb3.load(tmp_path)
    assert ("scores" in getattr(model.observation_space, "spaces", {})) == observes
    extractor = type(model.policy.features_extractor).__name__
    expected = {"ppo": "FlattenExtractor", "recurrent_ppo_glimpse": "GlimpseStepExtractor"}
    assert extractor == expected.get(algo, "GlimpseHistoryExtractor")
    correct, _ = sb3.evaluate(tmp_path, data_dir=data_dir, limit=20)
    assert correct.shape == (20,) and correct.dtype == bool
    reference = _single_env_correct(tmp_path, "test", data_dir, 20)  # the wrapped single env agrees
    np.testing.assert_array_equal(correct, reference)


def test_observe_scores_on_a_flat_history_trains_and_scores_as_the_single_env(tmp_path, data_dir):
    _train("ppo", tmp_path, data_dir, steps=512, hyperparameters=dict(SMALL["ppo"], observe_scores=True))
    model, config = sb3.load(tmp_path)
    assert config["wrappers"] == ["GlimpseHistoryWrapper", "FlatActionWrapper", "LastScoresWrapper"]
    assert model.observation_space.shape == (6 * (64 + 3) + 10,)  # the history, then the 10 class scores
    correct, _ = sb3.evaluate(tmp_path, data_dir=data_dir, limit=20)
    np.testing.assert_array_equal(correct, _single_env_correct(tmp_path, "test", data_dir, 20))


def test_observe_scores_is_refused_where_no_scores_or_no_history(tmp_path, data_dir):
    with pytest.raises(ValueError, match="observe_scores .* needs action='box'"):
        _train("ppo", tmp_path, data_dir, steps=256, action="discrete", hyperparameters={"observe_scores": True})
    with pytest.raises(ValueError, match="not for recurrent_ppo_glimpse"):
        _train("recurrent_ppo_glimpse", tmp_path, data_dir, steps=256, hyperparameters={"observe_scores": True})


def test_unknown_reward_and_graded_discrete_are_refused(tmp_path, data_dir):
    with pytest.raises(ValueError, match="unknown reward 'dense'"):
        _train("ppo", tmp_path, data_dir, steps=256, reward="dense")
    with pytest.raises(ValueError, match="action='box'"):
        _train("ppo", tmp_path, data_dir, steps=256, reward="graded", action="discrete")


def test_score_log_std_init_sets_the_class_scores_noise_only(tmp_path, data_dir):
    hp = dict(SMALL["ppo"], score_log_std_init=-1.0)
    _train("ppo", tmp_path, data_dir, steps=128, hyperparameters=hp)
    assert json.loads((tmp_path / "config.json").read_text())["hyperparameters"]["score_log_std_init"] == -1.0
    from stable_baselines3 import PPO

    fresh = PPO.load(tmp_path / "model.zip", device="cpu").policy.log_std.detach().numpy()
    assert fresh.shape == (12,) and np.all(fresh[:2] < -2.5) and np.all(fresh[2:] > -1.5)


def test_max_minutes_stops_learning_once_the_budget_has_passed(tmp_path, data_dir):
    budget = 0.02  # minutes: 1.2 s, far short of the 10**7 steps asked for
    summary = _train("ppo", tmp_path, data_dir, steps=10**7, max_minutes=budget)
    m = read_metrics(tmp_path)
    assert summary["timesteps"] < 10**6 and m["env_steps"][-1] == summary["timesteps"]
    assert 60 * budget <= m["elapsed_seconds"][-1] < 60 * budget + 30  # it stopped soon after, with a last round
    assert json.loads((tmp_path / "config.json").read_text())["max_minutes"] == budget
    assert (tmp_path / "best.zip").is_file()
    # Resumed with its budget spent, the run learns nothing more and writes no row.
    again = _train("ppo", tmp_path, data_dir, steps=10**7, max_minutes=budget, resume=True)
    after = read_metrics(tmp_path)
    assert again["timesteps"] == summary["timesteps"]
    assert after["env_steps"] == m["env_steps"] and after["elapsed_seconds"] == m["elapsed_seconds"]


def test_linear_lr_schedule_falls_with_the_steps_or_the_minutes_whichever_runs_out_first():
    import pickle

    assert sb3.LinearToBudget(1e-3)(0.5) == pytest.approx(5e-4)  # no clock: SB3's progress in steps alone
    by_clock = sb3.LinearToBudget(1e-3, time_left=lambda: 0.25)
    assert by_clock(0.5) == pytest.approx(2.5e-4) and by_clock(0.1) == pytest.approx(1e-4)
    assert sb3.LinearToBudget(1e-3, time_left=lambda: 0.0)(0.9) == 0.0
    saved = pickle.loads(pickle.dumps(by_clock))  # a saved model keeps the rate, not the run's clock
    assert saved.time_left is None and saved(0.5) == pytest.approx(5e-4)


def test_run_callback_budget_left_counts_earlier_sessions(tmp_path):
    import time

    from agents.sb3_callbacks import RunCallback

    callback = RunCallback(tmp_path, "ppo", TASK, None, 512, None, elapsed=30.0, budget=120.0)
    callback.round_start = time.perf_counter()
    assert 0.74 < callback.budget_left() <= 0.75
    assert RunCallback(tmp_path, "ppo", TASK, None, 512, None).budget_left() == 1.0  # no budget


def test_linear_lr_schedule_anneals_a_training_run_to_zero(tmp_path, data_dir):
    hp = dict(SMALL["ppo"], learning_rate=1e-3, lr_schedule="linear")
    _train("ppo", tmp_path, data_dir, steps=2048, hyperparameters=hp)
    lr = read_metrics(tmp_path)["lr"]
    assert lr == sorted(lr, reverse=True) and lr[0] < 1e-3 and lr[-1] <= 1e-3 * 256 / 2048  # the last update's
    with pytest.raises(ValueError, match="unknown lr_schedule 'cosine'; choose one of constant, linear"):
        _train("ppo", tmp_path / "bad", data_dir, steps=256, hyperparameters=dict(lr_schedule="cosine"))


def test_ppo_glimpse_steps_64_envs_unless_told_and_the_others_8(tmp_path, data_dir):
    one_rollout = dict(n_steps=1, batch_size=8, n_epochs=1)
    for algo, envs in (("ppo_glimpse", 64), ("ppo", 8)):
        sb3.train(
            algo,
            dict(TASK, data_dir=data_dir),
            tmp_path / algo,
            1,
            eval_episodes=8,
            hyperparameters=one_rollout,
            progress_bar=False,
            tensorboard=False,
        )
        assert json.loads((tmp_path / algo / "config.json").read_text())["n_envs"] == envs
