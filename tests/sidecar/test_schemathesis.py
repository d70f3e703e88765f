"""Property-based API tests: schemathesis generates requests from the OpenAPI document and runs all
its default checks (no server error, documented statuses, headers and content types, responses
that match their schemas, auth enforced, invalid data refused) against the app on the embedded
engine, in process. Example counts are small so it fits a 2-core CI; raise LOYALTYKIT_API_EXAMPLES
locally for a deeper run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import bearer, build_service, close_service

EXAMPLES = int(os.environ.get("LOYALTYKIT_API_EXAMPLES", "5"))

# One app for the module: schemathesis parametrizes at collection time, from the served document.
_TMP = tempfile.TemporaryDirectory(prefix="loyaltykit-sidecar-api-")
SERVICE = build_service(Path(_TMP.name))
# Every default check runs. One is tuned: a request the schema allows may still break a rule the
# kit's models enforce beyond JSON Schema (ISO 4217 currencies, lines in the basket's currency, a
# cashback spend carrying an amount...). That is a documented 400 naming the field, or a documented
# 422 business refusal, so both count as correct answers to schema-valid data.
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2XX", "400", "401", "403", "404", "409", "422", "429", "5XX"]}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", SERVICE.app, config=CONFIG, headers=bearer())


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    close_service(SERVICE)
    _TMP.cleanup()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_document(case):
    case.call_and_validate(headers={**bearer(), **(case.headers or {})})
