"""Sync/async parity and the adapter's declaration.

Every scenario already runs through both facades; the parity scenario also checks that the two
facades give the same answer to the same question against the same engine.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest

from loyaltykit.adapter import validate_adapter_class
from loyaltykit.capabilities import Capability
from loyaltykit.models import ProductPrice, ProductQuery
from loyaltykit.testing import RuleSpec

from .requirements import requires
from .support import identifiable_customer


def quote_view(evaluation):
    """What a shop acts on, without per-call engine ids."""
    return {
        "subtotal": evaluation.subtotal,
        "total": evaluation.total,
        "discounts": sorted((d.target.value, d.amount.amount, d.line_id or "", d.code or "") for d in evaluation.discounts),
        "earn": sorted((e.kind.value, e.points or 0, e.money.amount if e.money else 0) for e in evaluation.earn),
        "wallet": sorted(o.id for o in evaluation.wallet),
        "codes": sorted((c.code, c.status.value, c.reason or "") for c in evaluation.codes),
        "messages": sorted(m.text for m in evaluation.messages),
        "free_shipping": evaluation.free_shipping,
    }


@requires()
def test_declaration_is_coherent(loyaltykit_target):
    """The adapter's name and capability declaration pass registration checks."""
    lk = loyaltykit_target
    validate_adapter_class(type(lk.adapter))
    assert lk.caps.validate_consistency() == []
    assert lk.adapter.name == lk.engine, f"harness engine {lk.engine!r} != adapter name {lk.adapter.name!r}"


@requires(Capability.EVALUATE)
@pytest.mark.loyaltykit_parity
def test_sync_and_async_facades_agree(loyaltykit_target):
    """The same identify and evaluate through the sync and the async facade give equal results."""
    lk = loyaltykit_target
    with contextlib.suppress(NotImplementedError):
        lk.harness.define_rule(RuleSpec(kind="order_percent", percent=Decimal(10), label="Parity"))
    customer = lk.customer()
    basket = lk.basket(customer_id=customer.id)
    sync, async_ = lk.call_on("sync", "evaluate", basket), lk.call_on("async", "evaluate", basket)
    assert not sync.degraded and not async_.degraded
    assert quote_view(sync) == quote_view(async_), f"sync {sync!r}\nasync {async_!r}"
    if lk.caps.identify_by:
        _, identifier = identifiable_customer(lk)
        assert lk.call_on("sync", "identify", identifier) == lk.call_on("async", "identify", identifier)


@requires(Capability.PRICE_PRODUCTS)
def test_price_products(loyaltykit_target):
    """Pricing products returns one price per product, in order, never above the list price."""
    lk = loyaltykit_target
    customer = lk.customer()
    query = ProductQuery(currency=lk.currency, customer_id=customer.id,
                         products=lk.lines(("SKU-A", "20.00", 1), ("SKU-B", "5.00", 1)))
    prices = lk.call("price_products", query)
    assert [p.sku for p in prices] == ["SKU-A", "SKU-B"]
    for price, line in zip(prices, query.products, strict=True):
        assert isinstance(price, ProductPrice)
        assert price.price == line.unit_price
        assert price.discounted_price <= price.price

@requires(Capability.PRICE_PRODUCTS, Capability.EVALUATE)
def test_price_products_applies_line_promotions(loyaltykit_target):
    """With 20 % off SKU-A, pricing gives SKU-A 16.00 instead of 20.00 (what evaluate charges for a
    basket of just that product) and leaves SKU-B at its price."""
    lk = loyaltykit_target
    lk.seed("define a line_percent rule", lk.harness.define_rule,
            RuleSpec(kind="line_percent", percent=Decimal(20), sku="SKU-A", label="Twenty on A"),
            capability=Capability.EVALUATE)
    customer = lk.customer()
    query = ProductQuery(currency=lk.currency, customer_id=customer.id,
                         products=lk.lines(("SKU-A", "20.00", 1), ("SKU-B", "5.00", 1)))
    prices = lk.call("price_products", query)
    assert [p.sku for p in prices] == ["SKU-A", "SKU-B"], prices
    on_a, on_b = prices
    assert on_a.price == lk.money("20.00") and on_a.discounted_price == lk.money("16.00"), on_a
    assert on_b.price == lk.money("5.00") and on_b.discounted_price == lk.money("5.00"), on_b
    basket = lk.basket(("SKU-A", "20.00", 1), customer_id=customer.id)
    evaluation = lk.call("evaluate", basket)
    assert not evaluation.degraded, evaluation.degraded_reason
    assert evaluation.total == on_a.discounted_price, (
        f"price_products says {on_a.discounted_price}, evaluate of that one product says {evaluation.total}"
    )

__all__ = [
    "test_declaration_is_coherent",
    "test_price_products",
    "test_price_products_applies_line_promotions",
    "test_sync_and_async_facades_agree",
]
