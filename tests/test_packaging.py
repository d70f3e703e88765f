"""Every distribution is typed, licensed, versioned once and bounded; the core needs no test tools at run time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = sorted(p.parent for p in [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml"),
                                          ROOT / "contract_tests" / "pyproject.toml"])


def project(dist: Path) -> dict:
    return tomllib.loads((dist / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda p: p.name)
def test_typed_licensed_and_versioned_once(dist):
    data = project(dist)
    assert (dist / "LICENSE").is_file() and "MIT License" in (dist / "LICENSE").read_text()
    assert data["project"]["license"] == {"text": "MIT"}
    assert "version" not in data["project"] and data["project"]["dynamic"] == ["version"]
    init = dist / data["tool"]["hatch"]["version"]["path"]
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+"', init.read_text(), re.MULTILINE), init
    for package in data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert (dist / package / "py.typed").is_file(), f"{package} lacks py.typed"
    assert "Typing :: Typed" in data["project"]["classifiers"]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda p: p.name)
def test_runtime_dependencies_are_bounded(dist):
    for requirement in project(dist)["project"]["dependencies"]:
        assert "<" in requirement, f"{dist.name}: {requirement} has no upper bound"


def test_the_core_does_not_need_pytest_or_respx_at_run_time():
    data = project(ROOT)
    names = {re.split(r"[<>=\[ ]", r)[0] for r in data["project"]["dependencies"]}
    assert not names & {"pytest", "respx"}
    assert {re.split(r"[<>=]", r)[0] for r in data["project"]["optional-dependencies"]["testing"]} == {"pytest", "respx"}
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "loyaltykit").glob("*.py"))
    assert not re.search(r"^\s*(import|from) (pytest|respx)\b", source, re.MULTILINE)
