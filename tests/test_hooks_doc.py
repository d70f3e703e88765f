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
