"""Every hook in ``loyaltykit.hookspecs`` has a section in docs/hooks.md headed by its exact name and
signature, Datasette style: a level-2 heading line such as ``## loyaltykit_identify(identifier, ctx)``."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from loyaltykit import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"
HEADING = re.compile(r"^## (loyaltykit_\w+\(.*\))\s*$", re.MULTILINE)


def hook_signatures() -> dict[str, str]:
    marker = f"{hookspecs.PROJECT}_spec"  # set by pluggy's HookspecMarker
    return {
        name: f"{name}({', '.join(inspect.signature(fn).parameters)})"
        for name, fn in vars(hookspecs).items()
        if callable(fn) and hasattr(fn, marker)
    }


def documented() -> set[str]:
    return set(HEADING.findall(DOC.read_text(encoding="utf-8")))


def test_there_are_hooks_to_document():
    assert set(hook_signatures()) >= set(hookspecs.OPERATION_HOOKS)


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_hook_is_documented(name):
    assert DOC.is_file(), "docs/hooks.md is missing"
    expected = hook_signatures()[name]
    assert expected in documented(), f"docs/hooks.md needs a section headed '## {expected}'"


def test_no_section_documents_a_hook_that_does_not_exist():
    stale = documented() - set(hook_signatures().values())
    assert not stale, f"docs/hooks.md documents hooks that are not in hookspecs: {sorted(stale)}"


def test_every_hook_has_a_docstring_contract():
    for name in hook_signatures():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        for word in ("First result wins", ":return:", "Side effects", "Raises"):
            assert word in doc, f"{name}'s docstring lacks '{word}'"


def test_hooks_md_is_generated_from_the_docstrings():
    """One source: the hookspec docstrings. Regenerate with ``python -m loyaltykit.hookdoc > docs/hooks.md``."""
    from loyaltykit.hookdoc import render

    assert DOC.read_text(encoding="utf-8") == render(), "docs/hooks.md is stale: regenerate it"


def test_the_operation_table_drives_hooks_facades_and_capabilities():
    from loyaltykit import AsyncLoyalty, Capability, EngineAdapter, Loyalty
    from loyaltykit.adapter import _METHOD_FOR
    from loyaltykit.operations import OPERATIONS

    assert tuple(op.hook for op in OPERATIONS) == hookspecs.OPERATION_HOOKS
    for op in OPERATIONS:
        spec = getattr(hookspecs, op.hook)
        assert list(inspect.signature(spec).parameters) == [op.argument, "ctx"], op.hook
        impl = getattr(EngineAdapter, op.hook)
        assert list(inspect.signature(impl).parameters) == ["self", op.argument, "ctx"], op.hook
        assert callable(getattr(EngineAdapter, op.name)), op.name
        assert callable(getattr(Loyalty, op.facade_method)) and inspect.iscoroutinefunction(
            getattr(AsyncLoyalty, op.facade_method)), op.facade_method
        for cap in op.capabilities:
            assert _METHOD_FOR[Capability(cap)] == op.name
