"""Pure mapping, checked on the bodies the reference documents (copied verbatim where it gives one)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from loyaltykit import Money, Order, Receipt, wire
from loyaltykit.errors import (
    AuthFailedError,
    CustomerNotFoundError,
    EngineError,
    EngineUnavailableError,
    InsufficientBalanceError,
    LoyaltyError,
    MalformedResponseError,
    OutcomeUnknownError,
    VoucherAlreadyRedeemedError,
)
from loyaltykit.models import OfferKind, line_columns
from loyaltykit_sessionm import transformers as tf
from loyaltykit_sessionm.settings import SessionMSettings
from loyaltykit_sessionm.testing import harness_settings

SETTINGS = SessionMSettings(**harness_settings())
CODES = SETTINGS.error_codes


def raw(text: str) -> bytes:
    return text.encode()


# -- Core ----------------------------------------------------------------------------------------


def test_core_error_documented_example_on_http_200_is_an_error():
    body = raw('{"status":"error","errors":{"code":"requires_registered_user"}}')
    with pytest.raises(CustomerNotFoundError) as info:
        tf.core_result(200, body, CODES)
    assert info.value.engine_code == "requires_registered_user"


@pytest.mark.parametrize("status", [200, 404])
def test_core_user_not_found_on_200_or_404(status):
    body = raw('{"status":"error","errors":{"code":"user_not_found","message":"User not found"}}')
    with pytest.raises(CustomerNotFoundError):
        tf.core_result(status, body, CODES)


def test_core_ok_is_returned_and_401_is_auth_failed():
    assert tf.core_result(200, raw('{"status":"ok","user":{"id":"u1"}}'), CODES)["user"]["id"] == "u1"
    with pytest.raises(AuthFailedError):
        tf.core_result(401, b"", CODES)
    with pytest.raises(AuthFailedError):
        tf.core_result(200, raw('{"status":"error","errors":{"code":"invalid_api_key"}}'), CODES)


def test_core_user_maps_to_customer_with_selected_point_account():
    user = tf.loads(raw(json.dumps({
        "id": "0f1e2d3c-0000-4000-8000-000000000001", "external_id": "cust-123", "opted_in": True,
        "email": "a@b.com", "first_name": "Ann", "last_name": "Lee", "account_status": "good",
        "available_points": 999, "tier": "Gold",
        "tier_details": {"point_account_balances": {
            "summary": {"total_points": 1500, "life_time_points": 2000},
            "details": [
                {"account_name": "Bonus", "user_point_account_id": "x1", "point_account_id": "pa-bonus",
                 "grouping_label": "Bonus", "available_balance": 1000, "life_time_value": 1000},
                {"account_name": "Main", "user_point_account_id": "x2", "point_account_id": "pa-spend",
                 "grouping_label": "Spend", "available_balance": 500.5, "life_time_value": 1000},
            ]}},
    })))
    customer = tf.customer_from_user(user, SETTINGS)
    assert customer.id == "0f1e2d3c-0000-4000-8000-000000000001"
    assert customer.tier == "Gold" and customer.status == "good"
    assert customer.points == Decimal("500.5") and isinstance(customer.points, Decimal)
    assert "a@b.com" not in repr(customer)


def test_tier_from_tier_levels_when_no_tier_field():
    user = {"id": "u1", "tier_details": {"tier_levels": [{"tier_overview": {"name": "Silver", "rank": 1}}]}}
    assert tf.customer_from_user(user, SETTINGS).tier == "Silver"


# -- Connect -------------------------------------------------------------------------------------

BRAZE_WALLET = """{"status":"ok","payload":{
  "user":{"opted_in":false,"activated":false},
  "user_id":"00000000-0000-0000-0000-000000000000",
  "user_offers":[{"offer_id":"1a2b3324-...","offer_group_id":"0000...","offer_type":"manual_fulfillment"}],
  "total_records":1,
  "offer_groups":[{"id":"0000...","name":"All Offers","sort_order":0}],
  "offer_categories":[{"id":"9a82...","name":"All Offers","sort_order":0}],
  "total_points":1000,"available_points":100}}"""


def test_connect_wallet_documented_example():
    payload = tf.connect_payload(200, raw(BRAZE_WALLET), CODES)
    assert payload["available_points"] == 100
    offers = tf.wallet_offers(payload, SETTINGS)
    assert [(o.id, o.kind) for o in offers] == [("1a2b3324-...", OfferKind.OTHER)]


def test_wallet_offer_types_from_settings():
    payload = {"user_offers": [
        {"user_offer_id": "uo1", "offer_type": "fixed_amount_check_discount", "amount": 5, "name": "Five"},
        {"user_offer_id": "uo2", "offer_type": "percent_check_discount", "amount": 15},
        {"user_offer_id": "uo3", "offer_type": "custom_pct", "amount": 10},
    ]}
    offers = tf.wallet_offers(payload, SETTINGS, eligible=["uo1"])
    assert offers[0].kind is OfferKind.FIXED_OFF_CHECK and offers[0].amount == Money.of(5, "USD")
    assert offers[0].applicable and not offers[1].applicable
    assert offers[1].kind is OfferKind.PERCENT_OFF_CHECK and offers[1].percent == Decimal(15)
    custom = SessionMSettings(**harness_settings(offer_type_percent_check="custom_pct"))
    assert tf.wallet_offers(payload, custom)[2].kind is OfferKind.PERCENT_OFF_CHECK


@pytest.mark.parametrize("body", [
    '{"status":"error","errors":{"error":"Something failed"}}',
    '{"status":"failed","payload":{}}',
    '{"payload":{"details":[]}}',
])
def test_connect_http_200_with_error_status_is_an_error(body):
    with pytest.raises(EngineError):
        tf.connect_payload(200, raw(body), CODES)


def test_connect_insufficient_points_text_maps_to_insufficient_balance():
    with pytest.raises(InsufficientBalanceError):
        tf.connect_payload(200, raw('{"status":"error","errors":{"error":"insufficient_points"}}'), CODES)


def test_all_balances_selects_account_by_label_then_by_id():
    payload = {"retailer_id": "r", "user_id": "u", "summary": {"total_points": 30, "life_time_points": 40},
               "details": [
                   {"account_name": "A", "point_account_id": "pa-1", "grouping_label": "Earn",
                    "available_balance": 10, "life_time_value": 10},
                   {"account_name": "B", "point_account_id": "pa-2", "grouping_label": "Spend",
                    "available_balance": 20, "life_time_value": 30}]}
    assert tf.points_from_balances(payload, SETTINGS) == (Decimal(20), "pa-2")
    by_id = SessionMSettings(**harness_settings(point_account_id="pa-1"))
    assert tf.points_from_balances(payload, by_id) == (Decimal(10), "pa-1")
    missing = SessionMSettings(**harness_settings(point_account_id="nope"))
    with pytest.raises(MalformedResponseError):
        tf.points_from_balances(payload, missing)


def test_spend_request_matches_the_documented_request_fields():
    documented = json.loads("""{"culture":"en-US","retailer_id":"<guid>","user_id":"<sm user id>",
     "spend_details":[{"amount":25.0,"point_account_ids":["<point_account_id>"],
       "reference_id":"<uuid>","reference_type":"AppSpend","transaction_id":"<your order id>",
       "force_spend":true,"rank":0,"is_return":false,"idempotency_id":"<uuid>",
       "id":"","timestamp":"","overdraft_id":"","overdraft_timestamp":"","point_source_id":""}],
     "allow_partial_success":true,"disable_event_publishing":false,"parallel_mode":false}""")
    built = tf.spend_request(SETTINGS, user_id="u1", points=Decimal("25"), point_account_id="pa-2",
                             key="o1:spend:points", order_ref="o1", idempotency_id="id-1")
    assert set(built) == set(documented)
    assert set(built["spend_details"][0]) == set(documented["spend_details"][0])
    assert built["spend_details"][0]["idempotency_id"] == "id-1"
    assert built["spend_details"][0]["transaction_id"] == "o1"
    assert wire.loads(wire.dumps(built))["spend_details"][0]["amount"] == 25


def test_spend_detail_per_item_failure_is_an_error():
    payload = {"details": [{"amount_spent": 0, "error_status": 2, "message": "insufficient_points"}]}
    with pytest.raises(InsufficientBalanceError):
        tf.spend_detail(payload, CODES)
    ok = {"details": [{"amount_spent": 25, "remaining_balance": 75, "error_status": 0, "tracking_id": "t1"}]}
    result = tf.spend_result(tf.spend_detail(ok, CODES), Decimal(25), "k")
    assert result.points == Decimal(25) and result.remaining.points == Decimal(75)
    assert result.receipt.engine_ref == "t1"


# -- POS -----------------------------------------------------------------------------------------


def test_pos_envelope_fields():
    envelope = tf.pos_envelope(SETTINGS, "rid-1", {"email": "x@example.com"})
    assert set(envelope) == {"store_id", "client_id", "request_id", "culture", "request_payload"}
    assert envelope["client_id"] == SETTINGS.retailer_id  # client code sets client_id to the retailer GUID
    assert envelope["request_id"] == "rid-1"


@pytest.mark.parametrize(('body', 'error'), [
    ('{"status":"ERROR","errors":{"code":"offer_locked","message":"locked"}}', VoucherAlreadyRedeemedError),
    ('{"status":"Failed","errors":{"error_code":"whatever"}}', EngineError),
    ('{"status":"ok","payload":{}}', EngineError),  # POS success is exactly "OK"
    ('{"status":"ERROR","errors":{"code":"pending_processing"}}', OutcomeUnknownError),
    ('{"status":"ERROR","errors":{"code":"internal_server_error"}}', EngineUnavailableError),
])
def test_pos_http_200_with_error_status_is_an_error(body, error):
    with pytest.raises(error):
        tf.pos_payload(200, raw(body), CODES)


def test_pos_ok_without_payload_is_empty():
    assert tf.pos_payload(200, raw('{"status":"OK"}'), CODES) == {}


def test_lock_discount_to_reserved_redemption():
    discount = tf.loads(raw('{"reference_id":"uo-1","reference_id_type":"UserOfferId","pos_discount_id":"pd",'
                            '"status":"Locked","display_name":"Five off","amount":4.99,"user_id":"u1"}'))
    result = tf.redemption_from_discount(discount, "uo-1", "o1:redeem:uo-1", SETTINGS, reserved=True)
    assert result.status.value == "reserved" and result.discount == Money.of("4.99", "USD")
    assert result.receipt.code == "uo-1" and tf.user_offer_of(result.receipt) == "uo-1"
    assert tf.discount_of(result.receipt) == discount  # the Discount object kept as received
    assert tf.discount_of(result.receipt)["amount"] == Decimal("4.99")
    with pytest.raises(MalformedResponseError):
        tf.redemption_from_discount({"status": "Locked"}, "uo-1", "k", SETTINGS, reserved=True)


def test_send_transaction_attributes_customer_through_payments_and_carries_discounts():
    receipt = Receipt(operation="redeem_voucher", engine="sessionm", idempotency_key="k", engine_ref="uo-1",
                      code="uo-1", amount=Money.of("5.00", "USD"))
    order = Order(ref="o-1", currency="USD", customer_id="u-1", total=Money.of("45.10", "USD"),
                  lines=[{"id": "l1", "sku": "A", "quantity": 1, "unit_price": Money.of("50.10", "USD")}],
                  receipts=(receipt,))
    transaction = tf.transaction_from_order(order, SETTINGS)
    assert transaction["transaction_id"] == "o-1" and transaction["is_closed"] is True
    payment = transaction["payments"][0]
    assert payment["user_id"] == "u-1" and payment["user_id_type"] == "SessionM_ID"
    assert transaction["discounts"] == [{"reference_id": "uo-1", "reference_id_type": "UserOfferId",
                                         "amount": 5, "discounted_line_ids": [], "user_id": "u-1"}]
    text = wire.dumps(transaction).decode()
    assert '"amount":45.10' in text and '"unit_price":50.10' in text


def test_eligible_discounts_from_lookup_payload():
    from loyaltykit import Basket

    basket = Basket(id="b", currency="USD", lines=[
        {"id": "l1", "sku": "A", "quantity": 1, "unit_price": Money.of(50, "USD")},
        {"id": "l2", "sku": "B", "quantity": 1, "unit_price": Money.of(50, "USD")}])
    payload = {"user": {"id": "u"}, "offers": [
        {"user_offer_id": "uo1", "offer_id": "o1", "offer_type": "percent_check_discount", "amount": 10,
         "discount_amount": 10.00},
        {"user_offer_id": "uo2", "offer_id": "o2", "offer_type": "fixed_amount_item_discount", "amount": 3,
         "discount_amount": 3, "discounted_line_ids": ["l2"]},
        {"user_offer_id": "uo3", "offer_type": "fixed_amount_check_discount"},  # no amount: not eligible
    ]}
    found = tf.eligible_discounts(payload, basket, SETTINGS)
    assert set(found) == {"uo1", "uo2"}
    assert found["uo1"].percent == Decimal(10) and found["uo1"].line_id is None
    assert found["uo2"].line_id == "l2"
    discounts, codes = tf.code_results(["uo2", "zzz"], found, ["uo1", "uo2", "uo3"], apply_all=False)
    assert [d.code for d in discounts] == ["uo2"]
    assert [c.reason for c in codes] == [None, "voucher_not_found"]
    discounts, _ = tf.code_results([], found, [], apply_all=True)
    assert {d.code for d in discounts} == {"uo1", "uo2"}


# -- numbers and ids -----------------------------------------------------------------------------



def test_derived_ids_are_stable_and_distinct_per_purpose():
    assert tf.derived_id("o1:export", "send_transaction") == tf.derived_id("o1:export", "send_transaction")
    assert tf.derived_id("o1:export", "send_transaction") != tf.derived_id("o2:export", "send_transaction")
    assert tf.derived_id("o1:export", "lock") != tf.derived_id("o1:export", "send_transaction")


def test_derived_ids_are_the_uuid5_of_the_purpose_and_key():
    """The engine ids replayed by SessionM since the first release: UUIDv5 in the kit's namespace."""
    assert tf.derived_id("o1:export", "send_transaction") == str(uuid.uuid5(
        uuid.UUID("5e551011-0000-4000-8000-6c6f79616c74"), "send_transaction:o1:export"))


