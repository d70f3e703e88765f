"""Fixtures: a fresh reference harness and both facades (``shop``, ``make_shop``) over it."""

from __future__ import annotations

import pytest

from loyaltykit_contract.fixtures import make_shop, shop  # noqa: F401 (pytest fixtures over `harness`)
from loyaltykit_reference.testing import ReferenceHarness


@pytest.fixture
def harness() -> ReferenceHarness:
    return ReferenceHarness()
