"""The ERP, CRM and entitlement sides of dunning, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import httpx
import pytest

from adapters.crm import SalesforceCrm
from adapters.errors import BusinessError, IntegrationBug, TransientError
from adapters.netsuite import NetSuiteErp
from canonical.models import CollectionCase, CrmTask
from canonical.money import Money


@pytest.fixture
async def crm(sandbox) -> AsyncIterator[SalesforceCrm]:
    client = SalesforceCrm(sandbox.salesforce_url, "sandbox-token", timeout=5)
    yield client
    await client.aclose()


def case(stage: str, status: str = "open") -> CollectionCase:
    return CollectionCase(
        external_id="dunning-in_1/case",
        account_id="cus_acme",
        invoice_id="in_1",
        amount=Money.of("120.00", "USD"),
        stage=stage,
        status=status,
    )


async def test_collection_case_upserts_by_external_id(netsuite, sandbox):
    opened = await netsuite.upsert_collection_case(case("day_0"))
    moved = await netsuite.upsert_collection_case(case("day_7"))
    assert opened.internal_id and moved.internal_id == opened.internal_id
    [record] = sandbox.records("netsuite", "customrecord_o2c_collection_case")
    assert record["custrecord_o2c_stage"] == "day_7" and record["externalId"] == "dunning-in_1/case"
    assert record["custrecord_o2c_amount"] == "120.00" and record["subsidiary"] == {"id": "1"}
    closed = await netsuite.upsert_collection_case(case("paid", "closed"))
    read = await netsuite.get_collection_case("dunning-in_1/case")
    assert read == closed
    assert await netsuite.get_collection_case("nothing") is None
    assert sandbox.summary()["netsuite"]["customrecord_o2c_collection_case"]["by_status"] == {"closed": 1}


async def test_collection_case_faults_and_refusals(netsuite, sandbox):
    sandbox.fault("netsuite", "5xx", times=1)
    with pytest.raises(TransientError):
        await netsuite.upsert_collection_case(case("day_0"))
    async with httpx.AsyncClient(base_url=sandbox.netsuite_url, headers={"Authorization": "Bearer t"}) as http:
        refused = await http.put(
            "/record/v1/customrecord_o2c_collection_case/eid:x", json={"custrecord_o2c_stage": "a"}
        )
        assert refused.status_code == 400 and refused.json()["o:errorDetails"][0]["o:errorCode"] == "USER_ERROR"

    wrong = NetSuiteErp(sandbox.netsuite_url, "invalid-token", timeout=5)
    with pytest.raises(IntegrationBug):
        await wrong.upsert_collection_case(case("day_0"))
    await wrong.aclose()


async def test_crm_flag_and_task_are_idempotent(crm, sandbox):
    await crm.flag_account("cus_acme", flag="dunning", on=True)
    await crm.flag_account("cus_acme", flag="dunning", on=True)
    assert (await crm.get_account("cus_acme"))["O2c_Dunning_Flag__c"] is True
    task = CrmTask(
        account_id="cus_acme",
        owner="dana@vendor.test",
        subject="Strategic account in dunning",
        body="Invoice in_1: 120.00 USD unpaid",
    )
    first = await crm.create_task(task, idempotency_key="dunning-in_1/csm-alert")
    second = await crm.create_task(task, idempotency_key="dunning-in_1/csm-alert")
    assert first == second and first.startswith("00T")
    [stored] = sandbox.records("salesforce", "Task")
    assert (stored["WhatId"], stored["OwnerId"], stored["O2c_Key__c"]) == (
        "cus_acme",
        "dana@vendor.test",
        "dunning-in_1/csm-alert",
    )
    await crm.flag_account("cus_acme", flag="dunning", on=False)
    assert (await crm.get_account("cus_acme"))["O2c_Dunning_Flag__c"] is False
    assert sandbox.summary()["salesforce"]["Account"]["by_status"] == {"unflagged": 1}


async def test_crm_receivables_fields_are_a_repeatable_patch(crm, sandbox):
    await crm.update_receivables(
        "cus_acme", open_balance=Money.of("1250.40", "EUR"), last_payment_on=date(2026, 11, 20)
    )
    await crm.update_receivables(
        "cus_acme", open_balance=Money.of("1250.40", "EUR"), last_payment_on=date(2026, 11, 20)
    )
    account = await crm.get_account("cus_acme")
    assert (
        account["O2c_Open_Balance__c"],
        account["O2c_Open_Balance_Currency__c"],
        account["O2c_Last_Payment_Date__c"],
    ) == (Decimal("1250.40"), "EUR", "2026-11-20")
    # A credit moves the balance and leaves the last payment date as it was.
    await crm.update_receivables("cus_acme", open_balance=Money.of("0.00", "EUR"), last_payment_on=None)
    account = await crm.get_account("cus_acme")
    assert (account["O2c_Open_Balance__c"], account["O2c_Last_Payment_Date__c"]) == (0, "2026-11-20")
    assert len(sandbox.records("salesforce", "Account")) == 1


async def test_a_task_with_a_due_date_and_priority(crm, sandbox):
    task = CrmTask(
        account_id="cus_acme",
        owner="dana@vendor.test",
        subject="Gather evidence for dispute dp_1",
        due_on=date(2026, 12, 10),
        priority="High",
    )
    task_id = await crm.create_task(task, idempotency_key="dispute-dp_1/evidence")
    [stored] = sandbox.records("salesforce", "Task")
    assert (stored["Id"], stored["ActivityDate"], stored["Priority"]) == (task_id, "2026-12-10", "High")
    with pytest.raises(BusinessError) as refused:
        await crm.create_task(task.model_copy(update={"priority": "Urgent"}), idempotency_key="dispute-dp_1/other")
    assert refused.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


async def test_salesforce_wire_format(sandbox):
    base = sandbox.salesforce_url
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer t"}) as http:
        created = await http.patch("/sobjects/Task/O2c_Key__c/k1", json={"WhatId": "a", "Subject": "s"})
        assert created.status_code == 201
        assert created.json() == {"id": created.json()["id"], "success": True, "errors": [], "created": True}
        updated = await http.patch("/sobjects/Task/O2c_Key__c/k1", json={"Subject": "s2"})
        assert updated.status_code == 200 and updated.json()["created"] is False
        flagged = await http.patch("/sobjects/Account/001A", json={"O2c_Dunning_Flag__c": True})
        assert flagged.status_code == 204 and flagged.content == b""
        bad_date = await http.patch("/sobjects/Account/001A", json={"O2c_Last_Payment_Date__c": "20/11/2026"})
        assert bad_date.status_code == 400 and bad_date.json()[0]["fields"] == ["O2c_Last_Payment_Date__c"]
        bad_number = await http.patch("/sobjects/Account/001A", json={"O2c_Open_Balance__c": "lots"})
        assert bad_number.status_code == 400 and bad_number.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
        bad = await http.patch("/sobjects/Account/001A", json={"Nope__c": 1})
        assert bad.status_code == 400
        assert bad.json() == [
            {
                "message": "No such column 'Nope__c' on sobject of type Account",
                "errorCode": "INVALID_FIELD",
                "fields": ["Nope__c"],
            }
        ]
    denied = httpx.patch(f"{base}/sobjects/Account/001A", json={}, headers={"Authorization": "Bearer invalid"})
    assert denied.status_code == 401 and denied.json()[0]["errorCode"] == "INVALID_SESSION_ID"


async def test_crm_errors_are_classified(crm, sandbox):
    sandbox.fault("salesforce", "5xx", times=1)
    with pytest.raises(TransientError):
        await crm.flag_account("cus_acme", flag="dunning", on=True)
    sandbox.fault("salesforce", "429", times=1)
    with pytest.raises(TransientError) as limited:
        await crm.flag_account("cus_acme", flag="dunning", on=True)
    assert limited.value.code == "REQUEST_LIMIT_EXCEEDED"
    with pytest.raises(BusinessError) as refused:
        await crm.create_task(CrmTask(account_id="a", owner="", subject=""), idempotency_key="no-subject")
    assert refused.value.code == "REQUIRED_FIELD_MISSING"
    wrong = SalesforceCrm(sandbox.salesforce_url, "invalid-token", timeout=5)
    with pytest.raises(IntegrationBug):
        await wrong.flag_account("cus_acme", flag="dunning", on=True)
    await wrong.aclose()
    unreachable = SalesforceCrm("http://127.0.0.1:9/services/data/v60.0", "t", timeout=1)
    with pytest.raises(TransientError):
        await unreachable.flag_account("cus_acme", flag="dunning", on=True)
    await unreachable.aclose()


async def test_restriction_is_set_once_per_key_and_lifted(entitlements, sandbox):
    assert await entitlements.get_restriction("cus_acme") is False
    await entitlements.set_restriction(account_id="cus_acme", restricted=True, idempotency_key="dunning-in_1/restrict")
    await entitlements.set_restriction(account_id="cus_acme", restricted=True, idempotency_key="dunning-in_1/restrict")
    assert await entitlements.get_restriction("cus_acme") is True
    assert sandbox.count("entitlements", "restriction_change") == 1
    await entitlements.set_restriction(account_id="cus_acme", restricted=False, idempotency_key="dunning-in_1/lift")
    assert await entitlements.get_restriction("cus_acme") is False
    with pytest.raises(IntegrationBug):
        await entitlements.set_restriction(
            account_id="cus_acme", restricted=False, idempotency_key="dunning-in_1/restrict"
        )