def test_settings_hide_secrets():
    text = repr(SETTINGS) + str(SETTINGS.model_dump())
    assert "core-secret" not in text and "pos-secret" not in text and "connect-secret" not in text


def test_error_code_settings_extend_the_defaults():
    custom = SessionMSettings(**harness_settings(error_codes={"OFFER_GONE": "voucher_not_found"}))
    assert custom.error_codes["offer_gone"] == "voucher_not_found"
    assert custom.error_codes["user_not_found"] == "customer_not_found"
    with pytest.raises(ValueError):
        SessionMSettings(**harness_settings(error_codes={"x": "no_such_kit_code"}))


def test_numbers_parse_as_decimal():
    assert tf.loads(b'{"a": 0.1}')["a"] == Decimal("0.1")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "sNaN"])
def test_non_finite_numbers_are_malformed_answers(value):
    with pytest.raises(MalformedResponseError):
        tf.decimal(value, "available_points")
    user = {"id": "u1", "available_points": value}
    with pytest.raises(MalformedResponseError):
        tf.customer_from_user(user, SETTINGS)


# -- documented behaviour: error codes, Discount pass-back, store, tax --------------------------


def test_error_codes_match_exactly_never_as_substrings():
    from loyaltykit.errors import CustomerNotFoundError

    body = raw('{"status":"ERROR","errors":{"code":"transaction_not_found","message":"no such transaction"}}')
    with pytest.raises(LoyaltyError) as info:
        tf.pos_payload(200, body, SETTINGS.error_codes)
    assert not isinstance(info.value, CustomerNotFoundError) and info.value.code == "engine_error"


