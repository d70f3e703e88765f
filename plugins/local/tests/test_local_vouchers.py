"""Vouchers, promo codes and wallet offers: validity, ownership, limits, values, exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loyaltykit import (
    CodeStatus,
    CustomerNotFoundError,
    DiscountTarget,
    InvalidRequestError,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherConditionsNotMetError,
    VoucherExpiredError,
    VoucherNotFoundError,
    VoucherNotOwnedError,
    VoucherRedemption,
)
from loyaltykit_local.program import VoucherDef
from loyaltykit_local.testing import basket, eur, line

PROGRAM = """
[[vouchers]]
code = "ONCE"
kind = "fixed"
amount = 5

[[vouchers]]
code = "TEN-PCT"
kind = "percent"
percent = 10
usage_limit = 3
min_basket = 20

[[vouchers]]
code = "OPEN"
kind = "fixed"
amount = 1
usage_limit = "unlimited"

[[vouchers]]
code = "MUG-2"
kind = "item"
sku = "MUG"
amount = 2

[[vouchers]]
code = "SUMMER"
kind = "fixed"
amount = 3
valid_from = 2025-06-01T00:00:00Z
valid_until = 2025-09-01T00:00:00Z

[[offers]]
id = "PCT"
kind = "percent_off_check"
percent = 15
label = "15 % off"

[[offers]]
id = "FIX"
kind = "fixed_off_check"
amount = 4

