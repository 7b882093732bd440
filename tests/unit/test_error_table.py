"""The error table, walked: every status for every system, then each system's own codes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from adapters import avatax, crm, entitlements, netsuite, notifications, stripe
from adapters.errors import AdapterError, BusinessError, ErrorKind, IntegrationBug, TransientError

STATUSES = [400, 401, 402, 403, 404, 408, 409, 412, 422, 429, 500, 502, 503, 504]


def _service(module) -> Callable[[httpx.Response], AdapterError]:
    return lambda response: module.ERRORS.classify(entitlements.read_service_error(response))


# How each adapter classifies an error answer, and a refusal in its wire format that
# carries a code none of its tables knows.
SYSTEMS: dict[str, tuple[Callable[[httpx.Response], AdapterError], object]] = {
    "stripe": (stripe.classify, {"error": {"type": "invalid_request_error", "code": "x_unknown", "message": "No."}}),
    "avatax": (avatax.classify, {"error": {"code": "XUnknown", "message": "No."}}),
    "netsuite": (netsuite.classify, {"o:errorDetails": [{"o:errorCode": "X_UNKNOWN", "detail": "No."}]}),
    "salesforce": (crm.classify, [{"errorCode": "X_UNKNOWN", "message": "No."}]),
    "entitlements": (_service(entitlements), {"error": {"code": "x_unknown", "message": "No."}}),
    "notifications": (_service(notifications), {"error": {"code": "x_unknown", "message": "No."}}),
}


def shared_kind(system: str, status: int) -> ErrorKind:
    """The shared status rules (Stripe alone keeps 408 a refusal)."""
    if status in (401, 403):
        return ErrorKind.BUG
    if status >= 500 or status in (409, 429) or (status == 408 and system != "stripe"):
        return ErrorKind.TRANSIENT
    return ErrorKind.BUSINESS


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_every_status_of_every_system(system, status):
    classify, body = SYSTEMS[system]
    for response in (httpx.Response(status, json=body), httpx.Response(status)):
        error = classify(response)
        assert error.kind == shared_kind(system, status)
        assert error.system == system and error.status == status
        assert not error.fixable
    assert classify(httpx.Response(status, json=body)).code.lower().replace("_", "") == "xunknown"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    "classify, body",
    [
        (stripe.classify, {"error": {"type": "idempotency_error", "message": "Keys reused"}}),
        (_service(entitlements), {"error": {"code": "idempotency_error", "message": "Key reused"}}),
        (_service(notifications), {"error": {"code": "idempotency_error", "message": "Key reused"}}),
    ],
)
def test_an_idempotency_mismatch_is_a_bug_whatever_the_status(classify, body, status):
    error = classify(httpx.Response(status, json=body))
    assert isinstance(error, IntegrationBug) and error.code == "idempotency_error"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("code", ["REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"])
def test_salesforce_limits_and_locks_are_transient_whatever_the_status(code, status):
    error = crm.classify(httpx.Response(status, json=[{"errorCode": code, "message": "Try later"}]))
    assert isinstance(error, TransientError) and error.code == code


@pytest.mark.parametrize("status", STATUSES)
def test_stripe_retry_advice_outranks_the_status(status):
    body = {"error": {"type": "api_error", "message": "Something went wrong"}}
    advised = stripe.classify(httpx.Response(status, json=body, headers={"Stripe-Should-Retry": "true"}))
    not_advised = stripe.classify(httpx.Response(status, json=body, headers={"Stripe-Should-Retry": "false"}))
    if status in (401, 403):
        assert isinstance(advised, IntegrationBug) and isinstance(not_advised, IntegrationBug)
    else:
        assert isinstance(advised, TransientError)
        assert isinstance(not_advised, BusinessError)


def test_a_stripe_decline_is_known_by_its_decline_code():
    body = {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}
    declined = stripe.classify(httpx.Response(402, json=body))
    assert isinstance(declined, BusinessError) and declined.code == "insufficient_funds"
    assert declined.message.startswith("The payment was declined")
    retried = stripe.classify(httpx.Response(402, json=body, headers={"Stripe-Should-Retry": "true"}))
    assert isinstance(retried, TransientError) and retried.code == "card_declined"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("code", sorted(avatax.ADDRESS_ERRORS))
def test_an_avatax_address_fault_is_fixable_unless_the_status_says_otherwise(code, status):
    error = avatax.classify(
        httpx.Response(status, json={"error": {"code": code, "message": "Bad"}}), customer_code="C1"
    )
    assert error.kind == shared_kind("avatax", status)
    if error.kind == ErrorKind.BUSINESS:
        assert error.fixable and error.code == code
        assert error.message.startswith("The customer master of C1 has no tax jurisdiction")


@pytest.mark.parametrize("status", [400, 401, 422, 500])
def test_an_avatax_server_fault_is_transient_unless_credentials_fail(status):
    body = {"error": {"code": "", "message": "Boom", "details": [{"faultCode": "Server"}]}}
    error = avatax.classify(httpx.Response(status, json=body))
    assert error.kind == (ErrorKind.BUG if status == 401 else ErrorKind.TRANSIENT)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    "detail",
    [
        {"o:errorCode": "USER_ERROR", "detail": "Bad period", "o:errorPath": "postingPeriod"},
        {"o:errorCode": "USER_ERROR", "detail": "The accounting period is closed."},
        {"detail": "This period is locked"},
    ],
)
def test_a_closed_netsuite_period_is_fixable_unless_the_status_says_otherwise(detail, status):
    error = netsuite.classify(httpx.Response(status, json={"o:errorDetails": [detail]}))
    assert error.kind == shared_kind("netsuite", status)
    if error.kind == ErrorKind.BUSINESS:
        assert error.fixable and error.code == detail.get("o:errorCode", "PERIOD_CLOSED")
        assert "accounting period is closed" in error.message
