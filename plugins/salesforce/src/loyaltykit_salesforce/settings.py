"""Settings of the Salesforce Loyalty Management adapter.

Every wire fact the public reference marks UNCONFIRMED is a setting here (see the README table).
Environment variables: ``LOYALTYKIT_SALESFORCE_<FIELD>``; TOML: ``[engines.salesforce]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .transformers import DEFAULT_ERROR_PATTERNS  # the tables live with the mapping (plain data)


def _version(value: str) -> float:
    return float(value)  # "65.0" -> 65.0; only compared, never used for money


class SalesforceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_SALESFORCE_", extra="forbid")

    # -- connection --------------------------------------------------------------------------
    my_domain_url: str = Field(
        description="Your My Domain URL, e.g. https://acme.my.salesforce.com (the token endpoint host)."
    )
    client_id: str = Field(description="Consumer key of the connected app (client credentials flow).")
    client_secret: SecretStr = Field(description="Consumer secret of the connected app.")
    token_url: str | None = Field(
        default=None,
        description="Token endpoint; default {my_domain_url}/services/oauth2/token. UNCONFIRMED "
        "whether login.salesforce.com accepts client credentials, so the My Domain host is the default.",
    )
    credentials_in: Literal["body", "basic"] = Field(
        default="body", description="Send client id/secret as form fields or as an HTTP Basic header."
    )
    api_version: str = Field(default="65.0", pattern=r"^[0-9]{2}\.[0-9]$", description="REST API version.")
    connect_timeout: float = Field(default=3.0, gt=0, le=60)
    read_timeout: float = Field(default=10.0, gt=0, le=120)

    # -- program ------------------------------------------------------------------------------
    program_name: str = Field(min_length=1, max_length=255, description="Loyalty program name, e.g. 'NTO Insider'.")
    points_currency: str | None = Field(
        default=None,
        description="Spendable (non-qualifying) program currency. None: the first profile currency "
        "whose name does not contain 'Qualifying'.",
    )
    cashback_currency: str | None = Field(
        default=None,
        description="A program currency used as cashback (1 point = 1 unit of cashback_iso_currency). "
        "None: cashback is not supported.",
    )
    cashback_iso_currency: str | None = Field(default=None, description="ISO 4217 currency of cashback_currency.")
    debit_points_process: str = Field(
        default="Debit Points",
        description="Name of the org's DebitPointsFromMembers process for points (admin-given; UNCONFIRMED).",
    )
    debit_cashback_process: str = Field(
        default="Debit Cashback",
        description="Name of the org's DebitPointsFromMembers process that debits cashback_currency.",
    )
    debit_amount_parameter: str = Field(default="PointsToDebit", description="Process input holding the amount.")
    debit_result_field: str = Field(default="PointsDebited", description="Process result field with the amount.")
    # Issuing a voucher: an org-configured program process (reference 4c, 6a). Its name and parameter
    # names are the admin's (a public SFCC cartridge calls "Issue Voucher" with MemberId, VoucherCode,
    # VoucherFaceValue, VoucherExpirationDate): all UNCONFIRMED, all settings.
    issue_voucher_process: str = Field(default="Issue Voucher", description="Name of the org's issue-voucher process.")
    issue_member_parameter: str = Field(default="MembershipNumber", description="Process input naming the member.")
    issue_definition_parameter: str = Field(default="VoucherDefinition",
                                            description="Process input naming the voucher definition.")
    issue_code_parameter: str = Field(default="VoucherCode", description="Process input with the voucher code.")
    issue_face_value_parameter: str = Field(default="VoucherFaceValue")
    issue_expiry_parameter: str = Field(default="VoucherExpirationDate")
    issue_code_prefix: str = Field(default="LK", pattern=r"^[A-Z0-9]{0,8}$",
                                   description="Prefix of the voucher codes derived from idempotency keys.")
    issue_unknown_definition_phrases: list[str] = Field(
        default_factory=lambda: ["voucher definition"],
        description="Message phrases of a refusal that means the definition is unknown (UNCONFIRMED texts).",
    )
    accrual_journal_type: str = Field(default="Accrual")
    accrual_journal_subtype: str | None = Field(default="Purchase", description="JournalSubTypeName of exports.")
    redemption_journal_type: str = Field(default="Redemption")
    enrollment_channel: str = Field(
        default="Online", description="enrollmentChannel of enrolments (the org's picklist value; UNCONFIRMED list)."
    )
    enrol_promotions_consent: str = Field(
        default="marketing_email", description="Consent purpose sent as canReceivePromotions on enrolment."
    )
    enrol_duplicate_email_codes: list[str] = Field(
        default_factory=lambda: ["DUPLICATES_DETECTED"],
        description="errorCodes of an enrolment refused because the e-mail's contact exists (UNCONFIRMED).",
    )
    order_ref_field: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$",
        description="TransactionJournal field (e.g. a custom Order_Reference__c) that carries the order ref.",
    )
    external_number_prefix: str = Field(
        default="lk-", max_length=20, pattern=r"^[A-Za-z0-9._:-]*$",
        description="Prefix of deterministic ExternalTransactionNumbers.",
    )

    # -- evaluation ---------------------------------------------------------------------------
    promotions_api: Literal["promotion_execution", "eligible_promotions", "none"] = Field(
        default="promotion_execution",
        description="Discounts through GPM promotion-execution (v65+), the list-only eligible-promotions "
        "(v60+), or not at all.",
    )
    rule_library_api_name: str | None = Field(default=None, description="?ruleLibraryApiName= for promotion-execution.")
    retry_promotion_execution: bool = Field(
        default=True,
        description="Treat promotion-execution as a read (retried). Whether it records usage is UNCONFIRMED; "
        "set False to never retry it.",
    )
    simulate_earn: bool = Field(default=True, description="Preview points with runSetting.isSimulation.")
    simulation_points_keys: tuple[str, ...] = Field(
        default=("points", "Points", "pointsCredited", "PointsCredited", "pointsToCredit", "PointsToCredit"),
        description="Numeric keys read from actionResultSummary of successful simulated rules (shape UNCONFIRMED).",
    )

    check_balance_before_spend: bool = Field(
        default=True,
        description="Read the balance before a debit and refuse an overdraw without sending it (whether "
        "the debit process refuses negative balances is org configuration, UNCONFIRMED).",
    )
    member_object: str = Field(
        default="LoyaltyProgramMember", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$",
        description="SOQL object of program members (names from public code, UNCONFIRMED as documented).",
    )
    member_email_field: str = Field(default="Contact.Email", pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,120}$")
    member_program_field: str = Field(default="Program.Name", pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,120}$")
    journal_object: str = Field(default="TransactionJournal", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    journal_program_field: str = Field(default="LoyaltyProgram.Name", pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,120}$")
    journal_amount_field: str = Field(default="TransactionAmount", pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,120}$")
    voucher_object: str = Field(default="Voucher", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    cart_sku_field: Literal["cartLineProductCode", "cartLineProductStockKeepingUnit", "cartLineProductId",
                            "cartLineProduct"] = Field(
        default="cartLineProductCode",
        description="Cart line field that names the product with the basket line's sku (v258 doc lists all four).",
    )
    journal_product_field: str | None = Field(
        default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$",
        description="Send one accrual journal per order line with the sku in this field (e.g. ProductCode, "
        "interchangeable with ProductId), so a program that earns per product can; None: one journal per order.",
    )
    voucher_code_separator: str = Field(
        default=",", min_length=1, max_length=3,
        description="An order with several voucher codes sends them all in VoucherCode, joined by this "
        "(whether the org parses a list there is UNCONFIRMED).",
    )
    burn_store_codes_on_export: bool = Field(
        default=True,
        description="On export, redeem the order's voucher codes that no online redemption receipt covers "
        "(codes used in a store), so the same voucher cannot be burned again online.",
    )
    cancelled_journal_status: str = Field(
        default="Cancelled",
        description="Status a journal shows once cancelAccrual/cancelRedemption ran (UNCONFIRMED).",
    )

    # -- vouchers -----------------------------------------------------------------------------
    voucher_two_phase: bool = Field(
        default=True, description="Reserve then Redeem with a reservationKey (v62+); else a plain redeem."
    )
    replay_redeem_with_reservation_key: bool = Field(
        default=True,
        description="When a repeated call finds the voucher Redeemed, send Redeem again with the same "
        "reservationKey and take a 201 as this key's earlier redemption. The engine's answer is "
        "UNCONFIRMED; if it refuses, the call fails with voucher_already_redeemed (never a second burn).",
    )
    voucher_owner_lookup: bool = Field(
        default=True,
        description="When a code is not among the member's vouchers, ask SOQL on the Voucher object whether "
        "it exists at all, to tell voucher_not_owned from voucher_not_found (object/fields UNCONFIRMED; "
        "a failing query falls back to voucher_not_found).",
    )
    reinstate_vouchers_on_reverse: bool = Field(
        default=True,
        description="On cancel/refund, reinstate redeemed vouchers (action Reinstate, v62+). Reinstating a "
        "Redeemed (not just Reserved) voucher is UNCONFIRMED.",
    )

    # -- member updates (tier changes) --------------------------------------------------------
    # The ChangeMemberTier program process (reference 6a and 7) is UNCONFIRMED as a standard
    # contract: its name and input names are the org's, so each is a setting.
    change_tier_process: str | None = Field(
        default="update Tier", min_length=1, max_length=255,
        description="Name of the org's ChangeMemberTier program process (the mirrored doc's example name; "
        "UNCONFIRMED). None: tier changes are not supported.",
    )
    change_tier_member_parameter: Literal["MemberId", "MembershipNumber"] = Field(
        default="MemberId",
        description="Process input naming the member: MemberId (the 0lM id read from the profile) or "
        "MembershipNumber (interchangeable per the docs).",
    )
    change_tier_tier_parameter: str = Field(default="NewTier", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    change_tier_reason_parameter: str = Field(default="ReasonForChange", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    change_tier_default_reason: str = Field(
        default="Changed by the shop", min_length=1, max_length=255,
        description="ReasonForChange sent when the update gives no reason.",
    )
    unknown_tier_phrases: tuple[str, ...] = Field(
        default=("tier doesn't exist", "tier does not exist", "invalid tier", "no tier"),
        description="Message phrases of a process refusal that mean the program has no such tier "
        "(texts UNCONFIRMED); other refusals stay engine errors.",
    )

    # -- errors -------------------------------------------------------------------------------
    error_patterns: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ERROR_PATTERNS),
        description="errorCode (exact) or message phrase (whole words) -> kit error code (codes UNCONFIRMED).",
    )

    @field_validator("my_domain_url", "token_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _consistent(self) -> SalesforceSettings:
        version = _version(self.api_version)
        if version < 58:
            raise ValueError("api_version: 58.0 or later is needed (member vouchers)")
        if self.promotions_api == "promotion_execution" and version < 65:
            raise ValueError("promotions_api: promotion_execution needs api_version 65.0 or later")
        if self.promotions_api == "eligible_promotions" and version < 60:
            raise ValueError("promotions_api: eligible_promotions needs api_version 60.0 or later")
        if (self.cashback_currency is None) != (self.cashback_iso_currency is None):
            raise ValueError("cashback_currency and cashback_iso_currency go together")
        if self.cashback_iso_currency is not None:
            from loyaltykit.money import is_currency

            if not is_currency(self.cashback_iso_currency):
                raise ValueError("cashback_iso_currency: not an ISO 4217 currency")
        return self

    @property
    def version(self) -> float:
        return _version(self.api_version)

    @property
    def two_phase(self) -> bool:
        """Reserve/Redeem/Reinstate actions exist from v62."""
        return self.voucher_two_phase and self.version >= 62

    @property
    def can_reinstate(self) -> bool:
        return self.reinstate_vouchers_on_reverse and self.version >= 62

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or f"{self.my_domain_url}/services/oauth2/token"