[[offers]]
id = "ITEM"
kind = "fixed_off_item"
sku = "MUG"
amount = 1
valid_days = 10
"""


def redeem(shop, code, order_ref="O-1", customer_id=None, cart=None, key=None):
    return shop.loyalty.redeem_voucher(VoucherRedemption(code=code, order_ref=order_ref, customer_id=customer_id,
                                                         basket=cart, idempotency_key=key))


@pytest.fixture
def shop(make_shop):
    shop = make_shop(PROGRAM)
    shop.engine.issue_voucher(VoucherDef(code="UNLIMITED", kind="fixed", amount={"EUR": Decimal(1)}, usage_limit=None))
    return shop


def test_single_use_voucher(shop):
    result = redeem(shop, "ONCE")
    assert result.status == "redeemed" and result.discount == eur(5) and result.receipt.engine_ref
    with pytest.raises(VoucherAlreadyRedeemedError) as info:
        redeem(shop, "ONCE", order_ref="O-2")
    assert info.value.reason == "voucher_already_redeemed" and info.value.engine == "local"
    assert shop.engine.voucher_uses("ONCE") == 1


def test_multi_use_voucher_with_total_limit(shop):
    cart = basket(line("1", "A", "30"))
    for n in range(3):
        assert redeem(shop, "TEN-PCT", order_ref=f"O-{n}", cart=cart).discount == eur(3)
    with pytest.raises(UsageLimitReachedError):
        redeem(shop, "TEN-PCT", order_ref="O-9", cart=cart)


def test_unlimited_codes(shop):
    for n in range(5):
        redeem(shop, "UNLIMITED", order_ref=f"O-{n}")
        redeem(shop, "OPEN", order_ref=f"O-{n}")
    assert shop.engine.voucher_uses("UNLIMITED") == 5 and shop.engine.voucher_uses("OPEN") == 5


def test_a_voucher_without_a_limit_is_single_use():
    from loyaltykit_local.program import parse_program

    program = parse_program('[[vouchers]]\ncode = "X"\nkind = "fixed"\namount = 1')
    assert program.vouchers[0].usage_limit == 1


def test_minimum_basket(shop):
    with pytest.raises(VoucherConditionsNotMetError, match="at least 20"):
        redeem(shop, "TEN-PCT", cart=basket(line("1", "A", "19.99")))
    with pytest.raises(VoucherConditionsNotMetError, match="basket"):
        redeem(shop, "TEN-PCT")  # the minimum cannot be checked without the basket
    assert shop.engine.voucher_uses("TEN-PCT") == 0


def test_validity_window(shop, clock):
    clock.now = datetime(2025, 5, 31, tzinfo=UTC)
    with pytest.raises(VoucherConditionsNotMetError, match="not valid before"):
        redeem(shop, "SUMMER")
    clock.now = datetime(2025, 9, 1, tzinfo=UTC)
    with pytest.raises(VoucherExpiredError, match="expired"):
        redeem(shop, "SUMMER")
    clock.now = datetime(2025, 7, 1, tzinfo=UTC)
    assert redeem(shop, "SUMMER").discount == eur(3)


def test_unknown_code(shop):
    with pytest.raises(VoucherNotFoundError):
        redeem(shop, "NOPE")


def test_owner_bound_voucher(shop):
    ann = shop.customer(identifiers={"email": "ann@example.com"})
    bob = shop.customer()
    shop.engine.issue_voucher(VoucherDef(code="ANNS", kind="fixed", amount={"EUR": Decimal(2)}, owner=ann))
    with pytest.raises(VoucherNotOwnedError) as info:
        redeem(shop, "ANNS", customer_id=bob)
    assert "ann@example.com" not in str(info.value) and ann not in str(info.value)
    with pytest.raises(VoucherNotOwnedError):
        redeem(shop, "ANNS")  # a guest cannot use it either
    assert redeem(shop, "ANNS", customer_id=ann).discount == eur(2)


def test_unknown_customer_on_redeem(shop):
    with pytest.raises(CustomerNotFoundError):
        redeem(shop, "ONCE", customer_id="GHOST")


def test_item_voucher_needs_the_item(shop):
    with pytest.raises(VoucherConditionsNotMetError, match="MUG"):
        redeem(shop, "MUG-2", cart=basket(line("1", "A", "10")))
    result = redeem(shop, "MUG-2", cart=basket(line("1", "MUG", "10", 2)))
    assert result.discount == eur(4)


def test_codes_in_the_quote_accepted_and_rejected_with_reasons(shop):
    redeem(shop, "ONCE", order_ref="elsewhere")
    quote = shop.loyalty.evaluate(basket(line("1", "MUG", "30"), codes=("TEN-PCT", "ONCE", "NOPE", "MUG-2", "SUMMER")))
    status = {c.code: (c.status, c.reason) for c in quote.codes}
    assert status == {
        "TEN-PCT": (CodeStatus.ACCEPTED, None),
        "ONCE": (CodeStatus.REJECTED, "voucher_already_redeemed"),
        "NOPE": (CodeStatus.REJECTED, "voucher_not_found"),
        "MUG-2": (CodeStatus.ACCEPTED, None),
        "SUMMER": (CodeStatus.REJECTED, "voucher_conditions_not_met"),
    }
    by_code = {d.code: d for d in quote.discounts}
    assert by_code["TEN-PCT"].amount == eur(3) and by_code["TEN-PCT"].target is DiscountTarget.ORDER
    assert by_code["MUG-2"].amount == eur(2) and by_code["MUG-2"].line_id == "1"


def test_redeemed_code_stays_accepted_for_its_own_order(shop):
    cart = basket(line("1", "A", "30"), codes=("ONCE",), id="O-1")
    redeem(shop, "ONCE", order_ref="O-1", cart=cart)
    assert shop.loyalty.evaluate(cart).codes[0].status is CodeStatus.ACCEPTED
    other = cart.model_copy(update={"id": "O-2"})
    assert shop.loyalty.evaluate(other).codes[0].reason == "voucher_already_redeemed"


def test_same_key_replays_without_a_second_burn(shop):
    first = redeem(shop, "TEN-PCT", cart=basket(line("1", "A", "30")))
    again = redeem(shop, "TEN-PCT", cart=basket(line("1", "A", "30")))
    assert not first.receipt.replayed and again.receipt.replayed
    assert again.receipt.engine_ref == first.receipt.engine_ref and again.discount == first.discount
    assert shop.engine.voucher_uses("TEN-PCT") == 1


def test_reused_key_for_another_request_is_refused(shop):
    redeem(shop, "ONCE", key="k-1")
    with pytest.raises(InvalidRequestError, match="idempotency key"):
        redeem(shop, "UNLIMITED", key="k-1")


def test_failed_redemption_leaves_nothing_behind(shop):
    before = shop.engine.snapshot()
    with pytest.raises(VoucherNotFoundError):
        redeem(shop, "NOPE")
    assert shop.engine.snapshot() == before


# -- the offer wallet ------------------------------------------------------------------------------


def test_offer_wallet_three_kinds(shop, clock):
    ann = shop.customer()
    codes = {kind: shop.engine.issue_offer(ann, kind) for kind in ("PCT", "FIX", "ITEM")}
    cart = basket(line("1", "MUG", "10"), line("2", "A", "30"), customer_id=ann)
    wallet = {o.id: o for o in shop.loyalty.evaluate(cart).wallet}
    assert wallet[codes["PCT"]].kind == "percent_off_check" and wallet[codes["PCT"]].percent == 15
    assert wallet[codes["FIX"]].kind == "fixed_off_check" and wallet[codes["FIX"]].amount == eur(4)
    assert wallet[codes["ITEM"]].kind == "fixed_off_item" and wallet[codes["ITEM"]].sku == "MUG"
    assert wallet[codes["ITEM"]].expires_at == datetime(2025, 5, 25, 12, tzinfo=UTC)
    assert all(o.applicable for o in wallet.values())

    applied = shop.loyalty.evaluate(cart.model_copy(update={"coupon_codes": tuple(codes.values())}))
    amounts = {d.code: d.amount for d in applied.discounts}
    assert amounts[codes["PCT"]] == eur("6.00")  # 15 % of 40
    assert amounts[codes["FIX"]] == eur(4)
    assert amounts[codes["ITEM"]] == eur(1)

    redeem(shop, codes["FIX"], customer_id=ann)
    assert codes["FIX"] not in {o.id for o in shop.loyalty.evaluate(cart).wallet}
    clock.advance(days=11)
    assert codes["ITEM"] not in {o.id for o in shop.loyalty.evaluate(cart).wallet}  # expired offers leave it


def test_offers_belong_to_their_customer(shop):
    ann = shop.customer()
    bob = shop.customer()
    code = shop.engine.issue_offer(ann, "FIX")
    assert shop.loyalty.evaluate(basket(line("1", "A", "10"), customer_id=bob)).wallet == ()
    with pytest.raises(VoucherNotOwnedError):
        redeem(shop, code, customer_id=bob)
