"""Enrolment and wallet on SessionM: the create-customer body (reference § 3.1), what the fake refuses,
and the adapter's once-per-external-id enrolment over the fake."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from loyaltykit import InvalidRequestError, Loyalty, LoyaltySettings, MalformedResponseError
from loyaltykit.members import Enrolment
from loyaltykit_sessionm import transformers as tf
from loyaltykit_sessionm.fake import SessionMFake
from loyaltykit_sessionm.settings import SessionMSettings
from loyaltykit_sessionm.testing import SessionMHarness

BASE = "https://api-kit.stg-sessionm.com/priv/v1/apps/core-key"


def test_create_customer_body():
    settings = SessionMSettings(**SessionMHarness().settings)
    enrolment = Enrolment(external_id="shop-1", email="Ann@Example.com", first_name="Ann", last_name="Lee",
                          phone="+49 151 2345678", birth_date=date(1990, 1, 31),
                          consents=({"purpose": "marketing_email", "granted": True},), profile={"partner": "root"})


    assert tf.user_from_enrolment(enrolment, settings) == {"user": {
        "external_id": "shop-1", "external_id_type": "merchant_identifier", "email": "ann@example.com",
        "first_name": "Ann", "last_name": "Lee", "dob": "1990-01-31",
        "phone_numbers": [{"phone_number": "491512345678", "phone_type": "mobile", "preference_flags": ["primary"]}],
        "opted_in": "true", "user_profile": {"partner": "root"}}}


@pytest.fixture
def core():
    fake = SessionMFake()
    client = httpx.Client(transport=fake.transport(), auth=fake._credentials["core"])
    yield fake, client
    client.close()


def test_fake_refuses_what_create_customer_refuses(core):
    _, client = core
    assert client.post(f"{BASE}/users", json={"user": {"email": "foo@bar.com"}}).json()["status"] == "ok"  # [D-AUTH]
    # one e-mail address per profile [D-CREATE]; the error code is the fake's (UNCONFIRMED)
    taken = client.post(f"{BASE}/users", json={"user": {"email": "FOO@bar.com"}}).json()
    assert taken["status"] == "error" and taken["errors"]["code"] == "email_taken"
    assert client.post(f"{BASE}/users", json={"name": "x"}).json()["status"] == "error"  # attributes under "user"
    assert client.post(f"{BASE}/users", json={"user": {"email": "nope"}}).json()["status"] == "error"


def test_enrolment_over_the_fake_is_once_per_external_id_and_names_a_taken_email():
    harness = SessionMHarness()
    settings = LoyaltySettings(engine="sessionm", plugins_allow=[], plugins_block=[], engines={})
    with Loyalty(settings, adapter=harness.make_adapter(), transport=harness.sync_transport(),
                 load_entry_points=False) as loyalty:
        first = loyalty.enrol_member(Enrolment(external_id="shop-7", email="ann@example.com", last_name="Lee"))
        again = loyalty.enrol_member(Enrolment(external_id="shop-7", email="ann@example.com"))
        assert first.created and not again.created and again.customer.id == first.customer.id
        assert len(harness.fake.users) == 1
        with pytest.raises(InvalidRequestError) as info:
            loyalty.enrol_member(Enrolment(external_id="shop-8", email="ann@example.com"))
        assert info.value.field == "enrolment.email"
        assert len(harness.fake.users) == 1


def test_point_audit_rows_to_statement_entries():
    settings = SessionMSettings(**SessionMHarness().settings)
    payload = {"audit_logs": [
        {"id": "a1", "modification": "-30", "amount_expired": 0, "transaction_id": "ORD-1",
         "modification_type": "spend", "time_of_occurrence": "2025-03-01T10:00:00Z"},
        {"id": "a2", "modification": 0, "amount_expired": "12", "create_date": "2025-02-01T00:00:00Z",
         "point_source_name": "Expiry"},
        {"id": "a3", "modification": 50, "time_of_occurrence": "2025-01-01T00:00:00+01:00"},
    ]}
    entries = tf.statement_entries(payload, settings)
    assert [(e.id, e.kind.value, e.points, e.order_ref) for e in entries] == [
        ("a1", "spend", Decimal(-30), "ORD-1"), ("a2", "expire", Decimal(-12), None), ("a3", "earn", Decimal(50), None)]
    assert entries[1].label == "Expiry" and entries[2].at.utcoffset() is not None
    with pytest.raises(MalformedResponseError):
        tf.statement_entries({"rows": []}, settings)
    with pytest.raises(MalformedResponseError):
        tf.statement_entries({"audit_logs": [{"id": "x"}]}, settings)
