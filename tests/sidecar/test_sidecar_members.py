"""Member operations over the sidecar on the embedded engine: enrol (keyed, idempotent by external id),
update (keyed), the statement (paged by cursor) and the wallet, with golden answers."""

from __future__ import annotations

from prometheus_client import REGISTRY

from loyaltykit import Loyalty, LoyaltySettings, Money
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import VoucherDef, parse_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

from .conftest import PROGRAM, bearer

ENROL = {
    "external_id": "shop-42",
    "email": "Ann@Example.com",
    "first_name": "Ann",
    "display_name": "Ann",
    "consents": [{"purpose": "marketing_email", "granted": True}],
}

ZERO_BALANCES = [
    {"kind": "points", "name": "points", "points": "0", "money": None, "value": None},
    {"kind": "cashback", "name": "cashback", "points": None, "money": {"amount": "0.00", "currency": "EUR"},
     "value": None},
]


def _enrol(service, key: str = "enrol-shop-42", body: dict | None = None):
    return service.post("/v1/members", body or ENROL, key=key)


def test_enrol_answers_the_member_and_is_idempotent_by_external_id(service):
    first = _enrol(service)
    assert first.status_code == 200, first.text
    member = first.json()["customer"]
    assert first.json() == {"created": True, "customer": {
        "id": member["id"], "membership_number": None, "tier": None, "status": "active", "segments": [],
        "balances": ZERO_BALANCES, "email": "ann@example.com", "display_name": "Ann", "raw": {}}}
    # The same key: the stored answer.
    replay = _enrol(service)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    # Another key, the same external id: the member enrolled first, not a second one.
    again = _enrol(service, key="enrol-shop-42-again")
    assert again.status_code == 200
    assert again.json() == {**first.json(), "created": False}
    found = service.post("/v1/customers/identify", {"kind": "external_id", "value": "shop-42"})
    assert found.json()["id"] == member["id"]
    # The same key with another body is refused.
    reused = _enrol(service, body={**ENROL, "first_name": "Anna"})
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


def test_enrol_and_update_need_a_key_and_bad_input_names_the_field_without_an_engine_call(service):
    calls = _count_engine_calls()
    no_key = service.post("/v1/members", ENROL)
    assert no_key.status_code == 400 and no_key.json()["field"] == "Idempotency-Key"
    bad_email = _enrol(service, key="e-1", body={**ENROL, "email": "not-an-address"})
    assert bad_email.status_code == 400
    assert bad_email.json()["field"] == "email"
    assert "not-an-address" not in bad_email.text  # the shopper's input is not echoed back
    nothing = service.post("/v1/members/update", {"customer_id": "M1"}, key="u-1")
    assert nothing.status_code == 400 and nothing.json()["field"] == "tier"
    assert nothing.headers["content-type"] == "application/problem+json"
    bad_size = service.get("/v1/members/M1/statement?page_size=0")
    assert bad_size.status_code == 400 and bad_size.json()["field"] == "page_size"
    bad_currency = service.get("/v1/members/M1/wallet?currency=EURO")
    assert bad_currency.status_code == 400 and bad_currency.json()["field"] == "currency"
    window = service.get("/v1/members/M1/statement?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z")
    assert window.status_code == 400 and window.json()["field"] == "since"
    assert _count_engine_calls() == calls


def test_update_member_changes_segments_and_role(service):
    member_id = _enrol(service).json()["customer"]["id"]
    updated = service.post("/v1/members/update", {"customer_id": member_id, "segments": ["vip", "coffee"],
                                                  "role": "staff"}, key="update-1")
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "id": member_id, "membership_number": None, "tier": None, "status": "active",
        "segments": ["coffee", "vip"], "balances": ZERO_BALANCES, "email": "ann@example.com",
        "display_name": "Ann", "raw": {"role": "staff"}}
    unknown = service.post("/v1/members/update", {"customer_id": "NOBODY", "role": "staff"}, key="update-2")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "customer_not_found"


