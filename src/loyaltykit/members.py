"""Member and program operations: enrolment, member updates, statements, wallets and issuance.

These are optional operations beside the checkout (see :mod:`loyaltykit.operations`): a shop's
sign-up page enrols a member, its back office changes a tier or segments, its "my account" page
shows the statement and the wallet ("my offers"), its marketing tools issue a voucher or an
offer to a member outside a checkout (a birthday, a goodwill gesture, a campaign). Models are frozen and validated like the
checkout's; identifiers and names never reach a repr.
"""

# No ``from __future__ import annotations``: pydantic would compile and evaluate every field's
# annotation string when the models are built at import (start-up time).
import base64
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from .models import (
    MAX_POINTS,
    BalanceKind,
    Currency,
    Customer,
    CustomerIdentifier,
    IdempotencyKey,
    Ident,
    IdentifierKind,
    KitModel,
    Label,
    Offer,
    Timestamp,
)
from .money import Money, to_decimal

MAX_STATEMENT_PAGE = 200
MAX_SEGMENTS = 50
MAX_CONSENTS = 20
MAX_PROFILE_FIELDS = 32
MAX_ISSUE_QUANTITY = 20


def _signed_points(value: Any) -> Decimal:
    result = to_decimal(value)
    if abs(result) > MAX_POINTS:
        raise ValueError(f"points exceed the kit's limit of {MAX_POINTS}")
    return result


# ---------------------------------------------------------------------------------------------
# Enrolment and updates
# ---------------------------------------------------------------------------------------------


class Consent(KitModel):
    """One consent the member gave or refused (marketing e-mail, SMS, profiling, terms...)."""

    purpose: Ident
    granted: bool
    at: Timestamp | None = None  # when the member answered; None: at enrolment


class Enrolment(KitModel):
    """A new member. ``external_id`` (the shop's own customer id) makes enrolment idempotent:
    enrolling the same external id again returns the member enrolled the first time."""

    external_id: Ident = Field(repr=False)
    email: str | None = Field(default=None, repr=False)
    phone: str | None = Field(default=None, repr=False)
    card: str | None = Field(default=None, repr=False)
    membership: str | None = Field(default=None, repr=False)
    display_name: Label | None = Field(default=None, repr=False)
    first_name: Annotated[str, Field(max_length=128)] | None = Field(default=None, repr=False)
    last_name: Annotated[str, Field(max_length=128)] | None = Field(default=None, repr=False)
    birth_date: date | None = Field(default=None, repr=False)
    language: Annotated[str, Field(min_length=2, max_length=16)] | None = None
    tier: Ident | None = None  # an initial tier, where the engine allows one
    segments: Annotated[tuple[Ident, ...], Field(max_length=MAX_SEGMENTS)] = ()
    role: Ident | None = None
    consents: Annotated[tuple[Consent, ...], Field(max_length=MAX_CONSENTS)] = ()
    profile: dict[str, str] = Field(default_factory=dict, repr=False)  # engine-specific profile fields
    enrolled_at: Timestamp | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        for kind in ("email", "phone", "card", "membership"):
            value = getattr(self, kind)
            if value is not None:
                try:
                    normalised = CustomerIdentifier(kind=IdentifierKind(kind), value=value).value
                except ValueError:
                    raise ValueError(f"{kind}: not a valid {kind}") from None
                object.__setattr__(self, kind, normalised)
        if len(self.profile) > MAX_PROFILE_FIELDS:
            raise ValueError(f"profile: at most {MAX_PROFILE_FIELDS} fields")
        for key, value in self.profile.items():
            if not 1 <= len(key) <= 64 or len(value) > 500:
                raise ValueError("profile: keys 1..64 and values up to 500 characters")
        purposes = [c.purpose for c in self.consents]
        if len(set(purposes)) != len(purposes):
            raise ValueError("consents: one answer per purpose")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments: duplicate segment")
        return self

    @property
    def key(self) -> str:
        """The idempotency key: one member per external id."""
        return f"enrol:{self.external_id}"

    def identifiers(self) -> tuple[CustomerIdentifier, ...]:
        """Every identifier given, external id first."""
        found = [CustomerIdentifier(kind=IdentifierKind.EXTERNAL_ID, value=self.external_id)]
        for kind in ("email", "phone", "card", "membership"):
            value = getattr(self, kind)
            if value is not None:
                found.append(CustomerIdentifier(kind=IdentifierKind(kind), value=value))
        return tuple(found)


class EnrolmentResult(KitModel):
    """The member, and whether this call created it (``False``: the external id was known)."""

    customer: Customer
    created: bool


class MemberField(StrEnum):
    """A member field :class:`MemberUpdate` can change; an adapter declares the ones its engine
    can (``Capabilities.member_fields``)."""

    TIER = "tier"
    SEGMENTS = "segments"
    ROLE = "role"


