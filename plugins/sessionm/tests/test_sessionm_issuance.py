"""Issuing an offer and updating a member on SessionM: what the fake refuses (reference § 3.4, 4.3, 4.4,
5.4), the request bodies, and the adapter over the fake (tagging, replay, unsupported fields)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from loyaltykit import InvalidRequestError, Loyalty, LoyaltySettings, Money, NotSupportedError
from loyaltykit.members import MemberUpdate, VoucherIssue
from loyaltykit.testing import OfferSpec
from loyaltykit_sessionm import transformers as tf
from loyaltykit_sessionm.adapter import SessionMAdapter
from loyaltykit_sessionm.fake import SessionMFake
from loyaltykit_sessionm.testing import SessionMHarness, harness_settings

ISSUE = "/offers/api/2.0/offers/acquisition/issue"
UPDATE_OFFER = "/offers/api/2.0/offers/acquisition/update"


@pytest.fixture
def connect():
    fake = SessionMFake()
    user = fake.add_user()
    offer = fake.add_offer(offer_type=fake.FIXED, name="Five", amount=Decimal(5))
    with httpx.Client(base_url="https://domains.example", transport=fake.transport(),
                      auth=("connect-key", "connect-secret")) as client:
        yield fake, client, user, offer


def test_fake_issue_needs_the_tenant_a_known_user_and_offer(connect):
    fake, client, user, offer = connect  # § 4.3 [R-RWS-T]: retailer_id, user_id, offer_id, quantity
    body = {"retailer_id": fake.retailer_id, "user_id": user.id, "offer_id": offer.offer_id, "quantity": 2,
            "issue_exact_version": False}
    assert client.post(ISSUE, json={**body, "retailer_id": "other"}).json()["status"] != "ok"
    assert client.post(ISSUE, json={k: v for k, v in body.items() if k != "offer_id"}).json()["status"] != "ok"
    unknown_user = client.post(ISSUE, json={**body, "user_id": "nobody"}).json()
    assert unknown_user["status"] != "ok" and unknown_user["errors"]["error"] == "user_not_found"
    unknown_offer = client.post(ISSUE, json={**body, "offer_id": "nothing"}).json()
    assert unknown_offer["status"] != "ok" and unknown_offer["errors"]["error"] == "offer_not_found"
    assert fake.user_offers == {}  # none of the refusals issued anything
    issued = client.post(ISSUE, json=body).json()
    assert issued["status"] == "ok"
    items = issued["payload"]["status_list"]
    assert len(items) == 2 and all(i["fail_reason"] == 0 and i["offer_id"] == offer.offer_id for i in items)
    assert {i["user_offer_id"] for i in items} == set(fake.user_offers)


def test_fake_update_user_offer_takes_custom_data_as_a_json_string(connect):
    fake, client, user, offer = connect  # § 4.4 [R-RWS-T]: custom_data is a JSON string
    uo = fake.issue(user.id, offer.offer_id)
    body = {"retailer_id": fake.retailer_id, "user_id": user.id, "user_offer_id": uo.user_offer_id,
            "remain_pending_extended_data": False, "update_redemption_dates": False}
    assert client.post(UPDATE_OFFER, json={**body, "custom_data": {"a": 1}}).json()["status"] != "ok"
    assert client.post(UPDATE_OFFER, json={**body, "custom_data": "not json"}).json()["status"] != "ok"
    assert client.post(UPDATE_OFFER, json={**body, "user_offer_id": "x", "custom_data": "{}"}).json()["status"] != "ok"
    assert client.post(UPDATE_OFFER, json={**body, "custom_data": '{"a": 1}'}).json()["status"] == "ok"
    assert uo.custom_data == '{"a": 1}'


def test_fake_move_user_needs_the_tier_system_and_level(connect):
    fake, client, user, _ = connect  # § 5.4 [R-LOTUSMILE]
    path = "/incentives/api/1.0/movement/move_user"
    body = {"retailer_id": fake.retailer_id, "user_id": user.id, "tier_system_id": "ts", "tier_level_id": "gold"}
    assert client.post(path, json={**body, "tier_level_id": None}).json()["status"] != "ok"
    assert client.post(path, json={**body, "user_id": "nobody"}).json()["status"] != "ok"
    assert user.tier is None
    assert client.post(path, json=body).json()["status"] == "ok" and user.tier == "gold"


def test_fake_update_customer_puts_fields_under_user():
    fake = SessionMFake()  # § 3.4: PUT .../users/{user_id} with {"user": {...}}; answers the user
    user = fake.add_user()
    with httpx.Client(base_url="https://api.example", transport=fake.transport(), auth=("core-key", "core-secret")) as core:
        path = f"/priv/v1/apps/core-key/users/{user.id}"
        assert core.put(path, json={"first_name": "Ann"}).json()["status"] == "error"
        assert core.put("/priv/v1/apps/core-key/users/nobody", json={"user": {}}).json()["errors"]["code"] == "user_not_found"
        answer = core.put(path, params={"user[user_profile]": "true"},
                          json={"user": {"user_profile": {"segments": ["vip"]}}}).json()
    assert answer["status"] == "ok" and answer["user"]["user_profile"]["segments"] == ["vip"]


def test_issue_and_update_bodies():
    harness = SessionMHarness()
    settings = harness.make_adapter().settings
    issue = VoucherIssue(customer_id="u1", definition_id="o1", idempotency_key="k1", quantity=2)
    assert tf.issue_request(issue) == {"user_id": "u1", "offer_id": "o1", "quantity": 2, "issue_exact_version": False}
    assert json.loads(tf.issue_tag("k1")) == {tf.ISSUE_TAG: "k1"}
    assert tf.tagged_with({"custom_data": tf.issue_tag("k1")}, "k1", settings)
    assert not tf.tagged_with({"custom_data": tf.issue_tag("k2")}, "k1", settings)
    assert not tf.tagged_with({"custom_data": "{broken"}, "k1", settings)
    update = MemberUpdate(customer_id="u1", segments=("vip",))
    assert tf.user_update(update, settings) == {"user": {"user_profile": {"segments": ["vip"]}}}


def _loyalty(harness: SessionMHarness, **adapter_settings) -> Loyalty:
    adapter = SessionMAdapter(harness_settings(**adapter_settings))
    settings = LoyaltySettings(engine="sessionm", plugins_allow=[], plugins_block=[], engines={})
    return Loyalty(settings, adapter=adapter, transport=harness.sync_transport(), load_entry_points=False)


def test_issue_over_the_fake_tags_each_offer_and_replays_without_issuing():
    harness = SessionMHarness()
    user = harness.fake.add_user()
    offer = harness.define_issuable(harness_offer())
    with _loyalty(harness) as loyalty:
        issue = VoucherIssue(customer_id=user.id, definition_id=offer, idempotency_key="bday-2026", quantity=2)
        first = loyalty.issue_voucher(issue)
        assert first.created and len(first.vouchers) == 2
        assert all(json.loads(uo.custom_data) == {tf.ISSUE_TAG: "bday-2026"} for uo in harness.fake.user_offers.values())
        issues = harness.fake.request_count("issue")
        again = loyalty.issue_voucher(issue)
        assert not again.created and {v.id for v in again.vouchers} == {v.id for v in first.vouchers}
        assert harness.fake.request_count("issue") == issues and len(harness.fake.user_offers) == 2
        with pytest.raises(InvalidRequestError) as unknown:
            loyalty.issue_voucher(issue.model_copy(update={"definition_id": "nothing", "idempotency_key": "k2"}))
        assert unknown.value.field == "issue.definition_id"
        later = datetime.now(UTC) + timedelta(days=9)
        for name, value in (("expires_at", later), ("face_value", Money.of("5.00", "USD"))):
            before = harness.fake.request_count()
            with pytest.raises(NotSupportedError) as refused:
                loyalty.issue_voucher(issue.model_copy(update={name: value, "idempotency_key": f"k-{name}"}))
            assert refused.value.field == f"issue.{name}" and harness.fake.request_count() == before


def test_update_member_segments_and_tier_and_what_sessionm_cannot_change():
    harness = SessionMHarness()
    user = harness.fake.add_user()
    with _loyalty(harness, tier_system_id=None) as loyalty:
        updated = loyalty.update_member(MemberUpdate(customer_id=user.id, segments=("vip", "coffee")))
        assert updated.segments == ("vip", "coffee") and harness.fake.users[user.id].profile["segments"] == ["vip", "coffee"]
        for update, field in ((MemberUpdate(customer_id=user.id, role="staff"), "update.role"),
                              (MemberUpdate(customer_id=user.id, tier="gold"), "update.tier")):
            before = harness.fake.request_count()
            with pytest.raises(NotSupportedError) as refused:
                loyalty.update_member(update)
            assert refused.value.field == field and harness.fake.request_count() == before
    with _loyalty(harness, tier_system_id="ts-1") as loyalty:
        moved = loyalty.update_member(MemberUpdate(customer_id=user.id, tier="gold"))
        assert moved.tier == "gold"
        body = next(r.body for r in reversed(harness.fake.requests) if r.path.endswith("/move_user"))
        assert body["tier_system_id"] == "ts-1" and body["tier_level_id"] == "gold"


def harness_offer() -> OfferSpec:
    return OfferSpec(kind="fixed_off_check", amount=Money.of("5.00", "USD"), label="Five")
