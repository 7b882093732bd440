"""Hostile requests at POST /webhooks/stripe (create_webhook_app in process, a Temporal
client that records every call): each is refused with 400 or 413 and reaches no workflow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.stripe_webhooks import sign
from canonical.money import MINOR_UNITS
from starter.webhooks import STRIPE_PATH, create_webhook_app
from tests.badinput.kit import RecordingClient, json_values

SECRET = "whsec_badinput"
LIMIT = 4096
NOW = 1_800_000_000
SETTINGS = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def post(
    body: bytes, signature: str | None = "sign", *, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, RecordingClient]:
    client = RecordingClient()
    app = create_webhook_app(client, secret=SECRET, max_body_bytes=LIMIT, clock=lambda: NOW)  # type: ignore[arg-type]
    sent: dict[str, str | bytes] = {"Content-Type": "application/json", **(headers or {})}
    if signature == "sign":
        signature = sign(body, SECRET, NOW)
    if signature is not None:
        sent["Stripe-Signature"] = signature.encode("utf-8", "surrogateescape")  # hostile bytes too
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as http:
        response = await http.post(STRIPE_PATH, content=body, headers=sent)
    return response, client


def refused(response: httpx.Response, client: RecordingClient, status: int = 400) -> None:
    assert client.calls == [], f"{client.calls}: a workflow was reached"
    assert response.status_code == status, response.text
    if status == 400:
        answer = response.json()
        assert answer["received"] is False and answer["reason"]


def event(type_: str = "invoice.payment_failed", **invoice: Any) -> dict[str, Any]:
    obj = {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_1",
        "subscription": "sub_1",
        "currency": "usd",
        "amount_due": 120000,
        "amount_remaining": 120000,
        "status": "open",
        **invoice,
    }
    return {
        "id": "evt_1",
        "object": "event",
        "api_version": "2024-06-20",
        "created": NOW,
        "livemode": False,
        "type": type_,
        "data": {"object": obj},
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


invoice_types = st.sampled_from(["invoice.payment_failed", "invoice.paid", "invoice.payment_succeeded"])


@SETTINGS
@given(body=st.binary(max_size=LIMIT))
async def test_random_bytes_correctly_signed_are_not_an_event(body):
    response, client = await post(body)
    if response.status_code == 200:  # random bytes that happen to be an ignored event: impossible in practice
        assert client.calls == [] and response.json()["workflows"] == []
    else:
        refused(response, client)


@SETTINGS
@given(body=json_values.map(dumps).filter(lambda b: len(b) <= LIMIT))
async def test_json_that_is_not_an_event_is_refused(body):
    response, client = await post(body)
    refused(response, client)


ENVELOPE_BREAKERS = st.one_of(
    st.tuples(st.sampled_from(["id", "type"]), st.one_of(st.none(), st.integers(), st.just(""), st.lists(st.text()))),
    st.tuples(st.just("created"), st.one_of(st.none(), st.booleans(), st.floats(), st.text())),
    st.tuples(st.just("data"), st.one_of(st.none(), st.text(), st.integers(), st.just({"object": "x"}))),
    st.tuples(st.just("object"), st.text().filter(lambda t: t != "event")),
)


@SETTINGS
@given(type_=invoice_types, field_value=ENVELOPE_BREAKERS)
async def test_an_envelope_of_the_wrong_types_is_refused(type_, field_value):
    field, value = field_value
    response, client = await post(dumps({**event(type_), field: value}))
    refused(response, client)


not_whole = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.text(max_size=10),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@SETTINGS
@given(type_=invoice_types, field=st.sampled_from(["amount_due", "amount_remaining"]), value=not_whole)
async def test_amounts_that_are_not_whole_minor_units_are_refused(type_, field, value):
    response, client = await post(dumps(event(type_, **{field: value})))
    refused(response, client)


@SETTINGS
@given(
    type_=invoice_types,
    currency=st.one_of(
        st.text(max_size=6).filter(lambda c: c.upper() not in MINOR_UNITS),
        st.none(),
        st.integers(),
        st.lists(st.text(), max_size=2),
    ),
)
async def test_unknown_currencies_are_refused(type_, currency):
    response, client = await post(dumps(event(type_, currency=currency)))
    refused(response, client)


@SETTINGS
@given(
    type_=invoice_types,
    invoice_id=st.one_of(
        st.none(),
        st.just(""),
        st.integers(),
        st.lists(st.text(), max_size=2),
        st.dictionaries(st.just("object"), st.text(), max_size=1),
    ),
)
async def test_an_invoice_event_without_an_invoice_id_is_refused(type_, invoice_id):
    response, client = await post(dumps(event(type_, id=invoice_id)))
    refused(response, client)


@SETTINGS
@given(extra=st.integers(min_value=1, max_value=4 * LIMIT), signed=st.booleans())
async def test_oversized_bodies_are_refused_before_anything_else(extra, signed):
    body = dumps(event()) + b" " * (LIMIT + extra)
    response, client = await post(body, "sign" if signed else "t=1,v1=00")
    refused(response, client, 413)


def tampered(body: bytes) -> st.SearchStrategy[str | None]:
    good = sign(body, SECRET, NOW)
    return st.one_of(
        st.none(),
        st.text(max_size=80),
        st.just(sign(body, "whsec_wrong", NOW)),
        st.integers(min_value=301, max_value=10**9).map(lambda d: sign(body, SECRET, NOW - d)),  # replayed
        st.integers(min_value=301, max_value=10**9).map(lambda d: sign(body, SECRET, NOW + d)),  # from the future
        st.just(sign(body + b" ", SECRET, NOW)),  # signs other bytes
        st.just(good.replace("v1=", "v0=")),
        st.just(good + f",t={NOW}"),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
        .map(lambda h: f"t={NOW},v1={h}")
        .filter(lambda h: h != good),
    )


@SETTINGS
@given(data=st.data())
async def test_a_bad_signature_on_a_valid_event_is_refused(data):
    body = dumps(event())
    header = data.draw(tampered(body))
    response, client = await post(body, header)
    refused(response, client)
    assert response.json()["error"] == "invalid_signature"


# -- what the ingress lets through today although it should not -------------------------------


@pytest.mark.parametrize("field", ["amount_due", "amount_remaining"])
async def test_negative_minor_units_are_refused(field):
    refused(*await post(dumps(event(**{field: -120000}))))


async def test_absurd_amounts_are_refused():
    refused(*await post(dumps(event(amount_due=10**40, amount_remaining=10**40))))


async def test_a_created_timestamp_out_of_range_is_refused():
    refused(*await post(dumps({**event(), "created": 10**20})))


@pytest.mark.parametrize(
    ("invoice_id", "said"),
    [
        ("in_1\r\nX-Injected: yes", "U+000D a carriage return (CR)"),
        ("in_\u200f1", "U+200F RIGHT-TO-LEFT MARK"),
        ("in_" + "1" * 200, "is 203 characters long"),
        ("in 1", "U+0020 a space"),
    ],
)
async def test_a_signed_event_whose_invoice_id_cannot_key_a_workflow_is_refused(invoice_id, said):
    """Even Stripe's signature does not make an id a business key: dunning-<invoice> would carry it."""
    response, client = await post(dumps(event(id=invoice_id)))
    refused(response, client)
    assert response.json()["reason"].startswith("the event's invoice id ") and said in response.json()["reason"]
