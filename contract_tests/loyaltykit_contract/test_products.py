"""Product sync: every SKU is held by the engine once, and syncing the same products again changes nothing."""

from __future__ import annotations

from loyaltykit.capabilities import Capability
from loyaltykit.models import Product, ProductSyncReport

from .requirements import requires


def _held(lk) -> list[str]:
    received = getattr(lk.harness, "products_received", None)
    if received is None:
        lk.not_applicable("the harness cannot read the engine's products back (products_received)")
    return received()


@requires(Capability.SYNC_PRODUCTS)
def test_sync_products(loyaltykit_target):
    """Three new products are synchronised: the report names each SKU, the engine holds each once."""
    lk = loyaltykit_target
    _held(lk)
    skus = [lk.ref("SKU") for _ in range(3)]
    products = [Product(sku=sku, name=f"Product {i}", category="coffee") for i, sku in enumerate(skus)]
    report = lk.call("sync_products", products)
    assert isinstance(report, ProductSyncReport), f"expected a ProductSyncReport, got {report!r}"
    assert sorted(report.synced) == sorted(skus), report
    assert report.batches >= 1
    held = _held(lk)
    assert all(held.count(sku) == 1 for sku in skus), f"engine holds {[held.count(s) for s in skus]} of each"


@requires(Capability.SYNC_PRODUCTS)
def test_sync_products_again_changes_nothing(loyaltykit_target):
    """Syncing the same products twice (an update) leaves one product per SKU on the engine."""
    lk = loyaltykit_target
    _held(lk)
    skus = [lk.ref("SKU") for _ in range(2)]
    products = [Product(sku=sku, name="Before") for sku in skus]
    lk.call("sync_products", products)
    report = lk.call("sync_products", [p.model_copy(update={"name": "After"}) for p in products])
    assert sorted(report.synced) == sorted(skus), report
    held = _held(lk)
    assert all(held.count(sku) == 1 for sku in skus), "a repeated sync created a second product"


__all__ = ["test_sync_products", "test_sync_products_again_changes_nothing"]
