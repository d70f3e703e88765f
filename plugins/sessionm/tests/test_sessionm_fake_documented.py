"""The SessionM fake refuses what the documentation says SessionM refuses.

HTTP straight to the fake, no adapter in between. Each case cites the reference section
(../shared/reference/sessionm.md) and source key its rule comes from.
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from loyaltykit_sessionm.fake import SessionMFake


@pytest.fixture
def pos():
    fake = SessionMFake()
    user = fake.add_user(points=Decimal(10))
    offer = fake.add_offer(offer_type=fake.FIXED, name="Five", amount=Decimal(5))
    uo = fake.issue(user.id, offer.offer_id, ttl_code="123456")
    client = httpx.Client(base_url="https://cloudpos.example", transport=fake.transport(), auth=("pos-key", "pos-secret"))
    yield fake, client, user, uo
    client.close()


def call(client, fake, operation, payload, request_id):
    envelope = {"store_id": "s1", "client_id": fake.client_id, "request_id": request_id, "culture": "en-US",
                "request_payload": payload}
    return json.loads(client.post(f"/api/2.0/{operation}", json=envelope).content, parse_float=Decimal)


def transaction(tid="t1"):
    return {"transaction_id": tid, "is_closed": False, "items": [
        {"line_id": "l1", "item_id": "A", "quantity": 1, "unit_price": 20, "subtotal": 20}]}


def test_pos_envelope_needs_request_id(pos):
    fake, client, _, _ = pos  # [D-POS-DTO]: request_id is required
    body = client.post("/api/2.0/lookup", json={"store_id": "s1", "client_id": fake.client_id,
                                                "request_payload": {}}).json()
    assert body["status"] != "OK"


def test_lock_by_ttl_code_and_unlock_needs_the_user_offer_id_and_employee(pos):
    fake, client, _, uo = pos  # [D-POS-LOCK] / [D-POS-UNLOCK]: unlock {user_offer_id, employee_id}
    locked = call(client, fake, "lock", {"offer_lookup_code": "123456", "offer_lookup_type": "TTLCode",
                                         "transaction": transaction()}, "r1")
    assert locked["status"] == "OK" and locked["payload"]["reference_id"] == uo.user_offer_id
    assert call(client, fake, "unlock", {"user_offer_id": uo.user_offer_id}, "r2")["status"] != "OK"
    assert call(client, fake, "unlock", {"user_offer_id": "123456", "employee_id": "e"}, "r3")["status"] != "OK"
    assert uo.status == "LOCKED"
    assert call(client, fake, "unlock", {"user_offer_id": uo.user_offer_id, "employee_id": "e"}, "r4")["status"] == "OK"
    assert uo.status == "ISSUED"


def test_reinstate_needs_employee_id(pos):
    fake, client, _, uo = pos  # [D-POS-REINSTATE]
    call(client, fake, "redeem", {"offer_lookup_code": uo.user_offer_id, "offer_lookup_type": "UserOfferId",
                                  "transaction": transaction()}, "r1")
    assert call(client, fake, "reinstate", {"user_offer_id": uo.user_offer_id}, "r2")["status"] != "OK"
    assert uo.status == "REDEEMED"


def test_a_lock_is_redeemed_only_when_its_discount_comes_back(pos):
    fake, client, user, uo = pos  # [D-POS-LOCK]: "pass the returned Discount back in send_transaction"
    discount = call(client, fake, "lock", {"offer_lookup_code": uo.user_offer_id, "offer_lookup_type": "UserOfferId",
                                           "transaction": transaction()}, "r1")["payload"]
    closed = {**transaction(), "is_closed": True, "payments": [
        {"payment_id": "p", "amount": 15, "user_id": user.id, "user_id_type": "SessionM_ID"}]}
    partial = {k: v for k, v in discount.items() if k != "pos_discount_id"}
    call(client, fake, "send_transaction", {**closed, "discounts": [partial]}, "r2")
    assert uo.status == "LOCKED"  # a Discount stripped of its pos_discount_id is not the lock's
    call(client, fake, "send_transaction", {**closed, "discounts": [discount]}, "r3")
    assert uo.status == "REDEEMED"


def test_same_request_id_replays_the_stored_answer(pos):
    fake, client, _, uo = pos  # [D-POS-DTO]: a repeated request_id returns the stored response
    payload = {"offer_lookup_code": uo.user_offer_id, "offer_lookup_type": "UserOfferId", "transaction": transaction()}
    first = call(client, fake, "redeem", payload, "same")
    assert call(client, fake, "redeem", payload, "same") == first and uo.consumed == 1


def test_connect_needs_the_tenant_and_pages_of_at_most_1000(pos):
    fake, _, user, _ = pos  # [BRAZE]: retailer_id on every Connect body; skip/take paging
    with httpx.Client(base_url="https://domains.example", transport=fake.transport(),
                      auth=("connect-key", "connect-secret")) as connect:
        path = "/offers/api/2.0/offers/get_user_offers"
        assert connect.post(path, json={"user_id": user.id, "skip": 0, "take": 10}).json()["status"] != "ok"
        body = {"retailer_id": fake.retailer_id, "user_id": user.id, "skip": 0, "take": 1001}
        assert connect.post(path, json=body).json()["status"] != "ok"
        assert connect.post(path, json={**body, "take": 1000}).json()["status"] == "ok"


def test_spend_over_the_balance_fails_per_item(pos):
    fake, _, user, _ = pos  # reference 2.2: per-item error_status / message / error_response in the payload
    with httpx.Client(base_url="https://domains.example", transport=fake.transport(),
                      auth=("connect-key", "connect-secret")) as connect:
        answer = connect.post("/incentives/api/1.0/user_points/spend_multiple", json={
            "retailer_id": fake.retailer_id, "user_id": user.id,
            "spend_details": [{"amount": 50, "point_account_ids": [], "idempotency_id": "i1"}]}).json()
    detail = answer["payload"]["details"][0]
    assert detail["error_status"] != 0 and isinstance(detail["error_response"], dict)
    assert fake.points(user.id) == Decimal(10)


def test_core_errors_come_on_http_200_with_status_error(pos):
    fake, _, _, _ = pos  # [D-ERR]: 200 with status "error" and an errors object
    with httpx.Client(base_url="https://api.example", transport=fake.transport(),
                      auth=("core-key", "core-secret")) as core:
        answer = core.get("/priv/v1/apps/core-key/external/users/nobody")
    assert answer.status_code == 200 and answer.json()["status"] == "error"
    assert answer.json()["errors"]["code"] == "user_not_found"