def test_core_not_available_is_a_refusal_not_an_outage():
    body = raw('{"status":"error","errors":{"code":"not_available"}}')
    with pytest.raises(LoyaltyError) as info:
        tf.core_result(200, body, SETTINGS.error_codes)
    assert info.value.code == "engine_error" and not info.value.retryable


def test_bare_core_404_is_customer_not_found():
    from loyaltykit.errors import CustomerNotFoundError

    with pytest.raises(CustomerNotFoundError):
        tf.core_result(404, b"", SETTINGS.error_codes)
    with pytest.raises(CustomerNotFoundError):
        tf.core_result(404, b"<html>Not Found</html>", SETTINGS.error_codes)


def test_spend_error_response_object_is_read_as_its_fields():
    from loyaltykit.errors import InsufficientBalanceError

    payload = {"details": [{"error_status": 3, "message": "",
                            "error_response": {"code": "insufficient_points", "message": "Not enough points"}}]}
    with pytest.raises(InsufficientBalanceError) as info:
        tf.spend_detail(payload, SETTINGS.error_codes)
    assert info.value.engine_code == "insufficient_points" and info.value.engine_message == "Not enough points"


def test_send_transaction_sends_the_lock_discount_as_received():
    # Discount fields as client code sends them back ([R-RWS-T SendTransaction.cs], reference 4.5).
    discount = tf.loads(raw('{"reference_id":"uo-1","reference_id_type":"UserOfferId","pos_discount_id":"PD-7",'
                            '"status":"Locked","display_name":"Five off","image_url":"https://img/x.png",'
                            '"discounted_line_ids":["l1"],"discounted_line_id_quantities":[1],'
                            '"discount_source":"Offer","amount":5.00,"stack_order":0,'
                            '"applied_time":"2024-01-01T00:00:00Z","user_id":"u-1"}'))
    result = tf.redemption_from_discount(discount, "uo-1", "k", SETTINGS, reserved=True)
    order = Order(ref="o-1", currency="USD", customer_id="u-1", total=Money.of("45.10", "USD"),
                  lines=[{"id": "l1", "sku": "A", "quantity": 1, "unit_price": Money.of("50.10", "USD")}],
                  receipts=(result.receipt,), store_id="store-9", channel="pos")
    transaction = tf.transaction_from_order(order, SETTINGS)
    assert transaction["discounts"] == [discount]
    assert b'"amount":5.00' in wire.dumps(transaction["discounts"][0])  # the engine's own digits
    assert transaction["channel"] == "pos"
    assert tf.pos_envelope(SETTINGS, "r", transaction, order.store_id)["store_id"] == "store-9"
    assert "tax_total" not in transaction  # no tax known: none invented


