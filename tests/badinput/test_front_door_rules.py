"""The rules every request meets before anything starts: business ids by one rule, unknown
fields refused by name, lines and size bounded. Each hostile request is refused with a clear
error naming the field, and the recording Temporal client is never called."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from canonical.amendment import InvalidRequest
from canonical.credit import RefundRequest
from canonical.credits import CreditRequest
from canonical.models import AmendmentRequest
from canonical.renewal import RenewalChange, RenewalRequest, renewal_request_problems
from canonical.requests import MAX_ID_LENGTH, MAX_LINES, MAX_REQUEST_BYTES, id_problem, is_business_id
from canonical.usage.models import UsageEvent
from starter.client import start_amendment, start_renewal
from starter.credits import start_credit, start_refund
from tests.badinput.kit import (
    ReadOnlyBilling,
    RecordingClient,
    amendment_dict,
    amendment_subscription,
    renewal_dict,
    renewal_subscription,
)

SETTINGS = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
TODAY = date.today()


def credit_dict(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "credit_id": "CR-1",
        "invoice_id": "in_1",
        "reason": "order_change",
        "explanation": "seats removed",
        "requested_by": "cindy.success",
        "lines": [{"line_id": "il_1", "amount": {"amount": "10.00", "currency": "USD"}}],
    }
    body.update(overrides)
    return body


def refund_dict(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "refund_id": "R-1",
        "charge_id": "ch_1",
        "amount": {"amount": "5.00", "currency": "USD"},
        "reason": "duplicate",
        "explanation": "charged twice",
        "requested_by": "olga.ops",
    }
    body.update(overrides)
    return body


def usage_dict(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifier": "evt-1",
        "meter": "api_calls",
        "customer": "cus_acme",
        "value": 1,
        "timestamp": "2026-11-16T10:00:00Z",
    }
    body.update(overrides)
    return body


async def start_amendment_body(body: dict[str, Any], client: RecordingClient) -> None:
    request = AmendmentRequest.model_validate(body)
    await start_amendment(client, request, billing=ReadOnlyBilling(amendment_subscription()))  # type: ignore[arg-type]


async def start_renewal_body(body: dict[str, Any], client: RecordingClient) -> None:
    request = RenewalRequest.model_validate(body)
    await start_renewal(client, request, billing=ReadOnlyBilling(renewal_subscription(TODAY)))  # type: ignore[arg-type]


async def start_credit_body(body: dict[str, Any], client: RecordingClient) -> None:
    request = CreditRequest.model_validate(body)
    await start_credit(client, request, billing=ReadOnlyBilling(amendment_subscription()))  # type: ignore[arg-type]


async def start_refund_body(body: dict[str, Any], client: RecordingClient) -> None:
    request = RefundRequest.model_validate(body)
    await start_refund(client, request, billing=ReadOnlyBilling(amendment_subscription()))  # type: ignore[arg-type]


# (door, a valid body, its id fields: top-level names, or (list, field) for a line's)
DOORS = {
    "amendment": (
        start_amendment_body,
        amendment_dict,
        ["amendment_id", "contract_id", "subscription_id", "account_id", ("lines", "product")],
    ),
    "renewal": (
        start_renewal_body,
        lambda **o: renewal_dict(TODAY, **o),
        ["contract_id", "subscription_id", "account_id", "term", ("lines", "product")],
    ),
    "credit": (start_credit_body, credit_dict, ["credit_id", "invoice_id", ("lines", "line_id")]),
    "refund": (start_refund_body, refund_dict, ["refund_id", "charge_id", "customer", "invoice_id"]),
}


def with_value(body: dict[str, Any], field: str | tuple[str, str], value: Any) -> tuple[dict[str, Any], str]:
    """`body` with `field` set to `value`, and the field's path as pydantic names it."""
    if isinstance(field, str):
        return {**body, field: value}, field
    lines, name = field
    first = {**body[lines][0], name: value}
    return {**body, lines: [first, *body[lines][1:]]}, f"{lines}.0.{name}"


async def refused_by_validation(door: str, body: dict[str, Any]) -> ValidationError:
    start, _, _ = DOORS[door]
    client = RecordingClient()
    with pytest.raises(ValidationError) as refused:
        await start(body, client)
    assert client.calls == [], client.calls
    return refused.value


# -- business ids -------------------------------------------------------------------------------