def test_statement_pages_by_cursor_newest_first(service):
    member_id = _enrol(service).json()["customer"]["id"]
    service.engine.credit(member_id, points=10, label="goodwill")
    service.engine.credit(member_id, cashback=Money.of("2.50", "EUR"), label="campaign")
    service.engine.credit(member_id, points=30, label="birthday")
    first = service.get(f"/v1/members/{member_id}/statement?page_size=2")
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["customer_id"] == member_id
    assert [(e["kind"], e["balance"], e["points"], e["money"], e["label"]) for e in page["entries"]] == [
        ("earn", "points", "30", None, "birthday"),
        ("earn", "cashback", None, {"amount": "2.50", "currency": "EUR"}, "campaign"),
    ]
    assert page["next_cursor"]
    second = service.get(f"/v1/members/{member_id}/statement?page_size=2&cursor={page['next_cursor']}").json()
    assert [(e["kind"], e["points"], e["label"]) for e in second["entries"]] == [("earn", "10", "goodwill")]
    assert second["next_cursor"] is None
    forged = service.get(f"/v1/members/{member_id}/statement?cursor=not-a-cursor")
    assert forged.status_code == 400
    assert forged.json()["field"] == "cursor"
    missing = service.get("/v1/members/NOBODY/statement")
    assert missing.status_code == 404


def test_wallet_lists_the_members_vouchers(service):
    member_id = _enrol(service).json()["customer"]["id"]
    service.engine.issue_voucher(VoucherDef(code="ANN-5", kind="fixed", amount=5, label="5 EUR for Ann",
                                            owner=member_id), offer_kind="fixed_off_check")
    service.engine.issue_voucher(VoucherDef(code="BOB-5", kind="fixed", amount=5, owner="someone-else"),
                                 offer_kind="fixed_off_check")
    answer = service.get(f"/v1/members/{member_id}/wallet")
    assert answer.status_code == 200, answer.text
    wallet = answer.json()
    assert wallet["customer_id"] == member_id
    assert wallet["offers"] == [{
        "id": "ANN-5", "kind": "fixed_off_check", "label": "5 EUR for Ann", "percent": None,
        "amount": {"amount": "5.00", "currency": "EUR"}, "sku": None, "code": "ANN-5", "expires_at": None,
        "applicable": True}]


def test_member_routes_need_a_key(service):
    for path in ("/v1/members/M1/statement", "/v1/members/M1/wallet"):
        assert service.client.get(path).status_code == 401
    assert service.client.post("/v1/members", json=ENROL, headers={"Idempotency-Key": "k"}).status_code == 401
    assert service.client.get("/v1/members/M1/wallet", headers=bearer()).status_code == 404


class _CheckoutOnly(LocalAdapter):
    """The embedded engine declaring no member operation (as most HTTP engines)."""

    capabilities = LocalAdapter.capabilities.model_copy(
        update={"enrol_member": False, "update_member": False, "statement": False, "wallet": False,
                "issue_voucher": False})


def test_an_engine_without_member_operations_answers_501(make_service, tmp_path):
    engine = LocalEngine(Store(f"sqlite:///{tmp_path}/closed.sqlite3"), parse_program(PROGRAM, "test.toml"))
    loyalty = Loyalty(LoyaltySettings(), adapter=_CheckoutOnly(engine=engine), load_entry_points=False)
    service = make_service(loyalty=loyalty)
    for answer in (service.get("/v1/members/M1/wallet"), service.get("/v1/members/M1/statement"),
                   _enrol(service), service.post("/v1/members/update", {"customer_id": "M1", "role": "x"}, key="u"),
                   service.post("/v1/vouchers/issue", {"customer_id": "M1", "definition_id": "BDAY",
                                                      "idempotency_key": "bday-M1"}, key="i")):
        assert answer.status_code == 501, answer.text
        assert answer.json()["code"] == "not_supported"
    assert service.store.state("pos", "enrol-shop-42") is None  # nothing applied: the key is free again
    loyalty.close()


