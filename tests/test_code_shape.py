"""The project's size limits on its two packages: no file over 500 lines and no function over 60, so that each module
holds one concern and each function reads on one screen. A failure names every offender and its size."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "ram_env")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line name (N lines)`` for each function or method of ``path`` over the limit, from ``def`` to its end
    (docstring included, decorators not)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_packages_hold_python_files():
    assert {p.parent.relative_to(ROOT).parts[0] for p in sources()} == set(PACKAGES)


def test_no_file_is_over_500_lines():
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in sources()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not long, f"over {MAX_FILE_LINES} lines, split by concern: " + ", ".join(long)


def test_no_function_is_over_60_lines():
    long = [line for path in sources() for line in long_functions(path)]
    assert not long, f"over {MAX_FUNCTION_LINES} lines, split it: " + ", ".join(long)


def test_the_checker_names_an_offender(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "big.py").write_text(f"def short():\n    pass\n\n\ndef big():\n{body}\n")
    found = long_functions(tmp_path / "big.py", root=tmp_path)
    assert found == [f"big.py:5 big ({MAX_FUNCTION_LINES + 1} lines)"]
