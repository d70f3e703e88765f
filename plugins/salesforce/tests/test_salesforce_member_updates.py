"""Tier changes on Salesforce through the ChangeMemberTier program process (reference § 6a, § 7).

The first tests talk HTTP to the fake directly (no adapter in between), proving it refuses what
the documentation says the process refuses; the others drive the adapter through the facade.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import (
    CustomerNotFoundError,
    EngineError,
    InvalidRequestError,
    MemberUpdate,
    NotSupportedError,
    OutcomeUnknownError,
)
from loyaltykit.testing import Fault, FaultKind
from loyaltykit_salesforce import transformers as tf
from loyaltykit_salesforce.fake import SalesforceFake

BASE = "https://org.my.salesforce.com"
PROCESS = "/services/data/v65.0/connect/loyalty/programs/NTO%20Insider/program-processes/update%20Tier"


@pytest.fixture
def org():
    fake = SalesforceFake(program="NTO Insider")
    member = fake.add_member(membership_number="M1", points=Decimal(100))
    client = httpx.Client(base_url=BASE, transport=fake.transport())
    token = client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": fake.client_id, "client_secret": fake.client_secret,
    }).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield fake, client, member
    client.close()


def change(client, **inputs):
    return client.post(PROCESS, json={"processParameters": [inputs]})


# -- the fake, over HTTP ---------------------------------------------------------------------


def test_fake_changes_the_tier_by_member_id_or_membership_number(org):
    fake, client, member = org
    answer = change(client, MemberId=member.id, NewTier="Gold", ReasonForChange="upgrade")
    assert answer.status_code == 200 and answer.json()["status"] is True  # 6a: the process output envelope
    assert fake.members["M1"].tier == "Gold"
    assert change(client, MembershipNumber="M1", NewTier="Silver", ReasonForChange="r").json()["status"] is True
    assert fake.members["M1"].tier == "Silver"  # 0: MemberId and MembershipNumber are interchangeable


def test_fake_refuses_an_unknown_member_with_status_false(org):
    _, client, _ = org
    answer = change(client, MemberId="0lM000000000000AAA", NewTier="Gold", ReasonForChange="r")
    body = answer.json()
    assert answer.status_code == 200 and body["status"] is False and body["message"]  # 8: 200 + status:false


@pytest.mark.parametrize("missing", ["MemberId", "NewTier", "ReasonForChange"])
def test_fake_refuses_a_missing_parameter(org, missing):
    _, client, member = org
    inputs = {"MemberId": member.id, "NewTier": "Gold", "ReasonForChange": "r"}
    del inputs[missing]
    answer = change(client, **inputs)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_INPUT"  # 8: the error array


def test_fake_refuses_while_the_process_is_inactive(org):
    fake, client, member = org
    fake.tier_process_active = False  # 6a: process and rule must be active
    answer = change(client, MemberId=member.id, NewTier="Gold", ReasonForChange="r")
    assert answer.status_code == 404 and answer.json()[0]["errorCode"] == "NOT_FOUND"
    assert fake.members["M1"].tier == "Bronze"


def test_fake_refuses_a_tier_the_program_lacks(org):
    fake, client, member = org
    body = change(client, MemberId=member.id, NewTier="Platinum", ReasonForChange="r").json()
    assert body["status"] is False and fake.members["M1"].tier == "Bronze"


# -- the adapter -------------------------------------------------------------------------------


def test_request_body_uses_the_configured_names():
    from loyaltykit import Customer

    from .test_salesforce_members import settings

    customer = Customer(id="M1", membership_number="M1", raw={"loyaltyProgramMemberId": "0lMX"})
    assert tf.change_tier_request(settings(), customer, "Gold", None) == {"processParameters": [
        {"MemberId": "0lMX", "NewTier": "Gold", "ReasonForChange": "Changed by the shop"}]}
    named = settings(change_tier_member_parameter="MembershipNumber", change_tier_tier_parameter="Tier__c",
                     change_tier_reason_parameter="Why__c")
    assert tf.change_tier_request(named, customer, "Gold", "goodwill") == {"processParameters": [
        {"MembershipNumber": "M1", "Tier__c": "Gold", "Why__c": "goodwill"}]}


def test_tier_change_reaches_the_org_once(harness, shop):
    member = harness.create_customer(identifiers={"membership": "M-T1"}).id
    updated = shop.update_member(MemberUpdate(customer_id=member, tier="Gold", reason="goodwill"))
    assert updated.tier == "Gold" and harness.fake.members[member].tier == "Gold"
    assert harness.fake.tier_changes == [(member, "Gold", "goodwill")]
    again = shop.update_member(MemberUpdate(customer_id=member, tier="Gold"))
    assert again.tier == "Gold"
    assert harness.request_count("update_member") == 1, "the same target tier was sent again"


@pytest.mark.parametrize("field", ["segments", "role"])
def test_segments_and_role_are_refused_before_any_call(harness, shop, field):
    member = harness.create_customer(identifiers={"membership": "M-T2"}).id
    before = harness.request_count()
    value = ("vip",) if field == "segments" else "staff"
    with pytest.raises(NotSupportedError) as caught:
        shop.update_member(MemberUpdate(customer_id=member, tier="Gold", **{field: value}))
    assert caught.value.field == f"update.{field}"
    assert harness.request_count() == before
    assert harness.fake.members[member].tier == "Bronze"


def test_the_adapter_itself_refuses_an_undeclared_field(harness):
    adapter = harness.make_adapter()
    flow = adapter.update_member(MemberUpdate(customer_id="M-X", segments=("vip",)), ctx=None)  # type: ignore[arg-type]
    with pytest.raises(NotSupportedError) as caught:
        next(flow)
    assert caught.value.field == "update.segments"


def test_unknown_member_and_unknown_tier(harness, shop):
    with pytest.raises(CustomerNotFoundError):
        shop.update_member(MemberUpdate(customer_id="M-NOBODY", tier="Gold"))
    assert harness.request_count("update_member") == 0  # the profile read found no member
    member = harness.create_customer(identifiers={"membership": "M-T3"}).id
    with pytest.raises(InvalidRequestError) as caught:
        shop.update_member(MemberUpdate(customer_id=member, tier="Platinum"))
    assert caught.value.field == "update.tier"


def test_inactive_process_is_an_engine_error_not_success(harness, shop):
    member = harness.create_customer(identifiers={"membership": "M-T4"}).id
    harness.fake.tier_process_active = False
    with pytest.raises(EngineError) as caught:  # the member exists: never "customer not found"
        shop.update_member(MemberUpdate(customer_id=member, tier="Gold"))
    assert caught.value.engine_code == "NOT_FOUND"
    assert harness.fake.members[member].tier == "Bronze"


def test_lost_answer_is_applied_once(harness, shop):
    member = harness.create_customer(identifiers={"membership": "M-T5"}).id
    harness.inject("update_member", Fault(FaultKind.TIMEOUT_AFTER))
    updated = shop.update_member(MemberUpdate(customer_id=member, tier="Gold"))
    assert updated.tier == "Gold"
    assert harness.request_count("update_member") == 1  # found applied by the profile read, not re-sent


def test_tier_changes_can_be_switched_off(harness, make_shop):
    harness.settings["change_tier_process"] = None
    shop = make_shop()
    assert not shop.capabilities.supports("update_member")
    with pytest.raises(NotSupportedError):
        shop.update_member(MemberUpdate(customer_id="M-1", tier="Gold"))


def test_an_answer_without_the_success_marker_is_outcome_unknown(harness, shop):
    member = harness.create_customer(identifiers={"membership": "M-T6"}).id
    harness.fake.drop_success_marker("update_member")
    with pytest.raises(OutcomeUnknownError):
        shop.update_member(MemberUpdate(customer_id=member, tier="Gold"))
