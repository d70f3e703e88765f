"""Transformers against the bodies the public reference documents (crmcom.md §2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from loyaltykit_crmcom import transformers as tf
from loyaltykit_crmcom.settings import CrmcomSettings

from loyaltykit import Line, Money, wire
from loyaltykit.errors import (
    AuthFailedError,
    CustomerNotFoundError,
    EngineError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedResponseError,
    OutcomeUnknownError,
    VoucherExpiredError,
)

TABLE = tf.error_table()
SETTINGS = CrmcomSettings(base_url="https://crm.example", web_api_key="K" * 32, performed_by_unit_id="U1")

# §2.5, the MOCK body of customer_events/purchases/create (the default product substituted).
MOCK_TEXT = """{"status": {"code": "OK", "message": "Purchase created", "description": null},
 "data": {"id": "01B0FD5A49814677BBF15662482C39FE", "number": "CE12345",
   "total_awarded_amount": 0.75, "total_spend_amount": 0, "external_system_reference_number": null,
   "products_set": [{"id": "P1", "quantity": 1, "net_amount": 50, "vat_amount": 10, "total_amount": 60,
                     "intended_product_identifier": "CODE", "intended_product_value": "SKU-NEW",
                     "product": {"id": "D1", "code": "DEFAULT_PRODUCT", "alternative_code": "SRDP",
                                 "description": "DEFAULT_PRODUCT", "product_type": {}}}],
   "award_reward_transactions_set": [{"id": "A1", "number": "1178", "life_cycle_state": "POSTED", "amount": 0.5,
      "rewards_participant": {"id": "R1", "number": "RP0000000019",
         "accounts_receivable": {"id": "AR1", "number": "ACR0000000164", "name": "N", "life_cycle_state": "ACTIVE",
                                 "account_owner": {}}}}],
   "udf_float_1": 1, "non_winning_message": "<p>...</p>"}}"""


def mock_purchase():
    return wire.loads(MOCK_TEXT)


def test_success_envelope_gives_data():
    assert tf.unwrap({"status": {"code": "OK", "message": None, "description": None}, "data": {"token": "t"}},
                     TABLE, "OK") == {"token": "t"}


@pytest.mark.parametrize(("message", "error"), [
    ("Invalid token", AuthFailedError),
    ("Access token not found", CustomerNotFoundError),
    ("Spend amount exceeds the wallet balance", InsufficientBalanceError),
    ("Reference number already exists", OutcomeUnknownError),  # looked up, never re-sent blind
    ("The customer event is not POSTED", EngineError),
    ("Spending is not allowed", InsufficientBalanceError),
    ("spend_amount is mandatory", InvalidRequestError),
    ("Something nobody documented", EngineError),
])
def test_any_code_but_ok_is_a_classified_failure(message, error):
    body = {"status": {"code": "ERROR", "message": message, "description": None}, "data": None}
    with pytest.raises(error) as caught:
        tf.unwrap(body, TABLE, "OK")
    assert type(caught.value) is error and caught.value.engine_code == "ERROR"
    assert message not in str(caught.value)  # the engine's text is kept apart, in engine_message
    assert caught.value.engine_message == message


def test_the_error_patterns_setting_extends_the_documented_phrases():
    table = tf.error_table({"E_EXPIRED": "voucher_expired", "Gutschein abgelaufen": "voucher_expired"})
    for code, message in (("E_EXPIRED", "whatever"), ("ERROR", "Der Gutschein abgelaufen")):
        with pytest.raises(VoucherExpiredError):
            tf.unwrap({"status": {"code": code, "message": message}, "data": None}, table, "OK")
    with pytest.raises(InsufficientBalanceError):  # the documented phrases stay
        tf.unwrap({"status": {"code": "ERROR", "message": "Insufficient funds"}, "data": None}, table, "OK")


def test_a_token_refusal_is_recognised_in_a_200_body_and_nothing_else_is():
    import httpx

    def answer(message, status=200):
        return httpx.Response(status, content=wire.dumps(
            {"status": {"code": "ERROR", "message": message, "description": None}, "data": None}))

    assert tf.token_refused(answer("Invalid token"), TABLE, "OK")
    assert tf.token_refused(httpx.Response(401, content=b""), TABLE, "OK")
    assert not tf.token_refused(answer("Spend amount exceeds the wallet balance"), TABLE, "OK")
    assert not tf.token_refused(httpx.Response(200, content=b"<html>"), TABLE, "OK")
    ok = httpx.Response(200, content=wire.dumps({"status": {"code": "OK"}, "data": {"token": "t" * 40}}))
    assert not tf.token_refused(ok, TABLE, "OK") and tf.token_from(ok, TABLE, "OK") == "t" * 40
    with pytest.raises(AuthFailedError):
        tf.token_from(answer("Invalid Web API key"), TABLE, "OK")


def test_an_envelope_without_a_code_is_malformed():
    with pytest.raises(MalformedResponseError, match="status"):
        tf.unwrap({"data": {}}, TABLE, "OK")


def test_mock_purchase_body_maps_totals_and_default_product():
    purchase = tf.purchase_from(tf.unwrap(mock_purchase(), TABLE, "OK"))
    assert purchase.id == "01B0FD5A49814677BBF15662482C39FE" and purchase.number == "CE12345"
    assert purchase.awarded == Decimal("0.75") and purchase.spent == 0
    assert purchase.total == Decimal(60)
    assert purchase.lines[0].product_code == "DEFAULT_PRODUCT"
    assert purchase.lines[0].intended_product == "SKU-NEW"


def test_a_bad_amount_names_its_path():
    data = tf.unwrap(mock_purchase(), TABLE, "OK")
    data["products_set"][0]["total_amount"] = "sixty"
    with pytest.raises(MalformedResponseError, match=r"data\.products_set\[0\]\.total_amount"):
        tf.purchase_from(data)


def test_preview_fields():
    # §2.4: purchase_customer_event_preview_complete
    preview = tf.preview_from({
        "total_award_amount": Decimal("2.50"), "total_instant_spend_amount": 0, "total_automatic_spend_amount": 0,
        "total_additional_spend_amount": Decimal("20.00"), "minimum_spend_amount_per_transaction": Decimal("1"),
        "maximum_spend_amount_per_transaction": Decimal("15"), "reduction_method": "FRONT_END_REDUCTION",
        "rewards_participant_id": "R1", "rewards_participant_name": "N", "wallet_balance": Decimal("20.00"),
        "allow_spending": True,
    })
    assert (preview.award, preview.additional_spend, preview.minimum_spend, preview.maximum_spend) == (
        Decimal("2.50"), Decimal(20), Decimal(1), Decimal(15))
    assert preview.reduction_method == "FRONT_END_REDUCTION" and preview.allow_spending
    assert "rewards_participant_name" not in preview.raw  # a name is customer data


def test_spend_request_object():
    # §2.6: id, number, type, life_cycle_state, spend_amount, external reference
    spend = tf.spend_from({"id": "S1", "number": "SR1", "type": "SPEND REQUEST", "life_cycle_state": "POSTED",
                           "spend_amount": Decimal("5.00"), "external_system_reference_number": "LKS-1"})
    assert (spend.id, spend.amount, spend.state, spend.reference) == ("S1", Decimal("5.00"), "POSTED", "LKS-1")


def test_purchase_request_lines_carry_net_vat_total():
    line = Line(id="1", sku="COFFEE", quantity=2, unit_price=Money.of("12.10", "EUR"), attributes={"vat_rate": "21"})
    body = tf.purchase_body(SETTINGS, "7712345678", (line,), "ORD-1")
    assert body["reference_number"] == body["external_system_reference_number"] == "ORD-1"
    assert body["accounts_receivable_identifier"] == {"access_token_identifier": {"authentication_code": "7712345678"}}
    assert body["performed_by_unit_identifier"] == {"id": "U1"}
    (item,) = body["products_set"]
    assert item["product_identifier"] == {"code": "COFFEE"} and item["quantity"] == 2
    assert item["total_amount"] == Decimal("24.20") and item["vat_amount"] == Decimal("4.20")
    assert item["net_amount"] + item["vat_amount"] == item["total_amount"]
    assert b"24.20" in wire.dumps(body)  # Decimal-exact on the wire


def test_spend_request_settles_its_purchase():
    purchase = tf.purchase_from(tf.unwrap(mock_purchase(), TABLE, "OK"))
    body = tf.spend_body(SETTINGS, "7712345678", purchase, Decimal("5.00"), "LKS-ABC")
    assert body["purchase_customer_request_identifier"] == {"id": purchase.id}
    assert body["spend_amount"] == Decimal("5.00") and body["external_system_reference_number"] == "LKS-ABC"


def test_reference_is_deterministic_and_carries_no_key_text():
    first = tf.reference_for("LKS-", "ORD-1:spend:cashback")
    assert first == tf.reference_for("LKS-", "ORD-1:spend:cashback") != tf.reference_for("LKS-", "ORD-2:spend")
    assert "ORD" not in first


def test_access_token_to_customer():
    token = {"id": "T1", "number": "AT1", "life_cycle_state": "EFFECTIVE", "authentication_code": "7712345678"}
    customer = tf.customer_from(token, Decimal("12.50"), "EUR")
    assert customer.id == "7712345678" and customer.balances[0].money == Money.of("12.50", "EUR")
    assert tf.customer_from({**token, "life_cycle_state": "NOT_EFFECTIVE"}, None, "EUR") is None


def test_lines_carry_what_they_cost_after_the_order_discounts():
    # §2.5: the Gen A line has net, VAT and total only (no discount field): discounts lower the amounts.
    line = Line(id="1", sku="COFFEE", quantity=2, unit_price=Money.of("12.10", "EUR"), attributes={"vat_rate": "21"})
    other = Line(id="2", sku="MUG", quantity=1, unit_price=Money.of("10.00", "EUR"))
    body = tf.purchase_body(SETTINGS, "7712345678", (line, other), "ORD-1", paid={"1": Decimal("18.15")})
    first, second = body["products_set"]
    assert first["total_amount"] == Decimal("18.15") and first["vat_amount"] == Decimal("3.15")
    assert first["net_amount"] == Decimal("15.00")
    assert second["total_amount"] == Decimal("10.00")  # no allocation given: unit price x quantity


@pytest.mark.parametrize(("mode", "path", "expected"), [
    ("create_spend", "spend_amount", {"spend_amount": Decimal("5.00")}),
    ("inside_create", "spend_request.amount", {"spend_request": {"amount": Decimal("5.00")}}),
    ("inside_create", "spend_amount", {"spend_amount": Decimal("5.00")}),
])
def test_a_purchase_that_carries_its_spend(mode, path, expected):
    # §2.6: create_spend (R9-R16) creates the purchase and its spend; from R17 purchases/create
    # carries the spend. Both bodies are the purchase's (§2.5) plus the amount at the configured path.
    settings = SETTINGS.model_copy(update={"spend_mode": mode, "create_spend_amount_path": path
                                           if mode == "create_spend" else "spend_amount",
                                           "inside_create_spend_path": path})
    line = Line(id="1", sku="COFFEE", quantity=1, unit_price=Money.of("30.00", "EUR"))
    body = tf.purchase_spend_body(settings, "7712345678", (line,), "ORD-1", Decimal("5.00"), "LKS-ABC")
    plain = tf.purchase_body(settings, "7712345678", (line,), "ORD-1", when=None)
    assert body["reference_number"] == "ORD-1" and body["external_system_reference_number"] == "LKS-ABC"
    assert body["products_set"] == plain["products_set"]
    assert {k: body[k] for k in expected} == expected
    assert set(body) - set(plain) == set(expected)


def test_set_path_refuses_a_path_through_a_value():
    with pytest.raises(ValueError, match="spend_amount"):
        tf.set_path({"spend_amount": 1}, "spend_amount.value", 2)


def test_purchase_answer_with_its_spend():
    # §2.6: from R17 the purchase answer's total_spend_amount (confirmed by MOCK) says what was spent.
    data = mock_purchase()["data"]
    data.update(total_spend_amount=5, external_system_reference_number="LKS-ABC", reference_number="ORD-1")
    purchase = tf.purchase_from(data)
    assert purchase.spent == Decimal("5") and purchase.reference == "ORD-1"
    assert purchase.external_reference == "LKS-ABC"
