"""The package as a user installs it: a wheel built from the repository, in a fresh virtual environment,
used from a folder outside the clone through its console scripts and Gymnasium's module prefix; and the same
wheel installed beside a user's own older torch, Gymnasium and numpy, which it must leave as they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "ram_env", "agents", "train_agent.py", "evaluate.py"]


def run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


# A user's own versions, each the lowest that setup.cfg allows and older than the lock's: torch 2.13.0 is the CPU
# build on this machine's disk (/work/.library/env/machines/python.md), the others come from PyPI.
USER_OWN = {"torch": "2.13.0", "gymnasium": "1.2.2", "numpy": "2.2.6"}
SMOKE = (
    "import gymnasium as gym; env = gym.make('ram_env:RAM/MNIST-v0', split='test'); obs, _ = env.reset(seed=0); "
    "steps = [env.step(env.action_space.sample()) for _ in range(6)]; "
    "assert steps[-1][2] and steps[-1][1] in (0.0, 1.0), steps[-1]; print('episode', obs['glimpse'].shape)"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:  # build from a copy: an in-tree build would leave build/ and egg-info in the clone
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)], tmp, env)
    return next((tmp / "dist").glob("ram_gym-*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv holding only the built wheel; its dependencies come from this interpreter's
    site-packages through a path file (installing torch again would take gigabytes and minutes)."""
    tmp = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], tmp, env)
    python = tmp / "venv" / "bin" / "python"
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env
    ).stdout.strip()
    # A plain path line: the clone's own editable install (a .pth of that folder) is not processed.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(pip + ["--python", str(python), "install", "--no-deps", str(wheel)], tmp, env)
    return tmp / "venv" / "bin"


def test_console_scripts_train_and_evaluate_from_outside_the_clone(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    data = ["--data-dir", os.environ.get("RAM_DATA_DIR", str(ROOT / "data"))]
    tiny = ["--n-epochs", "1", "--train-images", "512", "--batch-size", "256", "--no-gif", "--out", "run"]
    train = run([str(venv / "ram-train"), *tiny, *data], tmp_path, env)
    assert "test error of best.pt" in train.stdout
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "metrics.csv").is_file()
    evaluate = run([str(venv / "ram-evaluate"), "run", "--limit", "200", *data], tmp_path, env)
    assert "test error" in evaluate.stdout
    assert run([str(venv / "ram-play"), "--help"], tmp_path, env).stdout.startswith("usage: ram-play")


def test_module_prefix_id_works_in_a_fresh_interpreter_from_the_installed_package(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import gymnasium as gym, ram_env.env as m; "
        "env = gym.make('ram_env:RAM/MNIST-v0', split='test'); obs, _ = env.reset(seed=0); "
        "print(m.__file__, obs['glimpse'].shape)"
    )
    out = run([str(venv / "python"), "-c", code], tmp_path, env).stdout
    assert str(venv.parent) in out, f"ram_env was not imported from the installed wheel: {out}"
    assert "(1, 1, 8, 8)" in out


def test_wheel_installs_beside_a_users_older_torch_gymnasium_and_numpy_and_leaves_them(wheel, tmp_path):
    """``pip install <wheel>`` resolves against setup.cfg's ranges: the user's versions stay, the package works."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT")}
    run([sys.executable, "-m", "venv", str(tmp_path / "user")], tmp_path, env)
    python = str(tmp_path / "user" / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    run(pip + [f"{name}=={version}" for name, version in USER_OWN.items()], tmp_path, env)
    run(pip + [str(wheel)], tmp_path, env)
    show = "import importlib.metadata as m; print(*(m.version(n) for n in ['torch', 'gymnasium', 'numpy']))"
    versions = run([python, "-c", show], tmp_path, env).stdout.split()
    assert [v.split("+")[0] for v in versions] == list(USER_OWN.values()), "installing the wheel changed them"
    env["RAM_DATA_DIR"] = os.environ.get("RAM_DATA_DIR", str(ROOT / "data"))
    assert "episode (1, 1, 8, 8)" in run([python, "-c", SMOKE], tmp_path, env).stdout