class MemberUpdate(KitModel):
    """Change a member's tier, segments or role (only the fields given; at least one)."""

    customer_id: Ident
    tier: Ident | None = None
    segments: Annotated[tuple[Ident, ...], Field(max_length=MAX_SEGMENTS)] | None = None  # replaces the set
    role: Ident | None = None
    reason: Label | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tier is None and self.segments is None and self.role is None:
            raise ValueError("tier: give at least one of tier, segments, role")
        if self.segments is not None and len(set(self.segments)) != len(self.segments):
            raise ValueError("segments: duplicate segment")
        return self

    def changed_fields(self) -> tuple[MemberField, ...]:
        """The fields this update sets, in declaration order."""
        return tuple(f for f in MemberField if getattr(self, f.value) is not None)


# ---------------------------------------------------------------------------------------------
# Statement
# ---------------------------------------------------------------------------------------------


class StatementEntryKind(StrEnum):
    EARN = "earn"  # points or cashback credited (an order, a rule, a goodwill credit)
    SPEND = "spend"  # points or cashback paid for an order
    EXPIRE = "expire"  # points that ran out
    REVERSE = "reverse"  # a cancel or refund: burned value returned, earned value clawed back
    ADJUST = "adjust"  # a manual correction
    TIER_CHANGE = "tier_change"  # the member moved tier (no amount)
    VOUCHER = "voucher"  # a voucher or offer issued to the member (no amount)


class StatementEntry(KitModel):
    """One line of a member's statement. Amounts are signed: a credit is positive."""

    id: str
    at: Timestamp
    kind: StatementEntryKind
    balance: BalanceKind | None = None  # None for tier changes and vouchers
    points: Decimal | None = None
    money: Money | None = None
    order_ref: str | None = None
    rule_id: str | None = None  # the program rule or campaign that caused it
    label: str | None = None
    tier: str | None = None  # for tier changes: the new tier
    code: str | None = Field(default=None, repr=False)  # for vouchers: the code issued

    @model_validator(mode="after")
    def _amount(self) -> Self:
        if self.points is not None:
            object.__setattr__(self, "points", _signed_points(self.points))
        return self


class StatementQuery(KitModel):
    """A page of a member's statement, newest first. ``cursor`` comes from the previous page."""

    customer_id: Ident
    page_size: Annotated[int, Field(ge=1, le=MAX_STATEMENT_PAGE)] = 50
    cursor: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None  # exclusive
    currency: Currency | None = None  # cashback in this currency only

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since: must be before until")
        return self


class Statement(KitModel):
    """One page of a statement; ``next_cursor`` is ``None`` on the last page."""

    customer_id: str
    entries: tuple[StatementEntry, ...]
    next_cursor: str | None = None


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque page cursor (adapters put their own position in it)."""
    return base64.urlsafe_b64encode(json.dumps(position, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The position in a cursor from :func:`encode_cursor`; ``ValueError`` for a forged one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise ValueError("cursor: not a cursor from a previous page") from None
    if not isinstance(value, dict):
        raise ValueError("cursor: not a cursor from a previous page")
    return value


# ---------------------------------------------------------------------------------------------
# Wallet
# ---------------------------------------------------------------------------------------------


class WalletQuery(KitModel):
    """The member's offers and vouchers outside a basket ("my offers")."""

    customer_id: Ident
    currency: Currency | None = None  # amounts of fixed offers in this currency (default: the engine's)


class Wallet(KitModel):
    """Usable offers and vouchers owned by the member (``Offer.applicable`` is always True here:
    outside a basket nothing is checked but ownership, validity and remaining uses)."""

    customer_id: str
    offers: tuple[Offer, ...] = ()


# ---------------------------------------------------------------------------------------------
# Issuance
# ---------------------------------------------------------------------------------------------


class VoucherIssue(KitModel):
    """Issue a voucher or offer to a member outside a checkout, once per ``idempotency_key``.

    ``definition_id`` names what to issue as the engine knows it (a voucher definition, an offer);
    ``face_value`` and ``expires_at`` override the definition's where the engine allows it.
    """

    customer_id: Ident
    definition_id: Ident
    idempotency_key: IdempotencyKey
    face_value: Money | None = None
    expires_at: Timestamp | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_ISSUE_QUANTITY)] = 1
    reason: Label | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.face_value is not None and self.face_value.amount <= 0:
            raise ValueError("face_value: must be positive")
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                raise ValueError("expires_at: give a time zone (UTC, say)")
            if self.expires_at <= datetime.now(UTC):
                raise ValueError("expires_at: must be in the future")
        return self

    @property
    def key(self) -> str:
        return self.idempotency_key


class IssuedVouchers(KitModel):
    """What an issue gave the member: one :class:`~loyaltykit.models.Offer` per unit, each with the
    id and code a shop redeems it with and its expiry. ``created`` is ``False`` when the key had
    already issued (the earlier vouchers are returned; nothing new is issued)."""

    customer_id: str
    definition_id: str
    vouchers: tuple[Offer, ...]
    created: bool = True


__all__ = [
    "MAX_ISSUE_QUANTITY",
    "MAX_STATEMENT_PAGE",
    "Consent",
    "Enrolment",
    "EnrolmentResult",
    "IssuedVouchers",
    "MemberField",
    "MemberUpdate",
    "Statement",
    "StatementEntry",
    "StatementEntryKind",
    "StatementQuery",
    "VoucherIssue",
    "Wallet",
    "WalletQuery",
    "decode_cursor",
    "encode_cursor",
]
