"""Fixtures: the fake CRM.COM and both facades (``shop``, ``make_shop``), so every flow scenario runs
sync and async."""

from __future__ import annotations

import pytest
from loyaltykit_crmcom.testing import CrmcomHarness

from loyaltykit_contract.fixtures import make_shop, shop  # noqa: F401 (pytest fixtures over `harness`)


@pytest.fixture
def harness() -> CrmcomHarness:
    return CrmcomHarness()