# What the issue found: CR, LF and NUL (they split or end an Idempotency-Key header), the marks
# that reorder what a person reads, and an id longer than any system's key.
NAMED_HOSTILE_IDS = [
    ("A-1\r\nX-Injected: yes", "U+000D a carriage return (CR)"),
    ("A-1\n", "U+000A a line feed (LF)"),
    ("A\x001", "U+0000 NUL"),
    ("A-\u200f1", "U+200F RIGHT-TO-LEFT MARK"),
    ("A-\u202e1", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u200eA-1", "U+200E LEFT-TO-RIGHT MARK"),
    ("A" * 5000, "is 5,000 characters long"),
    ("A/../B", "'/' U+002F SOLIDUS"),
    ("-rf", "starts with '-' U+002D HYPHEN-MINUS"),
    ("", "is empty"),
]

VALID_IDS = [
    "sub_1MowQVLkdIwHu7ixeRlqHVzs",  # Stripe
    "in_1NqXoT2eZvKYlo2C0m2a8Y4p",
    "ch_3MmlLrLkdIwHu7ix0snN0B15",
    "il_tmp_1NqXoT2eZvKYlo2C5yE7",
    "cus_NffrFeUfNV2Hib",
    "0065g00000AbCdEAAV",  # Salesforce, 18 characters
    "12345",  # a NetSuite internal id
    "INV-1001",
    "2027",
    "C-100:2027.1",
    "3f2b8a0e-6d1c-4b7e-9a55-0c8f1e2d7b64",
    "A" * MAX_ID_LENGTH,
]


@pytest.mark.parametrize("value", VALID_IDS)
def test_the_ids_the_systems_make_pass(value):
    assert is_business_id(value), id_problem(value)
    assert AmendmentRequest.model_validate(amendment_dict(amendment_id=value)).amendment_id == value


@pytest.mark.parametrize("door", sorted(DOORS))
@pytest.mark.parametrize(("value", "said"), NAMED_HOSTILE_IDS, ids=[s for _, s in NAMED_HOSTILE_IDS])
async def test_a_hostile_id_is_refused_by_name_before_anything_starts(door, value, said):
    _, valid, fields = DOORS[door]
    for field in fields:
        body, path = with_value(valid(), field, value)
        if value == "" and field in ("customer", "invoice_id"):
            continue  # a refund may leave these empty
        error = await refused_by_validation(door, body)
        problems = {".".join(map(str, e["loc"])): e["msg"] for e in error.errors()}
        assert path in problems, (path, problems)
        assert said in problems[path], problems[path]


def unsafe_ids() -> st.SearchStrategy[str]:
    """Ids that break the rule: any text with at least one character outside it, or too long."""
    outside = st.characters(
        blacklist_categories=(),
        blacklist_characters="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-",
    )
    safe = st.text(alphabet="AZaz09._:-", max_size=10)
    return st.one_of(
        st.tuples(safe, outside, safe).map("".join),
        st.text(alphabet="Ab9", min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 50),
        st.text(alphabet="._:-", min_size=1, max_size=5).map(lambda s: s + "A1"),  # a bad first character
    )


@SETTINGS
@given(door=st.sampled_from(sorted(DOORS)), data=st.data())
async def test_no_unsafe_id_starts_anything(door, data):
    _, valid, fields = DOORS[door]
    field = data.draw(st.sampled_from(fields))
    value = data.draw(unsafe_ids())
    body, path = with_value(valid(), field, value)
    error = await refused_by_validation(door, body)
    assert any(".".join(map(str, e["loc"])) == path and "an id is" in e["msg"] for e in error.errors())


@SETTINGS
@given(value=st.text(max_size=MAX_ID_LENGTH + 5))
def test_the_rule_accepts_exactly_the_safe_ids(value):
    safe = 1 <= len(value) <= MAX_ID_LENGTH and value[0].isascii() and value[0].isalnum()
    safe = safe and all(ch.isascii() and (ch.isalnum() or ch in "._:-") for ch in value)
    assert is_business_id(value) == safe, (value, id_problem(value))


@pytest.mark.parametrize("field", ["identifier", "customer"])
@pytest.mark.parametrize(("value", "said"), NAMED_HOSTILE_IDS[:7], ids=[s for _, s in NAMED_HOSTILE_IDS[:7]])
def test_a_usage_event_with_a_hostile_id_is_refused_by_name(field, value, said):
    with pytest.raises(ValidationError) as refused:
        UsageEvent.model_validate(usage_dict(**{field: value}))
    assert [(e["loc"], said in e["msg"]) for e in refused.value.errors()] == [((field,), True)]


def test_a_renewal_whose_current_term_amendment_id_would_be_too_long_is_refused():
    changes = [{"product": "seats", "quantity": 5, "unit_price": "50.00"}]
    request = RenewalRequest.model_validate(
        renewal_dict(TODAY, contract_id="C" * 60, term="T" * 40, current_term_changes=changes)
    )
    from canonical.renewal import RenewalPolicy

    problems = renewal_request_problems(request, RenewalPolicy())
    assert any("current-term changes would be amendment" in p and "characters long" in p for p in problems)


# -- unknown fields -----------------------------------------------------------------------------

UNKNOWN = [
    ({"approved_by": "carla.controller"}, "approved_by"),
    ({"skip_approval": True}, "skip_approval"),
]


@pytest.mark.parametrize("door", sorted(DOORS))
@pytest.mark.parametrize(("extra", "name"), UNKNOWN, ids=[n for _, n in UNKNOWN])
async def test_an_unknown_field_is_refused_by_name(door, extra, name):
    _, valid, _ = DOORS[door]
    error = await refused_by_validation(door, {**valid(), **extra})
    assert [(e["loc"], e["type"]) for e in error.errors()] == [((name,), "extra_forbidden")]


@pytest.mark.parametrize("door", ["amendment", "renewal", "credit"])
async def test_a_lines_unknown_field_is_refused_by_name(door):
    _, valid, _ = DOORS[door]
    body = valid()
    body["lines"] = [{**body["lines"][0], "tax_exempt": True}]
    error = await refused_by_validation(door, body)
    assert [(e["loc"], e["type"]) for e in error.errors()] == [(("lines", 0, "tax_exempt"), "extra_forbidden")]


def test_a_renewal_change_and_a_current_term_change_refuse_unknown_fields():
    with pytest.raises(ValidationError, match=r"lines\.0\.tax_exempt"):
        RenewalChange.model_validate(
            {"lines": [{"product": "seats", "quantity": 3, "tax_exempt": True}], "requested_by": "sam"}
        )
    with pytest.raises(ValidationError, match="skip_approval"):
        RenewalChange.model_validate({"requested_by": "sam", "skip_approval": True})
    changes = [{"product": "seats", "quantity": 5, "unit_price": "50.00", "tax_exempt": True}]
    with pytest.raises(ValidationError, match=r"current_term_changes\.0\.tax_exempt"):
        RenewalRequest.model_validate(renewal_dict(TODAY, current_term_changes=changes))


@SETTINGS
@given(
    door=st.sampled_from(sorted(DOORS)),
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15),
    value=st.one_of(st.booleans(), st.integers(), st.text(max_size=5)),
)
async def test_any_unknown_field_is_refused_by_name(door, name, value):
    _, valid, _ = DOORS[door]
    body = valid()
    model = {
        "amendment": AmendmentRequest,
        "renewal": RenewalRequest,
        "credit": CreditRequest,
        "refund": RefundRequest,
    }[door]
    if name in model.model_fields:
        return
    error = await refused_by_validation(door, {**body, name: value})
    assert ((name,), "extra_forbidden") in [(e["loc"], e["type"]) for e in error.errors()]


