"""Settings of the MAXXING adapter (``LOYALTYKIT_MAXXING_*`` or ``[engines.maxxing]``).

What the public sources confirm is fixed here: the REST path
``/MPCM/Web/api/rest/<api_version>/<Server>/<operation>``, HTTP Basic auth per integration API
user, the ``storeChain`` body key, the backoffice and compute URLs and the store number. Every
operation the sources do not name is an entry of ``operations`` (service + ``Server/operation``),
with the default the README lists; its body shapes live in ``wire.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit.errors import ERROR_CODES
from loyaltykit.money import is_currency


class Operation(BaseModel):
    """Where one named operation lives: which base URL, and its ``Server/operation`` path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: Literal["compute", "backoffice"]
    path: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


#: Confirmed (reference maxxing.md §1.2): the server and operation names of the two customer calls.
CONFIRMED_OPERATIONS: dict[str, Operation] = {
    "customer_by_card": Operation(service="backoffice", path="CustomerInformationServer/getCustomerByCardKey"),
    "customers": Operation(service="backoffice", path="CustomerInformationServer/getCustomers"),
}

#: UNCONFIRMED: none of these names is public. Defaults are the fake's; adjust from partner docs.
ASSUMED_OPERATIONS: dict[str, Operation] = {
    "balances": Operation(service="backoffice", path="AccountServer/getBalances"),
    "compute": Operation(service="compute", path="TransactionServer/computeTransaction"),
    "price_products": Operation(service="compute", path="TransactionServer/computeProducts"),
    "burn_voucher": Operation(service="compute", path="VoucherServer/burnVoucher"),
    "burn_cashback": Operation(service="compute", path="AccountServer/burnCashback"),
    "confirm": Operation(service="compute", path="TransactionServer/confirmTransaction"),
    "cancel": Operation(service="compute", path="TransactionServer/cancelTransaction"),
    "refund": Operation(service="compute", path="TransactionServer/refundTransaction"),
    "get_transaction": Operation(service="compute", path="TransactionServer/getTransaction"),
}

DEFAULT_OPERATIONS: dict[str, Operation] = {**CONFIRMED_OPERATIONS, **ASSUMED_OPERATIONS}


class MaxxingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_MAXXING_", extra="forbid")

    # -- environment (confirmed: two base URLs, Basic auth, store number) -----------------------
    compute_url: str = Field(description="Compute URL, e.g. https://<env-id>.cloud.maxxing.com")
    backoffice_url: str | None = Field(default=None, description="Backoffice URL; default: compute_url.")
    api_version: str = Field(default="5.6", pattern=r"^[0-9]+(\.[0-9]+)*$")
    username: str = Field(min_length=1, description="Integration API user (Basic user name).")
    password: SecretStr = Field(description="Its password (Basic password).")
    store_chain: str = Field(default="0", min_length=1, description="storeChain body key (confirmed).")
    store_number: str = Field(default="1", min_length=1, description="Store number of the integration.")
    default_channel: str = Field(default="WEB", min_length=1, description="Channel when a basket/order has none.")
    currency: str = Field(default="EUR", description="The tenant's currency.")

    # -- UNCONFIRMED: operations and behaviour -------------------------------------------------
    operations: dict[str, Operation] = Field(default_factory=lambda: dict(DEFAULT_OPERATIONS))
    error_codes: dict[str, str] = Field(
        default_factory=dict,
        description="Engine error code -> kit error code; extends or overrides the documented table "
        "(transformers.DOCUMENTED_ERROR_CODES).",
    )
    error_patterns: dict[str, str] = Field(
        default_factory=dict, description="Message phrase (whole words) -> kit error code, for unknown codes."
    )
    transaction_key_prefix: str = Field(default="lk-", max_length=16)
    identify_reads_balances: bool = Field(default=True, description="Read balances after identifying.")
    refund_mode: Literal["lines", "none"] = Field(default="lines", description="'none' disables refunds.")

    # -- HTTP -----------------------------------------------------------------------------------
    connect_timeout: float = Field(default=3.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)

    @field_validator("compute_url", "backoffice_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("operations", mode="before")
    @classmethod
    def _operations(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Entries override the defaults one by one; the confirmed two keep their documented names
        # unless overridden explicitly.
        unknown = sorted(set(value) - set(DEFAULT_OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations {unknown}; known: {sorted(DEFAULT_OPERATIONS)}")
        return {**DEFAULT_OPERATIONS, **value}

    @field_validator("error_codes", "error_patterns")
    @classmethod
    def _kit_codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(v for v in value.values() if v not in ERROR_CODES)
        if bad:
            raise ValueError(f"unknown kit error codes {bad}")
        return {k.strip(): v for k, v in value.items() if k.strip()}

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"unknown ISO 4217 currency {value!r}")
        return value

    def base_url(self, service: str) -> str:
        return self.compute_url if service == "compute" else (self.backoffice_url or self.compute_url)

    def path(self, name: str) -> tuple[str, str]:
        """(service, URL path) of a named operation."""
        operation = self.operations[name]
        return operation.service, f"/MPCM/Web/api/rest/{self.api_version}/{operation.path}"

    def __repr__(self) -> str:
        return f"MaxxingSettings(compute_url={self.compute_url!r}, store_number={self.store_number!r})"