def test_unlock_id_is_the_lock_reference_not_the_ttl_code():
    discount = {"reference_id": "uo-9", "reference_id_type": "UserOfferId", "amount": Decimal(5)}
    result = tf.redemption_from_discount(discount, "483920", "k", SETTINGS, reserved=True)
    assert result.receipt.code == "483920" and tf.user_offer_of(result.receipt) == "uo-9"


def test_line_tax_is_sent_only_when_every_line_says_it():
    lines = [{"id": "l1", "sku": "A", "quantity": 2, "unit_price": Money.of("10.00", "USD"), "attributes": {"tax": "3.20"}},
             {"id": "l2", "sku": "B", "quantity": 1, "unit_price": Money.of("5.00", "USD"), "attributes": {"tax": "0.80"}}]
    order = Order(ref="o-1", currency="USD", customer_id="u", total=Money.of("25.00", "USD"), lines=lines)
    sent = tf.transaction_from_order(order, SETTINGS)
    assert sent["tax_total"] == Decimal("4.00") and [i["tax_included"] for i in sent["items"]] == [
        Decimal("3.20"), Decimal("0.80")]
    partly = order.model_copy(update={"lines": (order.lines[0], order.lines[1].model_copy(update={"attributes": {}}))})
    assert "tax_total" not in tf.transaction_from_order(partly, SETTINGS)
    bad = order.model_copy(update={"lines": (order.lines[0].model_copy(update={"attributes": {"tax": "x"}}),)})
    with pytest.raises(LoyaltyError) as info:
        tf.transaction_from_order(bad, SETTINGS)
    assert info.value.code == "invalid_request" and info.value.field == "lines.l1.attributes.tax"


