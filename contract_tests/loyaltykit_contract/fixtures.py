"""pytest fixtures for an adapter's own flow tests, beside the contract suite.

Not registered as a plugin (installing the suite adds no fixtures to other test runs): an
adapter's ``tests/conftest.py`` defines a ``harness`` fixture (a fresh harness of its engine) and
imports these two, which then run every test that uses them once per facade kind::

    from loyaltykit_contract.fixtures import make_shop, shop  # noqa: F401 (pytest fixtures)

- ``make_shop(adapter=None, **facade_settings)`` makes a :class:`~loyaltykit.testing.FacadeDriver`
  over the harness (its own adapter by default, or one built on purpose); all are closed after
  the test.
- ``shop`` is ``make_shop()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loyaltykit.testing import FACADE_KINDS, EngineHarness, FacadeDriver, facade_drivers


@pytest.fixture(params=FACADE_KINDS)
def make_shop(request: pytest.FixtureRequest, harness: EngineHarness) -> Iterator[Callable[..., FacadeDriver]]:
    with facade_drivers(harness, request.param) as make:
        yield make


@pytest.fixture
def shop(make_shop: Callable[..., Any]) -> FacadeDriver:
    driver: FacadeDriver = make_shop()
    return driver
