"""A process in a currency its policy states no amount in is refused at the front door, with
the reason, and starts nothing: it never borrows another currency's threshold."""

from __future__ import annotations

import json
from datetime import date

import pytest

from canonical.amendment import InvalidRequest
from canonical.approval import ApprovalPolicy
from canonical.models import AmendmentRequest, LegalEntity
from canonical.policy_amounts import per_currency
from canonical.renewal import RenewalRequest
from starter.client import start_amendment, start_reconciliation, start_renewal, start_usage_release
from tests.badinput.kit import (
    ReadOnlyBilling,
    RecordingClient,
    amendment_dict,
    amendment_subscription,
    renewal_dict,
    renewal_subscription,
)
from tests.workflows.usage_world import release_input

TODAY = date.today()


def in_francs(subscription):
    return subscription.model_copy(
        update={
            "currency": "CHF",
            "lines": [
                line.model_copy(update={"unit_price": line.unit_price.model_copy(update={"currency": "CHF"})})
                for line in subscription.lines
            ],
        }
    )


async def test_an_amendment_in_a_currency_without_thresholds_starts_nothing():
    client = RecordingClient()
    request = AmendmentRequest.model_validate(amendment_dict(currency="CHF"))
    with pytest.raises(InvalidRequest) as refused:
        await start_amendment(client, request, billing=ReadOnlyBilling(in_francs(amendment_subscription())))
    assert client.calls == []
    assert refused.value.problems == [
        "the finance approval threshold is not stated in CHF (the policy covers AUD, CAD, EUR, GBP, JPY, USD)"
    ]


async def test_a_yen_amendment_is_covered_and_does_start():
    client = RecordingClient()
    subscription = amendment_subscription()
    yen = subscription.model_copy(
        update={
            "currency": "JPY",
            "lines": [
                line.model_copy(
                    update={"unit_price": line.unit_price.model_copy(update={"currency": "JPY", "amount": 5000})}
                )
                for line in subscription.lines
            ],
        }
    )
    request = AmendmentRequest.model_validate(amendment_dict(currency="JPY", line={"unit_price": "5000"}))
    with pytest.raises(AssertionError, match="reached start_workflow"):
        await start_amendment(client, request, billing=ReadOnlyBilling(yen))
    assert client.calls == ["start_workflow"]


async def test_a_policy_file_that_leaves_out_the_currency_refuses_it(monkeypatch, tmp_path):
    path = tmp_path / "approval.json"
    path.write_text(json.dumps({"finance_thresholds": {"EUR": 9000}, "controller_thresholds": {"EUR": 45000}}))
    monkeypatch.setenv("O2C_APPROVAL_POLICY_FILE", str(path))
    client = RecordingClient()
    request = AmendmentRequest.model_validate(amendment_dict())
    with pytest.raises(InvalidRequest, match="not stated in USD"):
        await start_amendment(client, request, billing=ReadOnlyBilling(amendment_subscription()))
    assert client.calls == []


async def test_a_renewal_in_a_currency_without_thresholds_starts_nothing():
    client = RecordingClient()
    request = RenewalRequest.model_validate(renewal_dict(TODAY))
    with pytest.raises(InvalidRequest, match="not stated in CHF") as refused:
        await start_renewal(client, request, billing=ReadOnlyBilling(in_francs(renewal_subscription(TODAY))))
    assert client.calls == [] and refused.value.problems


async def test_a_usage_release_whose_approvals_leave_out_its_currency_starts_nothing():
    client = RecordingClient()
    approvals = ApprovalPolicy(finance_thresholds=per_currency(EUR=9000), controller_thresholds=per_currency(EUR=45000))
    with pytest.raises(InvalidRequest, match="not stated in USD"):
        await start_usage_release(client, release_input("sub_m1", approvals=approvals))
    assert client.calls == []


async def test_a_reconciliation_of_an_entity_in_an_uncovered_currency_starts_nothing():
    client = RecordingClient()
    swiss = LegalEntity(code="CH01", company_code="CH01", functional_currency="CHF", erp_subsidiary="7")
    with pytest.raises(InvalidRequest) as refused:
        await start_reconciliation(client, legal_entity="CH01", period="2026-10", legal_entities=[swiss])
    assert client.calls == []
    assert refused.value.problems == [
        "the healing limit is not stated in CHF (the policy covers AUD, CAD, EUR, GBP, JPY, USD)",
        "the finance approval threshold is not stated in CHF (the policy covers AUD, CAD, EUR, GBP, JPY, USD)",
    ]
