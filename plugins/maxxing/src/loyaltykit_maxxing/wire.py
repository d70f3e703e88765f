"""MAXXING request and response bodies, as typed models: the one place wire shapes live.

Two kinds of shape are here:

* **Confirmed** (reference ``maxxing.md`` §1.2): ``getCustomerByCardKey`` takes
  ``{"storeChain", "card_key"}`` and answers ``{"customer": {"cust_id", "card_key",
  "account_key", ...}}``. These are exact.
* **UNCONFIRMED** (everything else, §1.3): MAXXING publishes no basket, voucher, cashback or
  transaction bodies. The shapes below are the documented default the fake engine speaks. An
  integrator with MAXXING's partner documentation changes the field names here (aliases) and the
  operation paths in the settings; the flows and the mapping in ``transformers.py`` use the
  Python attribute names and do not change.

Money travels as JSON numbers parsed to ``Decimal`` (never float); currency as ISO 4217 codes.
Unknown answer fields are kept (``extra="allow"``) so nothing the engine says is silently lost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WireRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def body(self) -> dict[str, Any]:
        """The JSON body: wire names, no ``None`` fields, Decimals kept for the Decimal encoder."""
        return self.model_dump(by_alias=True, exclude_none=True)


class WireAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


def _text(value: Any) -> Any:
    # Ids may come back as numbers; the kit addresses everything by text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# ---------------------------------------------------------------------------------------------
# Errors (UNCONFIRMED envelope): {"errorCode": "...", "errorMessage": "..."}, HTTP 200 or 4xx
# ---------------------------------------------------------------------------------------------


class ErrorAnswer(WireAnswer):
    error_code: str = Field(alias="errorCode")
    error_message: str | None = Field(default=None, alias="errorMessage")


ERROR_CODE_KEY = "errorCode"


# ---------------------------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------------------------


class CardLookupRequest(WireRequest):
    """CONFIRMED: CustomerInformationServer/getCustomerByCardKey."""

    store_chain: str = Field(alias="storeChain")
    card_key: str


class CustomerRecord(WireAnswer):
    """CONFIRMED keys ``cust_id``, ``card_key``, ``account_key``; ``email`` is UNCONFIRMED."""

    cust_id: str
    card_key: str | None = None
    account_key: str | None = None
    email: str | None = Field(default=None, repr=False)

    _ids = field_validator("cust_id", "card_key", "account_key", mode="before")(_text)


class CustomerAnswer(WireAnswer):
    """CONFIRMED: ``{"customer": {...}}``. No customer (unknown card) is UNCONFIRMED: assumed
    ``customer`` absent or null, or the error code ``CUSTOMER_NOT_FOUND``/``CARD_NOT_FOUND``."""

    customer: CustomerRecord | None = None


class CustomerSearchRequest(WireRequest):
    """getCustomers is confirmed by name (find customers by e-mail); its body is UNCONFIRMED."""

    store_chain: str = Field(alias="storeChain")
    email: str


class CustomerSearchAnswer(WireAnswer):
    customers: list[CustomerRecord] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Balances (UNCONFIRMED; held on the customer's account, reference §1.2)
# ---------------------------------------------------------------------------------------------


class BalancesRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    cust_id: str


class BalanceEntry(WireAnswer):
    type: str  # "CASHBACK" (money) or "POINTS"
    amount: Decimal
    currency: str | None = None


class BalancesAnswer(WireAnswer):
    account_key: str | None = None
    balances: list[BalanceEntry] = Field(default_factory=list)


CASHBACK = "CASHBACK"
POINTS = "POINTS"


# ---------------------------------------------------------------------------------------------
# Baskets, computation and product prices (UNCONFIRMED)
# ---------------------------------------------------------------------------------------------


class WireLine(WireRequest):
    line_id: str
    item_code: str
    quantity: Decimal
    unit_price: Decimal
    category: str | None = None


class ComputeRequest(WireRequest):
    """A basket computed without effect (``simulation`` true): discounts, codes, messages, earn."""

    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    cust_id: str | None = None
    currency: str
    lines: list[WireLine]
    shipping: Decimal | None = None
    codes: list[str] = Field(default_factory=list)
    simulation: bool = True


class WireDiscount(WireAnswer):
    level: str  # "ORDER", "LINE" or "SHIPPING"; anything else is kept as unmapped
    amount: Decimal
    line_id: str | None = None
    percent: Decimal | None = None
    promo_id: str | None = None
    label: str | None = None
    code: str | None = None


class WireCodeResult(WireAnswer):
    code: str
    status: str  # "ACCEPTED" or "REJECTED"
    reason_code: str | None = None  # an error-table code when rejected
    message: str | None = None


class WireMessage(WireAnswer):
    text: str
    type: str | None = None  # "INFO", "PROMOTION" or "WARNING"


class WireReward(WireAnswer):
    type: str  # "CASHBACK" or "POINTS"
    amount: Decimal
    label: str | None = None


class ComputeAnswer(WireAnswer):
    discounts: list[WireDiscount] = Field(default_factory=list)
    codes: list[WireCodeResult] = Field(default_factory=list)
    messages: list[WireMessage] = Field(default_factory=list)
    rewards: list[WireReward] = Field(default_factory=list)
    balances: list[BalanceEntry] = Field(default_factory=list)


class WireProduct(WireRequest):
    item_code: str
    unit_price: Decimal
    category: str | None = None


class PriceProductsRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    cust_id: str | None = None
    currency: str
    products: list[WireProduct]


class WireProductPrice(WireAnswer):
    item_code: str
    price: Decimal
    discounted_price: Decimal
    points: Decimal | None = None
    labels: list[str] = Field(default_factory=list)


class PriceProductsAnswer(WireAnswer):
    products: list[WireProductPrice]


# ---------------------------------------------------------------------------------------------
# Transactions: every write names its transaction key; every write answers the transaction
# ---------------------------------------------------------------------------------------------


class BurnVoucherRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    order_number: str
    cust_id: str | None = None
    code: str
    currency: str
    lines: list[WireLine] = Field(default_factory=list)


class BurnCashbackRequest(WireRequest):
    """Cashback as a tender. ``amount_due`` is what the order still owes (the engine refuses more)."""

    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    order_number: str
    cust_id: str
    tender: Literal["CASHBACK"] = "CASHBACK"
    amount: Decimal
    amount_due: Decimal | None = None
    currency: str


class WireTender(WireRequest):
    type: str
    amount: Decimal
    transaction_key: str | None = None


class ConfirmRequest(WireRequest):
    """The sale, confirmed with the order number, the store and the channel."""

    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    order_number: str
    cust_id: str | None = None
    currency: str
    date: str
    lines: list[WireLine]
    shipping: Decimal | None = None
    discount_total: Decimal | None = None
    total: Decimal
    codes: list[str] = Field(default_factory=list)
    tenders: list[WireTender] = Field(default_factory=list)


class CancelRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    original_transaction_key: str
    reason: str | None = None


class WireRefundLine(WireRequest):
    line_id: str
    quantity: Decimal


class RefundRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    store: str
    channel: str
    transaction_key: str
    original_transaction_key: str
    lines: list[WireRefundLine]
    amount: Decimal


class GetTransactionRequest(WireRequest):
    store_chain: str = Field(alias="storeChain")
    transaction_key: str


class TransactionRecord(WireAnswer):
    transaction_key: str
    type: str  # SALE, VOUCHER_BURN, CASHBACK_BURN, CANCEL, REFUND
    status: str  # CONFIRMED or CANCELLED
    order_number: str | None = None
    cust_id: str | None = None
    code: str | None = None
    amount: Decimal | None = None
    label: str | None = None
    balance: Decimal | None = None  # the account's cashback balance after a burn
    rewards: list[WireReward] = Field(default_factory=list)  # earned by a sale
    returned: list[WireReward] = Field(default_factory=list)  # burns a reversal gave back
    clawed_back: list[WireReward] = Field(default_factory=list)  # earned rewards a reversal took back
    reinstated_codes: list[str] = Field(default_factory=list)

    _ids = field_validator("transaction_key", "cust_id", "order_number", mode="before")(_text)


class TransactionAnswer(WireAnswer):
    """Every write's answer, and getTransaction's (``transaction`` null: no such key)."""

    transaction: TransactionRecord | None = None


CONFIRMED = "CONFIRMED"
CANCELLED = "CANCELLED"
