"""The harness toolkit of loyaltykit.testing, through the reference harness: what HarnessBase,
FakeEngine and FacadeDriver give every adapter's harness and flow tests."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import AsyncLoyalty, CashbackSpend, CustomerNotFoundError, Loyalty, Money
from loyaltykit.testing import (
    BROKEN_VARIANTS,
    FACADE_KINDS,
    FacadeDriver,
    FakeEngine,
    Fault,
    FaultKind,
    form_fields,
    open_facade,
)
from loyaltykit_reference.adapter import ReferenceAdapter
from loyaltykit_reference.testing import (
    BurnsTwiceOnRetry,
    DropsIdempotencyKey,
    ReferenceHarness,
    SwallowsErrorBody,
)


def test_make_adapter_reads_the_settings_when_called(harness):
    harness.settings["currency"] = "USD"
    assert harness.make_adapter().settings.currency == "USD"
    assert isinstance(harness.make_adapter(BurnsTwiceOnRetry), BurnsTwiceOnRetry)


def test_broken_adapters_are_one_subclass_per_variant(harness):
    broken = harness.broken_adapters()
    assert tuple(broken) == BROKEN_VARIANTS
    made = [broken[name]() for name in BROKEN_VARIANTS]
    assert [type(adapter) for adapter in made] == [BurnsTwiceOnRetry, DropsIdempotencyKey, SwallowsErrorBody]
    assert all(isinstance(adapter, ReferenceAdapter) for adapter in made)


def test_broken_variants_must_name_all_three():
    with pytest.raises(TypeError):
        ReferenceHarness.broken_variants(BurnsTwiceOnRetry, DropsIdempotencyKey)  # type: ignore[call-arg]


def test_amount_in_currency_holds_the_harness_currency_only(harness):
    assert harness.amount_in_currency(Money.of("2.50", "EUR")) == Decimal("2.50")
    assert harness.amount_in_currency(None) is None
    with pytest.raises(NotImplementedError, match="USD"):
        harness.amount_in_currency(Money.of("2.50", "USD"))


def test_engine_balances_are_money_in_the_harness_currency(harness):
    seeded = harness.create_customer(identifiers={"email": "ann@example.com"}, points=Decimal(7),
                                     cashback=Money.of("3.00", "EUR"))
    assert harness.balances(seeded.id).points == Decimal(7)
    assert harness.balances(seeded.id).cashback == Money.of("3.00", "EUR")
    assert harness.engine_balances(Decimal(1), None).cashback is None


def test_expire_token_voids_every_token_the_fake_issued(harness, shop):
    shop.identify(email="nobody@example.com")
    assert harness.fake.tokens
    harness.expire_token()
    assert not harness.fake.tokens
    shop.identify(email="nobody@example.com")
    assert harness.request_count("token") == 2


def test_a_fake_without_tokens_cannot_expire_them():
    with pytest.raises(NotImplementedError):
        FakeEngine().expire_tokens()


def test_bearer_token_honoured_only_for_an_issued_token(harness):
    harness.fake.tokens.add("t-1")

    def request(header: str) -> httpx.Request:
        return httpx.Request("GET", "https://reference.example/members", headers={"Authorization": header})
    assert harness.fake.bearer_token_honoured(request("Bearer t-1"))
    assert not harness.fake.bearer_token_honoured(request("Bearer t-2"))
    assert not harness.fake.bearer_token_honoured(request("Basic t-1"))


def test_form_fields_reads_a_form_body():
    request = httpx.Request("POST", "https://x.example/token", data={"grant_type": "client_credentials", "a": "1"})
    assert form_fields(request) == {"grant_type": "client_credentials", "a": "1"}


def test_close_drops_pending_faults(harness):
    harness.inject("identify", Fault(FaultKind.STATUS, times=3))
    harness.close()
    with Loyalty(adapter=harness.make_adapter(), transport=harness.sync_transport(), load_entry_points=False) as lk:
        assert lk.identify(email="nobody@example.com") is None


@pytest.mark.parametrize("kind", FACADE_KINDS)
def test_open_facade_builds_the_facade_of_its_kind(harness, kind):
    facade = open_facade(kind, harness)
    assert isinstance(facade, Loyalty if kind == "sync" else AsyncLoyalty)
    assert facade.settings.engine == "reference"
    with pytest.raises(ValueError, match="facade kind"):
        open_facade("parity", harness)


def test_facade_driver_calls_both_kinds_alike(harness, make_shop):
    seeded = harness.create_customer(identifiers={"email": "ann@example.com"})
    driver = make_shop()
    assert isinstance(driver, FacadeDriver) and driver.fake is harness.fake
    assert driver.identify(email="ann@example.com").id == seeded.id
    refused = driver.attempt("spend_cashback", CashbackSpend(customer_id="nobody", order_ref="o-1",
                                                           amount=Money.of("1.00", "EUR")))
    assert isinstance(refused, CustomerNotFoundError)
