"""Fixtures: the fake org and both facades, so every scenario runs sync and async."""

from __future__ import annotations

import pytest

from loyaltykit.testing import FACADE_KINDS, facade_drivers
from loyaltykit_salesforce.testing import SalesforceHarness


@pytest.fixture
def harness() -> SalesforceHarness:
    return SalesforceHarness()


@pytest.fixture(params=FACADE_KINDS)
def make_shop(request, harness):
    """``make_shop(adapter=None, **facade_settings)``: a facade driver over the harness."""
    with facade_drivers(harness, request.param) as make:
        yield make


@pytest.fixture
def shop(make_shop):
    return make_shop()
