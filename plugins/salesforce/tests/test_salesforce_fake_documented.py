"""The fake org refuses what the documentation says Salesforce refuses, with the documented codes.

Each case cites the reference section (../shared/reference/salesforce_loyalty.md) and vendor page
its rule comes from. These tests talk HTTP to the fake directly, with no adapter in between, so
an adapter mistake cannot make them pass.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit_salesforce.fake import SalesforceFake

BASE = "https://org.my.salesforce.com"
V = "/services/data/v65.0"
PROGRAM = "NTO%20Insider"


@pytest.fixture
def org():
    fake = SalesforceFake(program="NTO Insider")
    fake.add_member(membership_number="M1", points=Decimal(100))
    fake.add_voucher(member="M1", code="TEN", type="FixedValue", face_value=Decimal(10))
    client = httpx.Client(base_url=BASE, transport=fake.transport())
    token = client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": fake.client_id, "client_secret": fake.client_secret,
    }).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield fake, client
    client.close()


def redeem(client, code="TEN", member="M1", body=None):
    return client.post(f"{V}/loyalty/programs/{PROGRAM}/members/{member}/vouchers/{code}/redeem", json=body or {})


def error(response):
    body = response.json()
    assert isinstance(body, list), "Salesforce errors are a JSON array (reference 8)"
    return response.status_code, body[0]["errorCode"], body[0]["message"]


def test_bad_token_is_401_invalid_session_id(org):
    _, client = org
    client.headers["Authorization"] = "Bearer nope"
    assert error(client.get(f"{V}/loyalty-programs/{PROGRAM}/members", params={"membershipNumber": "M1"}))[:2] == (
        401, "INVALID_SESSION_ID")  # reference 1d


def test_redeem_success_is_201_with_the_action_status(org):
    _, client = org
    assert redeem(client, body={"action": "Reserve", "reservationKey": "k"}).status_code == 201  # reference 4b
    answer = redeem(client, body={"action": "Redeem", "reservationKey": "k"})
    assert answer.status_code == 201 and answer.json()["status"] == "Redeemed"


def test_redeem_without_action_from_v62_is_refused(org):
    _, client = org  # reference 4b: "action ... Required" for v62+
    assert error(redeem(client))[0] == 400


def test_already_redeemed_is_409_already_redeemed_voucher(org):
    _, client = org  # Redeem Voucher resource, response code table
    redeem(client, body={"action": "Redeem"})
    assert error(redeem(client, body={"action": "Redeem"}))[:2] == (409, "ALREADY_REDEEMED_VOUCHER")


@pytest.mark.parametrize(("case", "text"), [
    ("code", "Specify a valid voucher code and try again."),
    ("member", "Specify a valid loyalty program membership number and try again."),
    ("expired", "The voucher is expired. Specify a voucher that hasn't expired."),
    ("cancelled", "The voucher is canceled. Specify a voucher that hasn't canceled."),
    ("definition", "voucher definition"),
])
def test_documented_invalid_api_input_rows(org, case, text):
    fake, client = org
    voucher = fake.vouchers[0]
    if case == "expired":
        voucher.status = "Expired"
    elif case == "cancelled":
        voucher.status = "Cancelled"
    elif case == "definition":
        voucher.definition_active = False  # "must be active to redeem the voucher"
    answer = redeem(client, code="NOPE" if case == "code" else "TEN", member="M9" if case == "member" else "M1",
                    body={"action": "Redeem"})
    status, code, message = error(answer)
    assert (status, code) == (400, "INVALID_API_INPUT") and text in message


def test_partial_amount_needs_a_partially_redeemable_fixed_value_voucher(org):
    fake, client = org  # redeemAmount: "only applicable for vouchers issued using Fixed Value voucher definitions"
    assert error(redeem(client, body={"action": "Redeem", "redeemAmount": 4}))[0] == 400
    assert fake.vouchers[0].remaining == Decimal(10)
    fake.vouchers[0].partial = True
    answer = redeem(client, body={"action": "Redeem", "redeemAmount": 4})
    assert answer.status_code == 201 and answer.json()["remainingAmount"] == 6
    assert error(redeem(client, body={"action": "Redeem", "redeemAmount": 7}))[0] == 400  # more than is left


def test_reinstate_after_expiry_answers_expired(org):
    fake, client = org  # reference 4b: {"status": "Expired"} for Reinstate after expiry
    redeem(client, body={"action": "Redeem"})
    from datetime import date

    fake.vouchers[0].expiration = date(2000, 1, 1)
    assert redeem(client, body={"action": "Reinstate"}).json() == {"status": "Expired"}


def test_cancel_accrual_needs_a_cancellation_reason(org):
    _fake, client = org  # reference 7: inputs TransactionJournalId + CancellationReason
    answer = client.post(f"{V}/actions/standard/cancelAccrual", json={"inputs": [{"TransactionJournalId": "0lV1"}]})
    assert answer.json()[0]["isSuccess"] is False


def test_realtime_journal_needs_activity_date_and_answers_status_true(org):
    _, client = org  # reference 5a: ActivityDate required on the object; output carries status
    path = f"{V}/connect/realtime/loyalty/programs/{PROGRAM}"
    journal = {"JournalTypeName": "Accrual", "MembershipNumber": "M1", "TransactionAmount": "10"}
    assert error(client.post(path, json={"transactionJournals": [journal]}))[0] == 400
    ok = client.post(path, json={"transactionJournals": [{**journal, "ActivityDate": "2024-01-01T00:00:00Z"}]})
    assert ok.json()["status"] is True


def test_promotion_execution_distributes_cart_discounts_into_line_amounts(org):
    from loyaltykit_salesforce.fake import FakeRule

    fake, client = org  # Cart Line Details, v65: after-discount amounts include the distributed share
    fake.add_rule(FakeRule(id="0c8A", kind="order_fixed", percent=None, amount=Decimal(10), currency="EUR",
                           sku=None, min_subtotal=None, label="10 off"))
    cart = {"cart": {"cartDetails": [{"transactionAmount": 90, "currencyISOCode": "EUR", "cartLineDetails": [
        {"cartLineProductCode": "A", "cartLineItemQuantity": 1, "cartLineItemAmount": 60, "cartLineItemId": "1"},
        {"cartLineProductCode": "B", "cartLineItemQuantity": 1, "cartLineItemAmount": 30, "cartLineItemId": "2"}]}]}}
    details = client.post(f"{V}/global-promotions-management/promotion-execution", json=cart).json()["cart"]["cartDetails"][0]
    lines = details["cartLineDetails"]
    assert [line["totalCartPromotionsDistributedDiscountAmount"] for line in lines] == [6.67, 3.33]
    assert sum(line["cartLineItemAmountAfterDiscount"] for line in lines) == details["adjustedCartAmount"] == 80