def test_issue_voucher_answers_the_vouchers_once_per_body_key(service):
    member_id = _enrol(service).json()["customer"]["id"]
    body = {"customer_id": member_id, "definition_id": "BIRTHDAY-10", "idempotency_key": "bday-1", "quantity": 2,
            "expires_at": "2099-12-31T23:59:59Z"}
    first = service.post("/v1/vouchers/issue", body, key="issue-1")
    assert first.status_code == 200, first.text
    issued = first.json()
    assert issued["created"] is True and issued["customer_id"] == member_id
    assert [v["amount"] for v in issued["vouchers"]] == [{"amount": "10.00", "currency": "EUR"}] * 2
    assert all(v["expires_at"] == "2099-12-31T23:59:59Z" and v["code"] == v["id"] for v in issued["vouchers"])
    # The same header key: the stored answer; another header key, the same body key: issued once.
    assert service.post("/v1/vouchers/issue", body, key="issue-1").headers["Idempotent-Replayed"] == "true"
    again = service.post("/v1/vouchers/issue", body, key="issue-1-again")
    assert again.json() == {**issued, "created": False}
    wallet = service.get(f"/v1/members/{member_id}/wallet").json()
    assert sorted(o["code"] for o in wallet["offers"]) == sorted(v["code"] for v in issued["vouchers"])
    unknown = service.post("/v1/vouchers/issue", {**body, "customer_id": "M-NOBODY", "idempotency_key": "b2"}, key="i2")
    assert unknown.status_code == 404 and unknown.json()["code"] == "customer_not_found"
    nothing = service.post("/v1/vouchers/issue", {**body, "definition_id": "NOPE", "idempotency_key": "b3"}, key="i3")
    assert nothing.status_code == 400 and nothing.json()["field"] == "issue.definition_id"


def test_issue_voucher_bad_input_names_the_field_without_an_engine_call(service):
    calls = _count_engine_calls()
    body = {"customer_id": "M1", "definition_id": "BDAY", "idempotency_key": "bday-M1"}
    for field, bad in (("quantity", {"quantity": 0}), ("idempotency_key", {"idempotency_key": "a b"}),
                       ("face_value", {"face_value": {"amount": "-1.00", "currency": "EUR"}}),
                       ("expires_at", {"expires_at": "2020-01-01T00:00:00Z"})):
        answer = service.post("/v1/vouchers/issue", {**body, **bad}, key=f"bad-{field}")
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field
    assert service.post("/v1/vouchers/issue", body).json()["field"] == "Idempotency-Key"
    assert _count_engine_calls() == calls


def _count_engine_calls() -> float:
    return sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
               if sample.name == "loyaltykit_engine_call_seconds_count")


def test_concurrent_enrolments_of_one_external_id_make_one_member(service):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _enrol(service, key=f"enrol-race-{i}"), range(16)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    assert sum(a.json()["created"] for a in answers) == 1
    assert len({a.json()["customer"]["id"] for a in answers}) == 1


def test_engine_call_metrics_wrap_every_operation():
    from loyaltykit.operations import OPERATIONS
    from loyaltykit.sidecar.observability import EngineMetrics

    assert [op.hook for op in OPERATIONS if not hasattr(EngineMetrics, op.hook)] == []


def test_member_operations_are_timed_as_engine_calls(service):
    def recorded(operation: str) -> float:
        return REGISTRY.get_sample_value(
            "loyaltykit_engine_call_seconds_count", {"operation": operation, "outcome": "ok"}) or 0.0

    before = recorded("enrol_member"), recorded("member_statement")
    member = _enrol(service, key="enrol-timed").json()["customer"]["id"]
    assert service.get(f"/v1/members/{member}/statement").status_code == 200
    assert (recorded("enrol_member"), recorded("member_statement")) == (before[0] + 1, before[1] + 1)
