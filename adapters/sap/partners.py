"""Customers as SAP business partners (API_BUSINESS_PARTNER, arrangement SAP_COM_0008):
o2c's billing customer id is the partner's BusinessPartnerIDByExtSystem (BUT000-BPEXT,
20 characters), the key it is looked up by before anything is created, so creating twice
leaves one partner. The customer number SAP posts to is the partner's `Customer`.

Writes carry SAP Gateway's CSRF token: fetched with `x-csrf-token: Fetch` on a GET, sent
back with the session cookie the client keeps. Field names follow the public API reference;
the roles FLCU00/FLCU01 (customer, financial accounting and sales) and the reconciliation
account taken from the company code's default are unverified for a given tenant."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.errors import BusinessError, IntegrationBug
from adapters.http import json_content, read_json, send
from adapters.sap.errors import SYSTEM, classify
from canonical.models import Account

SERVICE = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
EXTERNAL_ID_LIMIT = 20
NAME_LIMIT = 40
ROLES = ("FLCU00", "FLCU01")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class BusinessPartners:
    """The partner lookups and writes of one SAP tenant, with their CSRF token."""

    def __init__(self, client: httpx.AsyncClient):
        self._client = client
        self._token = ""
        self._by_external_id: dict[str, str] = {}
        self._by_customer: dict[str, str] = {}

    def _remember(self, external_id: str, customer: str) -> None:
        if external_id and customer:
            self._by_external_id[external_id] = customer
            self._by_customer[customer] = external_id

    async def _get(self, path: str, params: dict[str, str], *, what: str) -> dict[str, Any]:
        response = await send(
            self._client,
            SYSTEM,
            "GET",
            SERVICE + path,
            params={**params, "$format": "json"},
            headers={"x-csrf-token": "Fetch", "Accept": "application/json"},
        )
        if response.status_code >= 400:
            raise classify(response, what=what)
        self._token = response.headers.get("x-csrf-token", self._token)
        return read_json(response)

    async def _find(self, field: str, value: str) -> dict[str, Any] | None:
        body = await self._get(
            "/A_BusinessPartner",
            {"$filter": f"{field} eq {_literal(value)}", "$expand": "to_Customer/to_CustomerCompany", "$top": "2"},
            what=f"the business partner with {field} {value}",
        )
        rows = (body.get("d") or {}).get("results") or []
        if len(rows) > 1:
            raise BusinessError(
                SYSTEM,
                f"SAP holds more than one business partner with {field} {value}: merge them so o2c knows "
                "which customer to post to",
                code="DUPLICATE_PARTNER",
                fixable=True,
            )
        return rows[0] if rows else None

    async def _write(self, method: str, path: str, body: dict[str, Any], *, what: str) -> httpx.Response:
        """A write with the CSRF token, fetched first and once more when Gateway asks again."""
        for attempt in (1, 2):
            if not self._token:
                await self._get("", {}, what="the CSRF token")
            response = await send(
                self._client,
                SYSTEM,
                method,
                SERVICE + path,
                content=json_content(body),
                headers={"x-csrf-token": self._token, "Content-Type": "application/json", "Accept": "application/json"},
            )
            if response.status_code == 403 and response.headers.get("x-csrf-token", "").lower() == "required":
                self._token = ""
                if attempt == 1:
                    continue
            if response.status_code >= 400:
                raise classify(response, what=what)
            return response
        raise AssertionError("unreachable: the second attempt returns or raises")

    # -- the port's needs --------------------------------------------------------------------

    async def customer_number(self, external_id: str) -> str | None:
        """The SAP customer number of the billing customer, or None if SAP has no partner for it."""
        if external_id in self._by_external_id:
            return self._by_external_id[external_id]
        partner = await self._find("BusinessPartnerIDByExtSystem", external_id)
        customer = str((partner or {}).get("Customer") or "")
        self._remember(external_id, customer)
        return customer or None

    async def external_id(self, customer: str) -> str:
        """The billing customer id of an SAP customer number ("" for a partner o2c did not create)."""
        if customer in self._by_customer:
            return self._by_customer[customer]
        partner = await self._find("Customer", customer)
        external_id = str((partner or {}).get("BusinessPartnerIDByExtSystem") or "")
        self._remember(external_id, customer)
        return external_id

    async def upsert(self, account: Account, company_code: str) -> str:
        if not account.id or len(account.id) > EXTERNAL_ID_LIMIT:
            raise IntegrationBug(
                SYSTEM,
                f"customer id {account.id!r} does not fit SAP's BusinessPartnerIDByExtSystem "
                f"({EXTERNAL_ID_LIMIT} characters)",
            )
        what = f"customer {account.id} ({account.name})"
        name = account.name[:NAME_LIMIT]
        partner = await self._find("BusinessPartnerIDByExtSystem", account.id)
        if partner is None:
            address: dict[str, Any] = {
                "Country": account.billing_address.country,
                "Region": account.billing_address.region,
                "CityName": account.billing_address.city,
                "PostalCode": account.billing_address.postal_code,
                "StreetName": account.billing_address.line1,
            }
            address = {k: v for k, v in address.items() if v}
            if account.email:
                address["to_EmailAddress"] = {"results": [{"EmailAddress": account.email}]}
            body: dict[str, Any] = {
                "BusinessPartnerCategory": "2",  # an organisation
                "OrganizationBPName1": name,
                "SearchTerm1": account.id[:20].upper(),
                "BusinessPartnerIDByExtSystem": account.id,
                "to_BusinessPartnerRole": {"results": [{"BusinessPartnerRole": role} for role in ROLES]},
                "to_Customer": {"to_CustomerCompany": {"results": [{"CompanyCode": company_code}]}},
            }
            if address:
                body["to_BusinessPartnerAddress"] = {"results": [address]}
            response = await self._write("POST", "/A_BusinessPartner", body, what=what)
            created = read_json(response).get("d") or {}
            customer = str(created.get("Customer") or "")
            if not customer:
                raise IntegrationBug(
                    SYSTEM, f"SAP created a business partner for {account.id} without a customer number"
                )
            self._remember(account.id, customer)
            return customer
        customer = str(partner.get("Customer") or "")
        number = str(partner.get("BusinessPartner") or "")
        if not customer:
            raise BusinessError(
                SYSTEM,
                f"business partner {number} of {account.id} has no customer role in SAP: add the roles "
                f"{', '.join(ROLES)}",
                code="NO_CUSTOMER_ROLE",
                fixable=True,
            )
        companies = ((partner.get("to_Customer") or {}).get("to_CustomerCompany") or {}).get("results") or []
        if not any(c.get("CompanyCode") == company_code for c in companies):
            await self._write(
                "POST", "/A_CustomerCompany", {"Customer": customer, "CompanyCode": company_code}, what=what
            )
        if partner.get("OrganizationBPName1") != name:
            await self._write(
                "PATCH", f"/A_BusinessPartner({_literal(number)})", {"OrganizationBPName1": name}, what=what
            )
        self._remember(account.id, customer)
        return customer
