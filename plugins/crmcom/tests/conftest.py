"""Fixtures: the fake CRM.COM and both facades, so every flow scenario runs sync and async."""

from __future__ import annotations

import pytest
from loyaltykit_crmcom.testing import CrmcomHarness

from loyaltykit.testing import FACADE_KINDS, facade_drivers


@pytest.fixture
def harness() -> CrmcomHarness:
    return CrmcomHarness()


@pytest.fixture(params=FACADE_KINDS)
def make_shop(request, harness):
    """``make_shop(adapter=None)``: a facade driver over the harness."""
    with facade_drivers(harness, request.param) as make:
        yield make


@pytest.fixture
def shop(make_shop):
    return make_shop()