def test_return_transaction_negates_the_refunded_lines():
    from loyaltykit import Reversal

    order = Order(ref="o-1", currency="USD", customer_id="u", total=Money.of("90.00", "USD"),
                  lines=[{"id": "l1", "sku": "A", "quantity": 2, "unit_price": Money.of("25.00", "USD")},
                         {"id": "l2", "sku": "B", "quantity": 1, "unit_price": Money.of("50.00", "USD")}])
    reversal = Reversal(order=order, kind="refund", lines=[{"line_id": "l1", "quantity": 1}], reference="r1")
    sent = tf.return_transaction(order, reversal, SETTINGS, Decimal("22.50"))
    assert sent["transaction_id"] == "o-1:return:r1" and sent["from_transaction_id"] == "o-1"
    assert [(i["line_id"], i["quantity"], i["subtotal"]) for i in sent["items"]] == [("l1", Decimal(-1), Decimal("-25.00"))]
    assert sent["payments"][0]["amount"] == Decimal("-22.50") and sent["payments"][0]["user_id"] == "u"


def test_error_table_is_plain_exact_data():
    assert "not_available" not in tf.DEFAULT_ERROR_CODES and "not_found" not in tf.DEFAULT_ERROR_CODES
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tf.DEFAULT_ERROR_CODES.items())


