"""Wire models of the sidecar, derived from the kit's models (subclassed, never re-declared), so a
field added to the kit appears here and in the OpenAPI document on regeneration.

The only additions: a stable ``id`` on each effect of a quote (a cartridge uses it as its price
adjustment id), the outbox status of an order, the list wrapper of product prices and the problem
document of RFC 9457.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ..capabilities import Capabilities
from ..models import MAX_SYNC_PRODUCTS, Discount, Evaluation, FreeItem, Product, ProductPrice
from ..money import Money


class QuotedDiscount(Discount):
    id: str = Field(description="Stable id of this adjustment: the same effect keeps its id across quotes.")


class QuotedFreeItem(FreeItem):
    id: str = Field(description="Stable id of this free item: the same effect keeps its id across quotes.")


class Quote(Evaluation):
    """An evaluation whose discounts and free items carry stable ids."""

    discounts: tuple[QuotedDiscount, ...] = ()
    free_items: tuple[QuotedFreeItem, ...] = ()

    # The core's money arithmetic, on the wire: a platform that is not Python never sums a quote itself.
    # mypy does not model a decorator over @property; pydantic documents this ignore for computed fields.
    @computed_field(  # type: ignore[prop-decorator]
        description="Discounts on the goods (order and line), shipping discounts apart.")
    @property
    def discount_total(self) -> Money:
        return super().discount_total

    @computed_field(  # type: ignore[prop-decorator]
        description="Shipping the shopper pays: waived by free_shipping, less shipping discounts.")
    @property
    def shipping_total(self) -> Money:
        return super().shipping_total

    @computed_field(  # type: ignore[prop-decorator]
        description="What the order costs: goods after discounts plus shipping_total. The amount"
                    " due before any cashback or points pay part of it (a spend's amount_due).")
    @property
    def total(self) -> Money:
        return super().total

    @computed_field(  # type: ignore[prop-decorator]
        description="Points the points-priced lines (points_lines, sent at 0.00) cost together: paid by one"
                    " points spend naming those lines, never in money.")
    @property
    def points_due(self) -> Decimal:
        return super().points_due

    @classmethod
    def from_evaluation(cls, evaluation: Evaluation) -> Quote:
        data = evaluation.model_dump()
        data["discounts"] = _with_ids("d", data["discounts"], ("target", "line_id", "engine_id", "code", "label"))
        data["free_items"] = _with_ids("f", data["free_items"], ("sku", "engine_id", "label"))
        return cls.model_validate(data)


def _with_ids(prefix: str, effects: list[dict[str, Any]], identity: tuple[str, ...]) -> list[dict[str, Any]]:
    """Id from what the effect *is* (not its amount, which moves with quantities); a repeat of the
    same identity within one quote gets a counter so ids stay unique."""
    seen: dict[str, int] = {}
    for effect in effects:
        basis = "|".join(str(effect.get(name) or "") for name in identity)
        digest = hashlib.sha256(basis.encode()).hexdigest()[:16]
        count = seen.get(digest, 0)
        seen[digest] = count + 1
        effect["id"] = f"lk-{prefix}-{digest}" + (f"-{count}" if count else "")
    return effects


class ProductSync(BaseModel):
    """The body of a product sync: the products to send (the facade checks the batch size and SKUs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    products: list[Product] = Field(min_length=1, max_length=MAX_SYNC_PRODUCTS, description="Products to send, each SKU once.")


class ProductPrices(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prices: list[ProductPrice]


class OrderStatus(BaseModel):
    """Where an order stands in the export outbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_ref: str
    state: Literal["pending", "done", "rejected", "dead", "dropped"] = Field(
        description="pending: waiting for (or in) export; done: the engine recorded it; rejected: refused for"
                    " good; dead: failed too often (an operator retries it); dropped: cancelled before export.")
    queued: bool = Field(description="True when this request queued the order; false when it was already queued.")
    attempts: int
    last_status: str | None = None
    last_reason: str | None = None


class EngineCapabilities(Capabilities):
    """What the configured engine supports, and its name."""

    engine: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the kit's stable error ``code``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="A URI naming the problem type: urn:loyaltykit:error:<code>.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str = Field(description="The kit's stable error code (loyaltykit.errors).")
    retryable: bool
    request_id: str
    field: str | None = Field(default=None, description="The request field at fault, for invalid_request.")
    engine: str | None = None
    operation: str | None = None
    engine_code: str | None = None
    idempotency_key: str | None = Field(default=None, description="For outcome_unknown: retry with this key.")
    retry_after: int | None = Field(default=None, description="Seconds, as in the Retry-After header.")


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