# -- bounds -------------------------------------------------------------------------------------


def many_amendment_lines(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"product": f"p{i}", "quantity": 1, "unit_price": "1.00", **extra} for i in range(n)]


async def test_more_lines_than_an_invoice_holds_are_refused():
    for door, lines in (
        ("amendment", many_amendment_lines(MAX_LINES + 1)),
        ("renewal", [{"product": f"p{i}", "quantity": 1} for i in range(10_000)]),
        ("credit", [{"line_id": f"il_{i}", "amount": {"amount": "1.00", "currency": "USD"}} for i in range(300)]),
    ):
        _, valid, _ = DOORS[door]
        error = await refused_by_validation(door, {**valid(), "lines": lines})
        assert [e["loc"] for e in error.errors()] == [("lines",)], error
        assert f"at most {MAX_LINES} items" in error.errors()[0]["msg"]


async def test_the_most_lines_are_still_a_request():
    request = AmendmentRequest.model_validate(amendment_dict(lines=many_amendment_lines(MAX_LINES)))
    assert len(request.lines) == MAX_LINES


async def test_a_request_heavier_than_a_workflow_input_may_be_is_refused():
    heavy = [{**line, "description": "x" * 1500} for line in many_amendment_lines(MAX_LINES)]
    client = RecordingClient()
    with pytest.raises(InvalidRequest) as refused:
        await start_amendment_body(amendment_dict(lines=heavy), client)
    assert client.calls == []
    assert any(f"a request is at most {MAX_REQUEST_BYTES:,} bytes" in p for p in refused.value.problems)
