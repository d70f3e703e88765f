"""The contract suite's own tests: it must fail for adapters broken on purpose, assert
NotSupported for undeclared capabilities, fail loudly without a harness, and stay out of the way
of other test runs. Each check runs the suite with pytester against a harness."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import loyaltykit_contract
from loyaltykit_contract.discovery import GROUP
from loyaltykit_contract.requirements import MARKER

HERE = Path(__file__).parent
# The reference adapter (plugins/reference) is the suite's known-good engine; its broken-on-purpose
# variants and its capability-less twin come with it.
REFERENCE = "loyaltykit_reference.testing:make_harness"
BARE = "loyaltykit_reference.testing:make_bare_harness"
SCENARIO_MODULES = ("evaluate", "export", "identify", "parity", "redeem", "resilience", "reverse", "spend")

# The suite needs no async test plugin (it drives the async facade itself).
BASE_ARGS = ("--pyargs", "loyaltykit_contract", "-p", "no:cacheprovider", "-p", "no:asyncio",
             "--import-mode=importlib", "--loyaltykit-facade=sync")


def _installed() -> list[tuple[str, str]]:
    """(engine, module:factory) of every installed harness (the reference adapter's included)."""
    return [(ep.name, ep.value) for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)]


def _variants() -> list:
    params = []
    for engine, spec in _installed():
        module, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        harness = factory()
        try:
            broken = getattr(harness, "broken_adapters", None)
            names = sorted(broken()) if callable(broken) else []
        finally:
            harness.close()
        params += [pytest.param(spec, name, id=f"{engine}-{name}") for name in names]
    return params


def test_the_reference_adapter_is_installed_with_its_broken_variants():
    assert ("reference", REFERENCE) in _installed()
    assert {p.values[1] for p in _variants() if p.values[0] == REFERENCE} == {
        "burns_twice_on_retry", "drops_idempotency_key", "swallows_error_body"}


@pytest.fixture
def suite(pytester):
    pytester.syspathinsert(HERE)

    def run(*args: str):
        return pytester.runpytest(*BASE_ARGS, *args)

    return run


def test_every_scenario_declares_its_requirements():
    """A scenario without a requires() declaration could silently pass on any adapter."""
    for name in SCENARIO_MODULES:
        module = importlib.import_module(f"loyaltykit_contract.test_{name}")
        for attr, fn in inspect.getmembers(module, inspect.isfunction):
            if not attr.startswith("test_") or fn.__module__ != module.__name__:
                continue
            marks = [m.name for m in getattr(fn, "pytestmark", [])]
            params = [
                m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"
                for p in m.args[1] if hasattr(p, "marks") and any(x.name == MARKER for x in p.marks)
            ]
            assert MARKER in marks or params, f"{module.__name__}.{attr} declares no capabilities"
        assert set(module.__all__) == {a for a in dir(module) if a.startswith("test_")}, module.__name__


def test_suite_passes_against_the_reference_adapter(suite):
    """The reference adapter is correct: the suite must pass it (no false failures)."""
    result = suite(f"--loyaltykit-harness={REFERENCE}")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert outcomes.get("passed", 0) > 40


@pytest.mark.parametrize(("spec", "variant"), _variants())
def test_suite_fails_for_a_broken_adapter(suite, spec, variant):
    """Every adapter a harness breaks on purpose makes the suite fail (in a scenario, not in setup)."""
    result = suite(f"--loyaltykit-harness={spec}", f"--loyaltykit-adapter-variant={variant}", "-x")
    outcomes = result.parseoutcomes()
    assert result.ret == 1, f"the suite did not fail against {variant}:\n{result.stdout.str()[-2000:]}"
    assert outcomes.get("failed", 0) >= 1 and not outcomes.get("errors"), result.stdout.str()[-2000:]


def test_undeclared_capabilities_get_not_supported_assertions(suite, tmp_path):
    """An adapter declaring nothing passes only by refusing everything: every scenario reports
    "not supported" (asserted NotSupportedError), none is skipped or silently passed."""
    matrix = tmp_path / "matrix.md"
    result = suite(f"--loyaltykit-harness={BARE}", f"--loyaltykit-matrix={matrix}", "-rs")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert "skipped" not in result.parseoutcomes(), result.stdout.str()[-2000:]
    rows = [line for line in matrix.read_text().splitlines() if line.startswith("| `test_")]
    assert rows
    for row in rows:
        _name, requires, cell = [c.strip() for c in row.strip("|").split("|")]
        expected = "passes" if requires == "-" else "not supported"
        assert cell == expected, row


def test_no_harness_fails_loudly(suite):
    """With no harness the suite fails with an explanation; it never passes or collects nothing."""
    result = suite("--loyaltykit-engine=no-such-engine", "-k", "test_identify_unknown_customer_is_none")
    assert result.ret not in (0, 5)
    result.stdout.fnmatch_lines(["*no engine harness found*"])


def test_plugin_leaves_other_test_runs_alone(pytester):
    """Installed, the plugin adds options and a fixture, and changes nothing else in a project."""
    pytester.makepyfile(test_other="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    assert loyaltykit_contract.__version__


def test_one_file_adoption(pytester):
    """An adapter adopts the suite in its own tests with one short file."""
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_contract=f'from loyaltykit_contract.suite import *  # noqa: F403\n\nLOYALTYKIT_HARNESS = "{REFERENCE}"\n'
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "-k", "redeem_valid or spend_partial",
                                "-v")
    result.assert_outcomes(passed=6)  # points spends: "not supported" by the reference engine
    result.stdout.fnmatch_lines(["*test_redeem_valid_voucher?reference-sync?*PASSED*",
                                 "*test_redeem_valid_voucher?reference-async?*PASSED*"])


def test_a_harness_missing_protocol_members_fails_naming_them(pytester):
    """The names come from ``EngineHarness`` itself: a harness without one of them is refused by name."""
    from loyaltykit_contract.target import protocol_members

    assert {"make_adapter", "balances", "inject", "engine", "currency"} <= set(protocol_members())
    pytester.makepyfile(
        half_harness=f"""
from {REFERENCE.split(':')[0]} import {REFERENCE.split(':')[1]} as make


class Half:
    def __init__(self):
        self.inner = make()

    def __getattr__(self, name):
        if name in ("balances", "inject"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def harness():
    return Half()
""",
        test_contract='from loyaltykit_contract.suite import *  # noqa: F403\n\nLOYALTYKIT_HARNESS = "half_harness:harness"\n',
    )
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "-k", "redeem_valid")
    assert result.ret not in (0, 5)
    assert "lacks ['balances', 'inject'] of the loyaltykit.testing.EngineHarness protocol" in result.stdout.str()
