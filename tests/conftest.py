import os
from pathlib import Path

import pytest
import torch

# The networks under test are tiny: one thread is fastest, and several fight badly on a busy machine.
torch.set_num_threads(1)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

ROOT = Path(__file__).resolve().parents[1]
# Each test runs in its own folder (below): the data folder, ./data by default, is fixed before any test moves.
os.environ["RAM_DATA_DIR"] = str(Path(os.environ.get("RAM_DATA_DIR") or "data").expanduser().resolve())
# What Python and pytest write themselves, and the venvs: everything else in the tree must be left as it was.
NOT_WATCHED = {".git", ".venv", ".venv-rllib", "__pycache__", ".pytest_cache", ".ruff_cache", "build"}


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets: ``$RAM_DATA_DIR`` (``.ci/run`` points it at ``../shared/data``), as an absolute path."""
    from ram_env.datasets import resolve_data_dir

    path = resolve_data_dir().resolve()
    if not (path / "MNIST" / "raw").is_dir():
        pytest.fail(f"no MNIST in {path}: set RAM_DATA_DIR to the folder holding MNIST/raw/")
    return str(path)


@pytest.fixture
def call_main(capsys):
    """``call_main(main, argv)``: the exit status, stdout and stderr of a command's ``main(argv)``, whether it
    returns or exits."""

    def call(main, argv) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture(autouse=True)
def _in_own_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder: a default ``runs/`` or ``./data`` of the user's changes nothing."""
    monkeypatch.chdir(tmp_path)


def _tree() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file of the working tree, but what Python, pytest and the venvs write."""
    files = {}
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in NOT_WATCHED and not d.endswith(".egg-info")]
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            files[os.path.relpath(os.path.join(folder, name), ROOT)] = (stat.st_mtime_ns, stat.st_size)
    return files


def pytest_sessionstart(session):
    session.config._tree_before = _tree()


def pytest_sessionfinish(session, exitstatus):
    """A test that wrote into the working tree (``runs/``, ``data/``, anything) fails the run, naming the files."""
    before, after = session.config._tree_before, _tree()
    changed = sorted(path for path in after.keys() | before.keys() if before.get(path) != after.get(path))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        reporter.ensure_newline()
        reporter.write_line(
            f"FAILED: tests wrote into the working tree (each test works in its tmp_path): {shown}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
