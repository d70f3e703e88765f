"""Pure mapping: the confirmed bodies exactly as documented, the assumed ones as wire.py states."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from loyaltykit_maxxing import transformers as tf, wire
from loyaltykit_maxxing.settings import MaxxingSettings
from loyaltykit_maxxing.testing import harness_settings

from loyaltykit import Basket, Line, Money, Order
from loyaltykit.errors import (
    CustomerNotFoundError,
    EngineError,
    InvalidRequestError,
    MalformedResponseError,
    VoucherAlreadyRedeemedError,
)
from loyaltykit.models import CodeStatus, DiscountTarget, ExportStatus, RefundLine, Reversal, ReversalKind
from loyaltykit.reconcile import ends_batch, export_result_from_error


@pytest.fixture
def s() -> MaxxingSettings:
    return MaxxingSettings(**harness_settings())


def basket(**extra) -> Basket:
    lines = (Line(id="l1", sku="SKU-A", quantity=2, unit_price=Money.of("20.00", "EUR"), category="coffee"),
             Line(id="l2", sku="SKU-B", quantity=1, unit_price=Money.of("10.00", "EUR")))
    return Basket(id="cart-1", currency="EUR", lines=lines, **extra)


def response(body: bytes | str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body.encode() if isinstance(body, str) else body)


# -- confirmed (reference maxxing.md §1.2) --------------------------------------------------------


def test_card_lookup_body_is_the_documented_one(s):
    assert tf.card_lookup(s, "925012345678") == {"storeChain": "0", "card_key": "925012345678"}


def test_paths_follow_the_documented_rest_layout(s):
    assert s.path("customer_by_card") == (
        "backoffice", "/MPCM/Web/api/rest/5.6/CustomerInformationServer/getCustomerByCardKey")
    assert s.path("customers") == ("backoffice", "/MPCM/Web/api/rest/5.6/CustomerInformationServer/getCustomers")
    other = MaxxingSettings(**harness_settings(api_version="6.0"))
    assert other.path("customers")[1].startswith("/MPCM/Web/api/rest/6.0/")


def test_documented_customer_answer_maps_to_a_customer(s):
    body = '{"customer": {"cust_id": 1234567, "card_key": "925012345678", "account_key": "987654"}}'
    record = tf.answer(response(body), wire.CustomerAnswer, s).customer
    customer = tf.customer(record)
    assert customer.id == "1234567"  # a numeric id becomes text
    assert customer.membership_number == "925012345678"
    assert customer.raw == {"account_key": "987654"}
    assert "925012345678" not in repr(customer)


def test_unknown_card_is_no_customer_or_a_not_found_error(s):
    assert tf.answer(response('{"customer": null}'), wire.CustomerAnswer, s).customer is None
    with pytest.raises(CustomerNotFoundError):
        tf.answer(response('{"errorCode": "CARD_NOT_FOUND", "errorMessage": "x"}'), wire.CustomerAnswer, s)


# -- answers and errors -----------------------------------------------------------------------------


def test_error_envelope_on_http_200_is_an_error(s):
    with pytest.raises(VoucherAlreadyRedeemedError) as info:
        tf.answer(response('{"errorCode": "VOUCHER_ALREADY_BURNT", "errorMessage": "used"}'),
                  wire.TransactionAnswer, s)
    assert info.value.engine_code == "VOUCHER_ALREADY_BURNT"


def test_unknown_error_code_is_an_engine_error_with_the_code(s):
    with pytest.raises(EngineError) as info:
        tf.answer(response('{"errorCode": "SOMETHING_NEW"}'), wire.TransactionAnswer, s)
    assert type(info.value) is EngineError and info.value.engine_code == "SOMETHING_NEW"


def test_error_table_is_a_setting(s):
    from loyaltykit.errors import VoucherExpiredError

    custom = MaxxingSettings(**harness_settings(error_codes={"something_new": "voucher_expired"}))
    table = tf.error_table(custom)
    assert table.kit_code(200, "SOMETHING_NEW", None) == "voucher_expired"
    assert table.kit_code(200, "VOUCHER_ALREADY_BURNT", None) == "voucher_already_redeemed"  # defaults stay
    assert tf.error_table(s).kit_code(200, "SOMETHING_NEW", None) is None
    with pytest.raises(VoucherExpiredError):
        tf.answer(response('{"errorCode": "Something_New"}'), wire.TransactionAnswer, custom)
    with pytest.raises(ValueError):
        MaxxingSettings(**harness_settings(error_codes={"X": "no_such_kit_code"}))


def test_error_patterns_classify_unknown_codes_by_message():
    s = MaxxingSettings(**harness_settings(error_patterns={"Solde insuffisant": "insufficient_balance"}))
    from loyaltykit.errors import InsufficientBalanceError

    with pytest.raises(InsufficientBalanceError):
        tf.answer(response('{"errorCode": "E42", "errorMessage": "SOLDE INSUFFISANT sur le compte"}'),
                  wire.TransactionAnswer, s)
    with pytest.raises(ValueError):
        MaxxingSettings(**harness_settings(error_patterns={"x": "nope"}))


def test_malformed_answers_name_the_body_path(s):
    with pytest.raises(MalformedResponseError, match=r"body: .*not JSON"):
        tf.answer(response("{oops"), wire.TransactionAnswer, s)
    bad = '{"transaction": {"transaction_key": "k", "type": "SALE", "status": "CONFIRMED", "amount": "lots"}}'
    with pytest.raises(MalformedResponseError, match=r"body\.transaction\.amount"):
        tf.answer(response(bad), wire.TransactionAnswer, s)
    with pytest.raises(MalformedResponseError, match="body: expected an object"):
        tf.answer(response("[1, 2]"), wire.TransactionAnswer, s)


def test_http_4xx_without_envelope_is_refused(s):
    with pytest.raises(InvalidRequestError):
        tf.answer(response("{}", 400), wire.TransactionAnswer, s)


def test_amounts_are_decimal_never_float(s):
    body = '{"transaction": {"transaction_key": "k", "type": "CASHBACK_BURN", "status": "CONFIRMED", "amount": 0.10}}'
    record = tf.answer(response(body), wire.TransactionAnswer, s).transaction
    assert record.amount == Decimal("0.10") and isinstance(record.amount, Decimal)


# -- assumed bodies (wire.py defaults) --------------------------------------------------------------


def test_compute_request_carries_store_channel_lines_and_codes(s):
    body = tf.compute_request(s, basket(customer_id="1001", coupon_codes=("WELCOME",), channel="APP"))
    assert body["storeChain"] == "0" and body["store"] == "42" and body["channel"] == "APP"
    assert body["simulation"] is True and body["codes"] == ["WELCOME"] and body["cust_id"] == "1001"
    assert body["lines"][0] == {"line_id": "l1", "item_code": "SKU-A", "quantity": Decimal(2),
                                "unit_price": Decimal("20.00"), "category": "coffee"}
    assert "shipping" not in body  # None fields are not sent
    assert tf.compute_request(s, basket())["channel"] == "WEB"  # the default channel


def test_evaluation_maps_discounts_codes_messages_and_earn(s):
    result = wire.ComputeAnswer.model_validate({
        "discounts": [
            {"level": "ORDER", "amount": Decimal("5.00"), "promo_id": "P1", "label": "Five off"},
            {"level": "LINE", "line_id": "l1", "amount": Decimal("4.00"), "percent": Decimal(10)},
            {"level": "LINE", "line_id": "nope", "amount": Decimal("1.00")},
            {"level": "BUNDLE", "amount": Decimal("1.00")},
        ],
        "codes": [{"code": "OK1", "status": "ACCEPTED"},
                  {"code": "BAD", "status": "REJECTED", "reason_code": "VOUCHER_EXPIRED", "message": "too late"}],
        "messages": [{"text": "Spend 10 more", "type": "PROMOTION"}],
        "rewards": [{"type": "CASHBACK", "amount": Decimal("1.20")}, {"type": "POINTS", "amount": 41}],
        "balances": [{"type": "CASHBACK", "amount": Decimal("7.50"), "currency": "EUR"}],
    })
    quote = tf.evaluation(basket(coupon_codes=("OK1", "BAD", "SILENT")), result, s)
    assert quote.discount_total == Money.of("9.00", "EUR")
    assert [d.target for d in quote.discounts] == [DiscountTarget.ORDER, DiscountTarget.LINE]
    assert [u.type for u in quote.unmapped] == ["discount:LINE", "discount:BUNDLE"]  # kept, not dropped
    codes = {c.code: c for c in quote.codes}
    assert codes["OK1"].status is CodeStatus.ACCEPTED
    assert codes["BAD"].status is CodeStatus.REJECTED and codes["BAD"].reason == "voucher_expired"
    assert codes["SILENT"].status is CodeStatus.REJECTED and codes["SILENT"].reason == "voucher_not_found"
    assert quote.messages[0].kind == "promotion"
    assert quote.points_to_earn == 41
    assert quote.spendable[0].money == Money.of("7.50", "EUR")


def test_confirm_request_carries_order_number_store_channel_and_tenders(s):
    from loyaltykit import Receipt

    spend = Receipt(operation="spend_cashback", engine="maxxing", idempotency_key="ORD-1:spend:cashback",
                    engine_ref="lk-ORD-1:spend:cashback", amount=Money.of("5.00", "EUR"))
    order = Order.from_evaluation("ORD-1", basket(customer_id="1001", store_id="S7", channel="WEB",
                                                  coupon_codes=("STORE5",)), None, [spend])
    body = tf.confirm_request(s, order, "lk-ORD-1:export")
    assert (body["order_number"], body["store"], body["channel"]) == ("ORD-1", "S7", "WEB")
    assert body["transaction_key"] == "lk-ORD-1:export" and body["codes"] == ["STORE5"]
    assert body["tenders"] == [{"type": "CASHBACK", "amount": Decimal("5.00"),
                                "transaction_key": "lk-ORD-1:spend:cashback"}]
    assert body["total"] == Decimal("50.00")


def test_cashback_burn_carries_the_amount_due_when_known(s):
    from loyaltykit import CashbackSpend

    spend = CashbackSpend(customer_id="1001", order_ref="ORD-1", amount=Money.of("5.00", "EUR"))
    body = tf.burn_cashback_request(s, spend, "lk-k", amount_due=Money.of("30.00", "EUR"))
    assert body["tender"] == "CASHBACK" and body["amount"] == Decimal("5.00") and body["amount_due"] == Decimal("30.00")
    assert "amount_due" not in tf.burn_cashback_request(s, spend, "lk-k")


def test_refund_request_sends_lines_and_their_value(s):
    order = Order.from_evaluation("ORD-1", basket(customer_id="1001"))
    partial = Reversal(order=order, kind=ReversalKind.REFUND, reference="r1",
                       lines=(RefundLine(line_id="l1", quantity=1),))
    body = tf.refund_request(s, partial, "lk-r", "lk-ORD-1:export")
    assert body["lines"] == [{"line_id": "l1", "quantity": Decimal(1)}] and body["amount"] == Decimal("20.00")
    full = tf.refund_request(s, Reversal(order=order, kind=ReversalKind.REFUND), "lk-r", "lk-x")
    assert full["amount"] == Decimal("50.00") and len(full["lines"]) == 2


def test_product_prices_never_exceed_the_list_price(s):
    from loyaltykit import ProductQuery

    query = ProductQuery(currency="EUR", products=basket().lines)
    answer = wire.PriceProductsAnswer.model_validate({"products": [
        {"item_code": "SKU-A", "price": Decimal("20.00"), "discounted_price": Decimal("25.00")}]})
    prices = tf.product_prices(query, answer)
    assert [p.discounted_price for p in prices] == [Money.of("20.00", "EUR"), Money.of("10.00", "EUR")]


def test_export_result_from_error_keeps_transient_failures_queued():
    from loyaltykit.errors import AuthFailedError, EngineUnavailableError, OutcomeUnknownError

    assert export_result_from_error("O1", EngineUnavailableError("down")).status is ExportStatus.RETRY_LATER
    assert export_result_from_error("O1", OutcomeUnknownError("lost")).status is ExportStatus.RETRY_LATER
    assert export_result_from_error("O1", CustomerNotFoundError("who")).status is ExportStatus.REJECTED
    assert ends_batch(AuthFailedError("no")) and not ends_batch(CustomerNotFoundError("who"))


def test_operations_are_settings_and_unknown_ones_are_refused():
    moved = MaxxingSettings(**harness_settings(
        operations={"confirm": {"service": "backoffice", "path": "SaleServer/postSale"}}))
    assert moved.path("confirm") == ("backoffice", "/MPCM/Web/api/rest/5.6/SaleServer/postSale")
    assert moved.path("compute")[1].endswith("TransactionServer/computeTransaction")  # others keep defaults
    with pytest.raises(ValueError, match="unknown operations"):
        MaxxingSettings(**harness_settings(operations={"teleport": {"service": "compute", "path": "A/b"}}))


def test_settings_repr_hides_the_password():
    settings = MaxxingSettings(**harness_settings())
    assert "kit-api-password" not in repr(settings) and "kit-api-password" not in str(settings.model_dump())


def test_http_401_without_envelope_is_an_auth_failure(s):
    from loyaltykit.errors import AuthFailedError

    with pytest.raises(AuthFailedError):
        tf.answer(response("{}", 401), wire.TransactionAnswer, s)


def test_error_patterns_match_whole_words_only():
    s = MaxxingSettings(**harness_settings(error_patterns={"solde": "insufficient_balance"}))
    with pytest.raises(EngineError) as info:
        tf.answer(response('{"errorCode": "E42", "errorMessage": "soldes en cours"}'), wire.TransactionAnswer, s)
    assert type(info.value) is EngineError and info.value.engine_code == "E42"
