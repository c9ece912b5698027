"""``python -m agents.tradeoff``: test error against glimpses from run folders, as evaluate.py scores them."""

import re

import pytest

import evaluate
from agents import tradeoff
from agents.training import loop
from agents.training.config import TrainConfig

SMALL = dict(batch_size=32, n_epochs=1, train_images=64, eval_batch=250, device="cpu", tensorboard=False)
SIZES = dict(glimpse_hidden=32, location_hidden=32, core_hidden=64)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    folders = {}
    for name, task in (("fixed-2", dict(n_glimpses=2)), ("stop", dict(answer="any_step", glimpse_cost=0.01))):
        folders[name] = tmp_path_factory.mktemp(name)
        config = TrainConfig(env_kwargs=task, model=SIZES, data_dir=data_dir, **SMALL)
        loop.train(config, folders[name])
    return folders


def errors_printed_by_evaluate(run, capsys) -> list[float]:
    assert evaluate.main([str(run), "--limit", "100"]) == 0
    return [float(e) for e in re.findall(r"^test error ([\d.]+)%", capsys.readouterr().out, re.M)]


def test_the_table_places_each_run_at_its_glimpses_with_evaluates_errors(runs, tmp_path, capsys):
    out = tmp_path / "plot.png"
    argv = [str(runs["fixed-2"]), str(runs["stop"]), "--paper", "exp1", "--limit", "100", "--out", str(out)]
    assert tradeoff.main(argv) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    fixed, stop = rows[1], rows[2]  # after the header: fixed budgets first
    assert fixed[1].strip() == "fixed, 2 glimpses" and float(fixed[2]) == 2.0 and float(fixed[4]) == 2.0
    assert stop[1].strip() == "stop, cost 0.01" and 1 <= float(stop[2]) <= 6
    for run, row in ((runs["fixed-2"], fixed), (runs["stop"], stop)):
        m10, m1 = errors_printed_by_evaluate(run, capsys)
        assert float(row[3].strip(" %")) == pytest.approx(m10) and float(row[5].strip(" %")) == pytest.approx(m1)
    assert out.stat().st_size > 10_000  # a PNG with the points drawn


def test_a_folder_without_a_checkpoint_is_one_clear_error(tmp_path, capsys):
    assert tradeoff.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"python -m agents.tradeoff: error: {tmp_path}: no best.pt there; give RAM run folders or their .pt checkpoints"
    ]


def point(kind, cost, glimpses, error, seed):
    return tradeoff.Point(f"runs/{kind}-{cost}/seed{seed}", kind, cost, 10, glimpses, error, glimpses, error + 1)


def test_the_figure_pools_seeds_of_one_setting_into_one_point_with_its_spread():
    points = [point("fixed", 0.0, 6.0, e, s) for s, e in enumerate((0.8, 0.9, 1.0))]
    points += [point("stop", 0.01, g, e, s) for s, (g, e) in enumerate(((3.4, 1.0), (3.6, 1.2)))]
    points += [point("stop", 0.005, 5.0, 0.95, 1)]
    ax = tradeoff.figure(points, None, "seeds").axes[0]
    (fixed, fixed_m1, stop, stop_m1) = ax.containers  # one errorbar line per kind and protocol
    assert list(fixed.lines[0].get_xdata()) == [6.0]
    assert list(fixed.lines[0].get_ydata()) == pytest.approx([0.9])
    assert list(fixed_m1.lines[0].get_ydata()) == pytest.approx([1.9])
    assert list(stop.lines[0].get_xdata()) == pytest.approx([3.5, 5.0])  # two settings: the seeds pooled, not joined
    assert list(stop.lines[0].get_ydata()) == pytest.approx([1.1, 0.95])
    y_bars = fixed.lines[2][-1].get_segments()  # the vertical bar: mean ± one standard deviation (0.1)
    assert [seg[:, 1].tolist() for seg in y_bars] == [pytest.approx([0.8, 1.0])]
