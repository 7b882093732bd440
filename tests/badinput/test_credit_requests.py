"""Hostile credit, refund and dispute requests at the front doors: each is refused with a
clear error (pydantic's ValidationError when the data is not a request at all,
InvalidRequest when it cannot be carried out), and none reaches Temporal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from canonical.amendment import InvalidRequest
from canonical.credit import RefundRequest
from canonical.credits import CreditRequest, Dispute, DisputeEvent, DisputeStatus
from canonical.models import TAX_PRODUCT, Invoice, InvoiceLine
from canonical.money import Money
from starter.credits import start_credit, start_dispute, start_refund
from tests.badinput.kit import RecordingClient

SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


INVOICE = Invoice(
    id="in_1",
    account_id="cus_acme",
    status="open",
    currency="USD",
    total=Money.of("110.00", "USD"),
    lines=[
        InvoiceLine(product="seats", description="Seats", amount=Money.of("100.00", "USD"), line_id="il_1"),
        InvoiceLine(product=TAX_PRODUCT, description="Tax", amount=Money.of("10.00", "USD")),
    ],
    amount_remaining=Money.of("110.00", "USD"),
    tax=Money.of("10.00", "USD"),
)


class InvoiceBilling:
    """Billing as start_credit sees it: it reads invoices, nothing else."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self.reads.append(invoice_id)
        return INVOICE if invoice_id == INVOICE.id else None


def body(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        credit_id="CR-1",
        invoice_id="in_1",
        reason="order_change",
        explanation="seats removed mid-month",
        requested_by="cindy.success",
        amount=usd("10.00"),
    )
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


async def refused(data: dict[str, Any]) -> Exception:
    client = RecordingClient()
    try:
        request = CreditRequest.model_validate(data)
        await start_credit(client, request, billing=InvoiceBilling())  # type: ignore[arg-type]
    except (ValidationError, InvalidRequest) as error:
        assert client.calls == [], f"{client.calls} after {error}"
        assert str(error).strip()
        return error
    raise AssertionError(f"accepted: {data}")


async def test_a_credit_above_the_invoice_starts_nothing():
    error = await refused(body(amount=usd("100.01")))
    assert "100.00 USD left to credit before tax" in str(error)
    error = await refused(body(amount=None, lines=[{"line_id": "il_1", "amount": usd("100.01")}]))
    assert "has 100.00 USD left to credit" in str(error)


async def test_an_unknown_invoice_or_line_starts_nothing():
    assert "in_nope does not exist" in str(await refused(body(invoice_id="in_nope")))
    assert "has no line il_9" in str(
        await refused(body(amount=None, lines=[{"line_id": "il_9", "amount": usd("1.00")}]))
    )


async def test_unknown_fields_start_nothing():
    assert "Extra inputs" in str(await refused(body(approved_by="me")))
    assert "Extra inputs" in str(
        await refused(body(amount=None, lines=[{"line_id": "il_1", "amount": usd("1"), "x": 1}]))
    )


async def test_a_currency_the_policy_does_not_cover_starts_nothing():
    error = await refused(body(amount={"amount": "10.00", "currency": "CHF"}))
    assert "not stated in CHF" in str(error)


async def test_who_asks_and_what_are_required():
    assert "requested_by" in str(await refused(body(requested_by="")))
    assert "not both" in str(await refused(body(lines=[{"line_id": "il_1", "amount": usd("1.00")}])))
    assert "positive" in str(await refused(body(amount=usd("-5.00"))))
    assert "explanation" in str(await refused(body(explanation="")))
    assert "reason" in str(await refused(body(reason="because")))


def creditable(text: str) -> bool:
    """Whether a text is an amount this invoice could be credited ("1" is; "abc" is not)."""
    try:
        amount = Decimal(text)
    except ArithmeticError:
        return False
    return amount.is_finite() and Decimal(0) < amount <= Decimal(100)


@SETTINGS
@given(
    amount=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=0).map(str),
        st.decimals(min_value="100.01", max_value=10**12, places=2).map(str),
        st.text(max_size=12).filter(lambda t: not creditable(t)),
        st.floats(allow_nan=True),
        st.none(),
    )
)
async def test_no_hostile_amount_starts_a_credit(amount):
    await refused(body(amount={"amount": amount, "currency": "USD"}))


async def test_hostile_refunds_start_nothing():
    client = RecordingClient()
    for data in (
        dict(
            refund_id="R-1",
            charge_id="ch_1",
            amount=usd("0.00"),
            reason="duplicate",
            explanation="x",
            requested_by="olga",
        ),
        dict(
            refund_id="R-1",
            charge_id="ch_1",
            amount=usd("5.00"),
            reason="felt like it",
            explanation="x",
            requested_by="olga",
        ),
        dict(
            refund_id="R-1", charge_id="ch_1", amount=usd("5.00"), reason="duplicate", explanation="x", requested_by=""
        ),
        dict(
            refund_id="R-1",
            charge_id="ch_1",
            amount={"amount": "5", "currency": "CHF"},
            reason="duplicate",
            explanation="x",
            requested_by="olga",
        ),
    ):
        with pytest.raises(InvalidRequest):
            await start_refund(client, RefundRequest.model_validate(data), billing=client)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RefundRequest.model_validate(
            dict(refund_id="R 1; drop", charge_id="ch_1", amount=usd("5.00"), reason="duplicate", explanation="x")
        )
    assert client.calls == []


async def test_an_event_that_is_not_a_dispute_event_starts_nothing():
    client = RecordingClient()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    dispute = Dispute(
        dispute_id="dp_1",
        charge_id="ch_1",
        amount=Money.of("5.00", "USD"),
        reason="fraudulent",
        status=DisputeStatus.NEEDS_RESPONSE,
    )
    with pytest.raises(InvalidRequest, match="not a dispute event"):
        await start_dispute(
            client, DisputeEvent(event_id="evt_1", type="invoice.paid", dispute=dispute, occurred_at=now)
        )  # type: ignore[arg-type]
    assert client.calls == []
