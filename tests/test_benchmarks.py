"""The benchmark scripts are not run by the test suite (figures belong to an idle machine), but
they must not rot: each one compiles, and the runner lists every script that reports a row."""

import ast
import py_compile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_compiles(script, tmp_path):
    py_compile.compile(str(script), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_the_runner_and_the_readme_list_every_reporting_script():
    runner = (BENCHMARKS / "run_all.py").read_text()
    listed = {node.value for node in ast.walk(ast.parse(runner)) if isinstance(node, ast.Constant)
              and isinstance(node.value, str) and node.value.endswith(".py")}
    readme = (BENCHMARKS / "README.md").read_text()
    reporting = {s.name for s in SCRIPTS if not s.name.startswith("_")
                 and ("verdict(" in s.read_text() or "report(" in s.read_text())}
    assert reporting, "no script reports a row"
    assert reporting <= listed, f"not in run_all.py: {sorted(reporting - listed)}"
    assert all(f"`{name}`" in readme for name in reporting), "every reporting script is listed in the README"
