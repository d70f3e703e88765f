"""Settings of the SessionM adapter (``LOYALTYKIT_SESSIONM_*`` or ``[engines.sessionm]``).

Every wire detail the public sources leave UNCONFIRMED is a setting here, with the default the
README explains. Credentials are ``SecretStr``; the Core API key is one too, because it is also a
path segment of every Core URL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit.money import is_currency

from .transformers import DEFAULT_ERROR_CODES  # the table lives with the mapping (plain data)


class SessionMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_SESSIONM_", extra="forbid")

    # -- the three API families: base URLs and Basic credentials ------------------------------
    core_base_url: str = Field(description="Core host, e.g. https://api-{tenant}.ent-sessionm.com")
    core_api_key: SecretStr = Field(description="Core API key: Basic user name and a path segment.")
    core_api_secret: SecretStr = Field(description="Core S2S API secret (Basic password).")
    connect_base_url: str = Field(description="Connect host, e.g. https://domains-{env}.ent-sessionm.com")
    connect_key: str = Field(description="Connect Basic user name.")
    connect_secret: SecretStr
    pos_base_url: str = Field(description="POS host, e.g. https://cloudpos-{env}.ent-sessionm.com")
    pos_key: str = Field(description="POS Basic user name (per client and/or location).")
    pos_secret: SecretStr

    # -- tenant ---------------------------------------------------------------------------------
    retailer_id: str = Field(min_length=1, description="Tenant GUID carried by every Connect body.")
    store_id: str = Field(min_length=1, description="POS envelope store_id.")
    client_id: str | None = Field(default=None, description="POS envelope client_id; default: retailer_id.")
    culture: str = "en-US"
    currency: str = Field(default="USD", description="The tenant's currency; SessionM amounts carry none.")

    # -- points ---------------------------------------------------------------------------------
    point_account_id: str | None = Field(default=None, description="Spend from this point account.")
    point_account_label: str | None = Field(
        default="Spend", description="Else pick the account with this grouping_label (as client code does; "
        "the label is tenant configuration, UNCONFIRMED)."
    )

    # -- flow choices ---------------------------------------------------------------------------
    identify_email_via: Literal["core", "pos"] = "core"
    evaluate_applies: Literal["eligible", "codes"] = Field(
        default="codes",
        description="Quote only the offers the basket names by code (what redeem will burn), or, opt-in, "
        "every eligible wallet offer (the quote then promises discounts nothing burns unless each is redeemed).",
    )
    redeem_mode: Literal["lock", "redeem"] = "lock"
    points_return: Literal["none", "deposit", "spend_is_return"] = "none"
    points_return_source_id: str | None = Field(default=None, description="point_source_id for deposits.")
    void_on_cancel: bool = Field(default=False, description="Cancel an exported order with is_voided.")
    force_spend: bool = False

    # -- UNCONFIRMED wire values ----------------------------------------------------------------
    offer_type_percent_check: str = "percent_check_discount"
    offer_type_fixed_check: str = "fixed_amount_check_discount"  # the one confirmed value
    offer_type_fixed_item: str = "fixed_amount_item_discount"
    offer_type_percent_item: str = "percent_item_discount"
    offer_lookup_type: Literal["UserOfferId", "TTLCode"] = "UserOfferId"
    offer_amount_key: str = "amount"
    offer_expiry_key: str = "expiration_date"
    # Enrolment (Core create customer): the code of "this e-mail belongs to another profile" and the
    # external_id_type sent are not documented.
    enrol_email_taken_codes: list[str] = Field(default_factory=lambda: ["email_taken"])
    enrol_external_id_type: str = "merchant_identifier"
    enrol_opt_in_consent: str = "marketing_email"  # the consent purpose sent as opted_in
    # Member updates: segments live in a custom profile attribute (user_profile, reference § 3.1/3.4;
    # its name is the tenant's, UNCONFIRMED); a tier moves with move_user (§ 5.4) in this tier system.
    segments_profile_field: str = "segments"
    tier_system_id: str | None = Field(default=None, description="move_user tier_system_id; None: tier not updatable.")
    # Issuing an offer (acquisition/issue, § 4.3) has no documented idempotency: the adapter tags each
    # issued user offer with the key through acquisition/update custom_data (§ 4.4) and looks for the
    # tag in the wallet before issuing. The wallet entry key carrying custom_data is UNCONFIRMED.
    wallet_custom_data_key: str = "custom_data"
    issue_offer_unknown_codes: list[str] = Field(default_factory=lambda: ["offer_not_found"])  # UNCONFIRMED
    # Statement (fetch_point_audit_logs): the payload key holding the rows is not documented.
    audit_logs_key: str = "audit_logs"
    lookup_user_key: str = "user"
    lookup_offers_key: str = "offers"
    lookup_discount_key: str = "discount_amount"
    employee_id: str = "loyaltykit"
    transaction_channel: str = "ecommerce"
    payment_type: str = "OTHER"
    user_id_type: str = "SessionM_ID"
    spend_reference_type: str = "AppSpend"
    wallet_page_size: int = Field(default=1000, ge=1, le=1000, description="get_user_offers take (pages past it).")
    wallet_max_pages: int = Field(default=50, ge=1, le=1000)
    offer_id_key: str = Field(default="user_offer_id", description="Wallet entry key of the user offer id (UNCONFIRMED).")
    offer_label_keys: tuple[str, ...] = Field(
        default=("title", "name", "display_name"), description="Wallet entry keys tried for a label (UNCONFIRMED)."
    )
    line_tax_attribute: str | None = Field(
        default="tax",
        description="Line attribute holding the line's tax amount; sent as item tax_included and summed into "
        "tax_total. Lines without it: tax is not sent (never a made-up 0).",
    )
    refunds: bool = Field(
        default=False,
        description="Send a refund as a return transaction on send_transaction (negative lines, "
        "from_transaction_id = the order). The return wire format is UNCONFIRMED; off by default.",
    )
    error_codes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ERROR_CODES))

    # -- HTTP -----------------------------------------------------------------------------------
    connect_timeout: float = Field(default=3.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)

    @field_validator("core_base_url", "connect_base_url", "pos_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("error_codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        # Entries extend or override the defaults; they never silently drop them.
        from loyaltykit.errors import ERROR_CODES

        merged = {**DEFAULT_ERROR_CODES, **{k.strip().lower(): v for k, v in value.items()}}
        bad = sorted(v for v in merged.values() if v not in ERROR_CODES)
        if bad:
            raise ValueError(f"unknown kit error codes {bad}")
        return merged

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"unknown ISO 4217 currency {value!r}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SessionMSettings:
        if self.points_return == "deposit" and not self.points_return_source_id:
            raise ValueError("points_return='deposit' needs points_return_source_id")
        return self

    @property
    def pos_client_id(self) -> str:
        return self.client_id or self.retailer_id

    def __repr__(self) -> str:  # SecretStr masks secrets already; keep ids out too
        return f"SessionMSettings(core_base_url={self.core_base_url!r}, store_id={self.store_id!r})"
