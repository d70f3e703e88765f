"""What the adapter's flows need from a CRM.COM API generation, independent of its wire format.

The flows in ``adapter.py`` (reconcile, bounds, ordering of calls) talk to a :class:`Backend`; the
Gen A Web API backend is ``gen_a.GenABackend``. A Gen C (v2 platform) backend implements the same
protocol with its own transformers, and no caller of the flows changes.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from loyaltykit.flows import EngineRequest
from loyaltykit.http import EngineClientConfig
from loyaltykit.models import Customer, CustomerIdentifier, Line, Product

Sub = Generator[EngineRequest, httpx.Response, Any]


@dataclass(frozen=True)
class Preview:
    """A purchase preview: what the basket would award and what may be spent on it."""

    award: Decimal
    instant_spend: Decimal
    automatic_spend: Decimal
    additional_spend: Decimal
    minimum_spend: Decimal | None
    maximum_spend: Decimal | None
    wallet_balance: Decimal | None
    reduction_method: str | None
    allow_spending: bool
    participant_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PurchaseLine:
    product_code: str | None
    intended_product: str | None  # the POS code when the engine booked the line on its default product
    total: Decimal


@dataclass(frozen=True)
class Purchase:
    id: str
    number: str | None
    reference: str | None
    state: str | None
    awarded: Decimal
    spent: Decimal
    lines: tuple[PurchaseLine, ...] = ()
    external_reference: str | None = None  # the spend's reference when the spend travelled with it

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class SpendRequest:
    id: str
    number: str | None
    amount: Decimal
    state: str | None
    reference: str | None


class Backend(Protocol):
    """Sub-flows of one API generation. Each yields EngineRequests and returns neutral values."""

    def client_config(self) -> EngineClientConfig: ...

    def find_customer(self, identifier: CustomerIdentifier) -> Sub:
        """-> Customer | None"""

    def balance(self, customer_id: str) -> Sub:
        """-> Decimal (the wallet balance)"""

    def preview(self, customer_id: str, lines: tuple[Line, ...], reference: str) -> Sub:
        """-> Preview"""

    def find_purchase(self, reference: str) -> Sub:
        """-> Purchase | None"""

    def create_purchase(self, customer_id: str, lines: tuple[Line, ...], reference: str,
                        paid: Mapping[str, Decimal] | None = None) -> Sub:
        """-> Purchase; ``paid``: what each line (by id) cost after the order's discounts"""

    def create_purchase_with_spend(self, customer_id: str, lines: tuple[Line, ...], reference: str,
                                   amount: Decimal, spend_reference: str) -> Sub:
        """-> Purchase carrying the spend (the release's atomic or inline spend)"""

    def find_spend(self, reference: str) -> Sub:
        """-> SpendRequest | None"""

    def create_spend(self, customer_id: str, purchase: Purchase, amount: Decimal, reference: str) -> Sub:
        """-> SpendRequest"""

    def cancel_spend(self, spend_id: str, reference: str) -> Sub:
        """-> bool: cancelled now (False: it was cancelled already)"""

    def cancel_purchase(self, purchase: Purchase, reference: str) -> Sub:
        """-> bool: cancelled now (False: it was cancelled already)"""

    def sync_products(self, products: list[Product]) -> Sub:
        """-> None; one batch within the engine's limit"""

    def release_request(self) -> EngineRequest | None: ...


__all__ = ["Backend", "Customer", "Preview", "Purchase", "PurchaseLine", "SpendRequest"]
