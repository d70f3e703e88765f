"""Fixtures: the fake org and both facades (``shop``, ``make_shop``), so every scenario runs sync and async."""

from __future__ import annotations

import pytest

from loyaltykit_contract.fixtures import make_shop, shop  # noqa: F401 (pytest fixtures over `harness`)
from loyaltykit_salesforce.testing import SalesforceHarness


@pytest.fixture
def harness() -> SalesforceHarness:
    return SalesforceHarness()
