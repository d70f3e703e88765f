"""The adapter toolkit in the core: wire readers, the error table, reconcile, export outcomes, key locks."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import pytest

from loyaltykit import wire
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import (
    AuthFailedError,
    CircuitOpenError,
    ConfigError,
    CustomerNotFoundError,
    EngineError,
    EngineUnavailableError,
    InsufficientBalanceError,
    MalformedResponseError,
    OutcomeUnknownError,
    VoucherExpiredError,
    VoucherNotFoundError,
)
from loyaltykit.flows import EngineRequest
from loyaltykit.models import ExportStatus
from loyaltykit.reconcile import KeyLocks, ends_batch, export_result_from_error, reconcile

# -- wire readers ----------------------------------------------------------------------------------


def test_json_body_parses_numbers_as_decimal_and_names_the_body_when_garbled():
    assert wire.json_body(httpx.Response(200, content=b'{"a": 1.10}')) == {"a": Decimal("1.10")}
    with pytest.raises(MalformedResponseError) as info:
        wire.json_body(httpx.Response(200, content=b"<html>"), engine="acme")
    assert info.value.field == "body" and info.value.engine == "acme" and "HTTP 200" in info.value.message


def test_at_walks_a_path_and_names_the_missing_step():
    body = wire.loads(b'{"payload": {"points": [{"amount": "12.50"}]}}')
    assert wire.at(body, "payload.points[0].amount") == "12.50"
    assert wire.at(body, "payload.missing", default="x") == "x"
    with pytest.raises(MalformedResponseError) as info:
        wire.at(body, "payload.points[1].amount")
    assert info.value.field == "payload.points[1]"
    with pytest.raises(MalformedResponseError) as info:
        wire.at(body, "payload.points.amount")
    assert "expected an object" in info.value.message and info.value.field == "payload.points"


@pytest.mark.parametrize("value", [None, True, float("nan"), "NaN", "Infinity", "12a", [], {}])
def test_number_refuses_what_is_not_a_finite_exact_number(value):
    with pytest.raises(MalformedResponseError) as info:
        wire.number(value, "detail.amount_spent")
    assert info.value.field == "detail.amount_spent"


@pytest.mark.parametrize(("value", "expected"), [(Decimal("1.10"), Decimal("1.10")), (3, Decimal(3)), (" 4.5 ", Decimal("4.5")), (0.1, Decimal("0.1"))])
def test_number_reads_decimals_ints_and_numeric_strings(value, expected):
    assert wire.number(value, "n") == expected


def test_number_at_and_optional_values():
    body = {"a": {"b": "2"}, "c": None}
    assert wire.number_at(body, "a.b") == Decimal(2)
    assert wire.number_at(body, "c", default=None) is None
    assert wire.number(None, "c", optional=True) is None
    assert wire.text(7, "id") == "7"
    assert wire.items(None, "list", optional=True) == []
    with pytest.raises(MalformedResponseError):
        wire.text({}, "id")


def test_reader_messages_never_carry_values():
    with pytest.raises(MalformedResponseError) as info:
        wire.number("ann@example.com", "member.email")
    assert "ann@example.com" not in str(info.value)


# -- the error table ---------------------------------------------------------------------------------

TABLE = ErrorTable(
    "acme",
    codes={"INSUFFICIENT_POINTS": "insufficient_balance", "not_found": "customer_not_found",
           "pending_processing": "outcome_unknown", "REQUEST_LIMIT_EXCEEDED": "rate_limited"},
    phrases={"insufficient": "insufficient_balance", "expired": "voucher_expired", "voucher not found": "voucher_not_found"},
)


def test_documented_codes_map_exactly():
    err = TABLE.classify(422, "insufficient_points", "Not enough", operation="spend_cashback")
    assert isinstance(err, InsufficientBalanceError)
    assert (err.engine, err.operation, err.engine_code, err.engine_message) == (
        "acme", "spend_cashback", "insufficient_points", "Not enough")


def test_no_substring_fallback_turns_unrelated_codes_into_business_errors():
    unknown = TABLE.classify(400, "transaction_not_found", "Transaction not found")
    assert type(unknown) is EngineError and unknown.engine_code == "transaction_not_found"
    access = TABLE.classify(400, "INSUFFICIENT_ACCESS_OR_READONLY", "INSUFFICIENT_ACCESS_OR_READONLY: no access")
    assert type(access) is EngineError


def test_phrases_match_whole_words_in_the_message():
    assert isinstance(TABLE.classify(400, "X", "Insufficient points balance"), InsufficientBalanceError)
    assert isinstance(TABLE.classify(400, None, "The Voucher  not found."), VoucherNotFoundError)
    assert type(TABLE.classify(400, None, "unexpiredness")) is EngineError


def test_auth_statuses_win_over_phrases_but_not_over_codes():
    assert isinstance(TABLE.classify(401, "INVALID_SESSION_ID", "Session expired or invalid"), AuthFailedError)
    assert TABLE.classify(403, "REQUEST_LIMIT_EXCEEDED", None).code == "rate_limited"


def test_not_found_for_a_404_and_outcome_unknown_for_pending():
    assert isinstance(TABLE.classify(404, None, None, not_found=CustomerNotFoundError), CustomerNotFoundError)
    pending = TABLE.classify(200, "pending_processing", None, idempotency_key="k1")
    assert isinstance(pending, OutcomeUnknownError) and pending.idempotency_key == "k1" and pending.retryable


def test_a_setting_extends_the_table_and_unknown_kit_codes_are_refused():
    extended = TABLE.extended(codes={"transaction_not_found": "voucher_not_found"})
    assert isinstance(extended.classify(400, "TRANSACTION_NOT_FOUND", None), VoucherNotFoundError)
    assert type(TABLE.classify(400, "TRANSACTION_NOT_FOUND", None)) is EngineError, "the original is unchanged"
    with pytest.raises(ConfigError):
        ErrorTable("acme", codes={"x": "no_such_kit_code"})


def test_the_engine_text_stays_out_of_the_kit_message():
    err = TABLE.classify(400, "voucher_expired_code", "voucher for ann@example.com expired")
    assert isinstance(err, VoucherExpiredError) and "ann@example.com" not in err.message


def test_code_scoped_phrases_refine_a_generic_code_only():
    table = ErrorTable("e", codes={"GONE": "voucher_expired"},
                       code_phrases={"INVALID_INPUT": {"specify a valid voucher code": "voucher_not_found"}})
    assert table.kit_code(400, "INVALID_INPUT", "Specify a valid voucher code.") == "voucher_not_found"
    assert table.kit_code(400, "OTHER", "Specify a valid voucher code.") is None
    assert table.kit_code(400, "INVALID_INPUT", "Something else") is None


def test_phrases_can_be_limited_to_codeless_answers():
    loose = ErrorTable("e", phrases={"insufficient points": "insufficient_balance"})
    strict = ErrorTable("e", phrases={"insufficient points": "insufficient_balance"}, phrases_only_without_code=True)
    message = "transaction_not_found: insufficient points"
    assert loose.kit_code(404, "NOT_FOUND", message) == "insufficient_balance"
    assert strict.kit_code(404, "NOT_FOUND", message) is None
    assert strict.kit_code(200, None, message) == "insufficient_balance"
    assert strict.extended(codes={"X": "voucher_expired"}).phrases_only_without_code


# -- reconcile --------------------------------------------------------------------------------------


def drive(flow, answers):
    """Drive a flow by hand: each answer is a response, an exception to throw, or a callable."""
    sent = []
    try:
        request = next(flow)
        for answer in answers:
            sent.append(request)
            request = flow.throw(answer) if isinstance(answer, Exception) else flow.send(answer)
    except StopIteration as stop:
        return stop.value, sent
    raise AssertionError(f"flow still running after {sent}: wants {request}")


def _send():
    response = yield EngineRequest("POST", "/spend", write=True, route="spend")
    return wire.json_body(response)["id"]


def _look_up():
    response = yield EngineRequest("GET", "/spend/k1", route="lookup")
    return wire.json_body(response).get("id")


def ok(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body)


def test_reconcile_sends_once_when_nothing_goes_wrong():
    result, sent = drive(reconcile(_send, _look_up), [ok(b'{"id": "s1"}')])
    assert result == ("s1", None) and [r.route for r in sent] == ["spend"]


def test_after_a_lost_answer_the_recorded_effect_is_returned_not_resent():
    result, sent = drive(reconcile(_send, _look_up), [OutcomeUnknownError("lost"), ok(b'{"id": "s1"}')])
    assert result == (None, "s1") and [r.route for r in sent] == ["spend", "lookup"]


def test_after_a_lost_answer_an_absent_effect_is_sent_again_once():
    result, sent = drive(reconcile(_send, _look_up), [OutcomeUnknownError("lost"), ok(b"{}"), ok(b'{"id": "s2"}')])
    assert result == ("s2", None) and [r.route for r in sent] == ["spend", "lookup", "spend"]


def test_an_unreadable_answer_is_reconciled_like_a_lost_one():
    result, sent = drive(reconcile(_send, _look_up), [ok(b"garbage"), ok(b'{"id": "s1"}')])
    assert result == (None, "s1") and [r.route for r in sent] == ["spend", "lookup"]


def test_a_failed_look_up_leaves_the_outcome_unknown():
    lost = OutcomeUnknownError("lost", idempotency_key="k1")
    with pytest.raises(OutcomeUnknownError) as info:
        drive(reconcile(_send, _look_up), [lost, EngineUnavailableError("down")])
    assert info.value is lost


def test_an_unavailable_answer_is_looked_up_only_where_the_engine_may_have_committed():
    down = EngineUnavailableError("503")
    with pytest.raises(EngineUnavailableError):
        drive(reconcile(_send, _look_up), [down])
    result, sent = drive(reconcile(_send, _look_up, unavailable_may_have_applied=True), [down, ok(b'{"id": "s1"}')])
    assert result == (None, "s1") and [r.route for r in sent] == ["spend", "lookup"]
    with pytest.raises(CircuitOpenError):  # an open circuit sent nothing: no look-up
        drive(reconcile(_send, _look_up, unavailable_may_have_applied=True), [CircuitOpenError("open")])


def test_look_first_returns_the_recorded_effect_without_sending():
    result, sent = drive(reconcile(_send, _look_up, look_first=True), [ok(b'{"id": "s0"}')])
    assert result == (None, "s0") and [r.route for r in sent] == ["lookup"]


# -- export outcomes --------------------------------------------------------------------------------


def test_export_result_from_error():
    later = export_result_from_error("o1", EngineUnavailableError("down"))
    assert later.status is ExportStatus.RETRY_LATER and later.error_code == "engine_unavailable"
    unknown = export_result_from_error("o1", OutcomeUnknownError("lost"))
    assert unknown.status is ExportStatus.RETRY_LATER
    rejected = export_result_from_error("o2", CustomerNotFoundError("no member", engine_code="404"))
    assert (rejected.order_ref, rejected.status, rejected.error_code) == ("o2", ExportStatus.REJECTED, "customer_not_found")
    assert ends_batch(AuthFailedError("no")) and ends_batch(CircuitOpenError("open")) and not ends_batch(rejected_err())


def rejected_err():
    return VoucherNotFoundError("x")


# -- key locks --------------------------------------------------------------------------------------


def test_key_locks_serialise_one_key_and_forget_it_afterwards():
    locks = KeyLocks()
    inside, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        with locks.hold(["k"], timeout=5):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            threading.Event().wait(0.002)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and len(locks) == 0


def test_key_locks_time_out():
    locks = KeyLocks()
    with locks.hold(["k"], timeout=1), pytest.raises(TimeoutError), locks.hold(["k"], timeout=0.01):
        pass
    assert len(locks) == 0


async def test_async_key_locks_time_out_without_blocking_the_loop():
    locks = KeyLocks()
    with locks.hold(["k"], timeout=1), pytest.raises(TimeoutError):
        async with locks.hold_async(["k"], timeout=0.02):
            pass
    async with locks.hold_async(["k", "j"], timeout=1):
        assert len(locks) == 2
    assert len(locks) == 0
