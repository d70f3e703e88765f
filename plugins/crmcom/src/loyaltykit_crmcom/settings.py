"""Settings of the CRM.COM Rewards adapter.

Every wire fact the public reference marks UNCONFIRMED is a setting here, with the reference's
suggested default (see the README table). Environment: ``LOYALTYKIT_CRMCOM_<FIELD>``; TOML:
``[engines.crmcom]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit.errors import ERROR_CODES
from loyaltykit.models import IdentifierKind


class CrmcomSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_CRMCOM_", extra="forbid")

    # -- backend ------------------------------------------------------------------------------
    generation: Literal["A"] = Field(
        default="A",
        description="API generation. A = the Web API (/crmapi/rest/v2, token in body); the only one built. "
        "Gen C (v2 platform, api_key header) would be a second backend behind the same flows.",
    )
    base_url: str = Field(description="Host of the CRM.COM Web API, e.g. https://crm.example.com.")
    api_prefix: str = Field(default="/crmapi/rest/v2", description="Path prefix; every public client uses v2.")
    connect_timeout: float = Field(default=3.0, gt=0, le=60)
    read_timeout: float = Field(default=10.0, gt=0, le=120)
    currency: str = Field(default="EUR", description="The tenant's wallet currency (Gen A amounts carry none).")

    # -- authentication -------------------------------------------------------------------------
    auth_method: Literal["web_api_key", "login"] = Field(
        default="web_api_key",
        description="web_api_key: POST authentication/web_api_key/token with the key as the Basic user name "
        "(recommended for POS); login: POST authentication/token with username, password, organisation.",
    )
    web_api_key: SecretStr | None = Field(default=None, description="A 'System Key' class Web API key.")
    basic_with_colon: bool = Field(
        default=True,
        description="Standard Basic auth sends base64(KEY:); public PHP clients send base64(KEY) without the "
        "colon. Which one a tenant requires is UNCONFIRMED.",
    )
    username: str | None = None
    password: SecretStr | None = None
    organisation: str | None = None
    unit: str | None = Field(default=None, description="Optional unit GUID sent at login.")
    token_lifetime_seconds: int = Field(default=7200, gt=0, description="R12+: 2 h absolute expiry.")
    token_refresh_margin_seconds: int = Field(default=300, ge=0, description="Refresh this long before expiry.")
    release_token_on_close: bool = Field(default=True, description="POST authentication/token/release on close.")

    # -- envelope (UNCONFIRMED) ---------------------------------------------------------------
    ok_code: str = Field(default="OK", description="status.code of a success; anything else is a failure.")
    error_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="status.code (exact) or message phrase (whole words) -> kit error code; extends the "
        "documented phrases (transformers.DOCUMENTED_PHRASES). The error envelope's codes and texts are "
        "UNCONFIRMED.",
    )

    # -- customers ----------------------------------------------------------------------------
    access_token_kinds: frozenset[IdentifierKind] = Field(
        default=frozenset({IdentifierKind.CARD}),
        description="Identifier kinds the tenant registers as access-token authentication codes. Card is the "
        "documented case; e-mail and phone only where the tenant registers them (UNCONFIRMED).",
    )

    # -- purchases and spends -----------------------------------------------------------------
    performed_by_unit_id: str | None = Field(
        default=None, description="performed_by_unit_identifier.id (mandatory before R17)."
    )
    performed_by_tap_code: str | None = Field(default=None, description="performed_by_tap_identifier.code (R17+).")
    external_system: str | None = Field(default=None, description="external_system sent with purchases (R10).")
    products_key: str = Field(
        default="products_set", description="Request key of the purchase lines (UNCONFIRMED; the response uses "
        "products_set)."
    )
    spend_mode: Literal["spend_request", "create_spend", "inside_create"] = Field(
        default="spend_request",
        description="How a spend reaches CRM.COM, by release. spend_request: spend_requests/create against the "
        "purchase (R5-R16; deprecated in R17). create_spend: the atomic purchases/create_spend, which creates "
        "the purchase and its spend together or neither (R9-R16). inside_create: the spend travels inside "
        "purchases/create (R17+; the parameter is UNCONFIRMED, see inside_create_spend_path).",
    )
    create_spend_amount_path: str = Field(
        default="spend_amount",
        description="Dotted path of the spend amount in a purchases/create_spend body (UNCONFIRMED: the method "
        "is documented, its body is not; the default is spend_requests/create's documented spend_amount).",
    )
    inside_create_spend_path: str = Field(
        default="spend_request.amount",
        description="Dotted path of the spend amount in an R17+ purchases/create body (UNCONFIRMED; the default "
        "follows the documented spend_request object of the REST purchase of R16.12+ and of the v2 platform).",
    )
    cancel_reverses_spends: bool = Field(
        default=True,
        description="Whether purchases/cancel gives back a spend made inside the purchase (create_spend, "
        "inside_create) (UNCONFIRMED). The adapter measures the wallet before and after and reports it.",
    )
    spend_reference_prefix: str = Field(default="LKS-", max_length=16)
    lookup_page_size: int = Field(default=50, ge=1, le=50, description="number_of_results (max 50).")
    purchase_lookup_filter: str = Field(
        default="reference_number", description="Filter of customer_events/purchases/list (UNCONFIRMED)."
    )
    spend_lookup_filter: str = Field(
        default="external_system_reference_number",
        description="Filter of customer_events/spend_requests/list (method and filter UNCONFIRMED).",
    )
    purchase_cancel_field: str = Field(
        default="customer_event_identifier",
        description="Identifier parameter of customer_events/purchases/cancel (UNCONFIRMED; spend cancel "
        "documents customer_event_identifier).",
    )
    cancel_reverses_awards: bool = Field(
        default=True,
        description="Whether purchases/cancel takes back the cashback it awarded (UNCONFIRMED). The adapter "
        "measures the wallet before and after a cancel and reports what moved.",
    )

    # -- products -----------------------------------------------------------------------------
    product_sync_batch: int = Field(default=1000, ge=1, le=1000, description="products/synchronise takes <= 1000.")
    products_sync_key: str = Field(default="products_set", description="Array key of products/synchronise "
                                   "(UNCONFIRMED).")
    default_product_code: str = Field(
        default="DEFAULT_PRODUCT",
        description="Code of the tenant's default product: unknown codes are booked on it and reported per line.",
    )
    product_type_code: str | None = Field(
        default=None, description="type_identifier.code for synced products (a non-traceable physical good type)."
    )

    @field_validator("create_spend_amount_path", "inside_create_spend_path")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if not value or any(not part.strip() for part in value.split(".")):
            raise ValueError("a dotted path of body keys, e.g. spend_request.amount")
        return value

    @field_validator("error_patterns")
    @classmethod
    def _kit_codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(v for v in value.values() if v not in ERROR_CODES)
        if bad:
            raise ValueError(f"unknown kit error codes {bad}")
        return {k: v for k, v in value.items() if k.strip()}

    @model_validator(mode="after")
    def _credentials(self) -> CrmcomSettings:
        if self.auth_method == "web_api_key" and self.web_api_key is None:
            raise ValueError("web_api_key: required when auth_method is web_api_key")
        if self.auth_method == "login" and not (self.username and self.password and self.organisation):
            raise ValueError("username, password and organisation: required when auth_method is login")
        if self.token_refresh_margin_seconds >= self.token_lifetime_seconds:
            raise ValueError("token_refresh_margin_seconds: must be shorter than token_lifetime_seconds")
        return self