def test_sale_items_written_ahead_are_the_bytes_of_the_item_dicts():
    lines = [{"id": f"l{n}", "sku": f'SKU "{n}" é', "quantity": n, "unit_price": Money.of(f"{n}.05", "USD")}
             for n in range(1, 30)]
    total = sum((Decimal(f"{n}.05") * n for n in range(1, 30)), Decimal(0))
    order = Order(ref="o-1", currency="USD", customer_id="u", total=Money.of(total, "USD"), lines=lines)
    sent = tf.transaction_from_order(order, SETTINGS)
    assert isinstance(sent["items"], wire.Records)  # no tax attribute: written while the body is built
    as_dicts = {**sent, "items": tf._items(order.lines, SETTINGS)}
    assert wire.dumps(sent) == wire.dumps(as_dicts)
    assert sent["items"].rows()[2] == {"line_id": "l3", "item_id": 'SKU "3" é', "quantity": 3,
                                       "unit_price": Decimal("3.05"), "subtotal": Decimal("9.15")}


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6])
def test_sale_items_are_the_same_bytes_as_dicts_or_as_records(count):
    # few lines go as dicts, more as Records: the body is byte for byte the same either way
    lines = [{"id": f"l{n}", "sku": f'SKU "{n}" é', "quantity": Decimal(f"{n}.5"), "unit_price": Money.of(f"{n}.05", "USD")}
             for n in range(1, count + 1)]
    total = sum((Money.of(f"{n}.05", "USD").amount * Decimal(f"{n}.5") for n in range(1, count + 1)), Decimal(0))
    order = Order(ref="o-1", currency="USD", customer_id="u", total=Money.of(total, "USD"), lines=lines)
    sent = tf.transaction_from_order(order, SETTINGS)
    assert isinstance(sent["items"], list if count <= tf._DICT_ITEMS_UP_TO else wire.Records)
    as_records = {**sent, "items": wire.Records.of_columns(tf._ITEM_FIELDS, line_columns(order.lines, "USD"))}
    as_dicts = {**sent, "items": tf._items(order.lines, SETTINGS)}
    assert wire.dumps(sent) == wire.dumps(as_records) == wire.dumps(as_dicts)
    assert str(sent["subtotal"]) == str(order.subtotal.amount)  # the same digits as the order's own sum


@pytest.mark.parametrize(("when", "text"), [
    (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "2024-05-01T12:00:00.000Z"),
    (datetime(2024, 5, 1, 12, 0, 0, 123999, tzinfo=UTC), "2024-05-01T12:00:00.123Z"),  # truncated, not rounded
    (datetime(2024, 5, 1, 0, 30, 5, 7000, tzinfo=timezone(timedelta(hours=2))), "2024-04-30T22:30:05.007Z"),
])
def test_timestamps_are_utc_to_the_millisecond(when, text):
    assert tf.timestamp(when) == text


def test_a_timestamp_without_a_time_is_now_in_utc():
    before = datetime.now(UTC).replace(microsecond=0)
    written = datetime.strptime(tf.timestamp(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= written <= datetime.now(UTC)
