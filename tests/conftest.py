"""Shared fixtures for the core's unit tests, on the reference adapter and its fake engine.

``helpers.py`` is loaded under a distinctive module name so it cannot collide with another
test directory's helpers when the whole repository's suites run in one session.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_HELPERS = "loyaltykit_core_test_helpers"
if _HELPERS not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_HELPERS, Path(__file__).with_name("helpers.py"))
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_HELPERS] = _module
    _spec.loader.exec_module(_module)

helpers = sys.modules[_HELPERS]

from loyaltykit import AsyncLoyalty, Loyalty  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """No LOYALTYKIT_* variable or loyaltykit.toml from the developer's machine leaks in."""
    for key in list(os.environ):
        if key.startswith("LOYALTYKIT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def engine():
    return helpers.seeded_engine()


fast_settings = helpers.fast_settings


def _facade_builder(facade_cls, engine, made):
    def make(adapter=None, *, transport="fake", plugins=(), **settings):
        chosen = engine.transport() if transport == "fake" else transport
        facade = facade_cls(fast_settings(**settings), adapter=adapter or helpers.reference_adapter(),
                            load_entry_points=False, plugins=plugins, transport=chosen)
        made.append(facade)
        return facade

    return make


@pytest.fixture
def make_sync(engine):
    made = []
    yield _facade_builder(Loyalty, engine, made)
    for facade in made:
        facade.close()


@pytest.fixture
async def make_async(engine):
    made = []
    yield _facade_builder(AsyncLoyalty, engine, made)
    for facade in made:
        await facade.aclose()
