"""API_BUSINESS_PARTNER (SAP_COM_0008): business partners in the customer role and their
company-code data, as far as o2c uses them. The customer number is the partner's number
(the usual setup of customer-vendor integration; unverified for a given tenant).

Writes need SAP Gateway's CSRF token: a GET with `x-csrf-token: Fetch` answers the token
and a session cookie; a POST or PATCH without both answers 403 `x-csrf-token: Required`."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.sap import SYSTEM
from sandbox.sap.master import RECEIVABLE_RECONCILIATION, company_code
from sandbox.sap.odata import ODataError, odata_json, read_query, results
from sandbox.store import Tx

PARTNER = "businessPartner"
SESSION_COOKIE = "SAP_SESSIONID_SBX_100"
SERVICE = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
FILTERABLE = frozenset({"BusinessPartner", "Customer", "BusinessPartnerIDByExtSystem", "SearchTerm1"})
PARTNER_FIELDS = frozenset(
    {
        "BusinessPartnerCategory",
        "BusinessPartnerGrouping",
        "OrganizationBPName1",
        "OrganizationBPName2",
        "SearchTerm1",
        "BusinessPartnerIDByExtSystem",
        "to_BusinessPartnerRole",
        "to_BusinessPartnerAddress",
        "to_Customer",
    }
)
ADDRESS_FIELDS = frozenset({"Country", "Region", "CityName", "PostalCode", "StreetName", "to_EmailAddress"})
LIMITS = {"OrganizationBPName1": 40, "OrganizationBPName2": 40, "SearchTerm1": 20, "BusinessPartnerIDByExtSystem": 20}
ROLES = frozenset({"FLCU00", "FLCU01"})


# -- CSRF ------------------------------------------------------------------------------------


def csrf_fetch(tx: Tx, request: Request) -> dict[str, str]:
    """The headers of a GET that asked for a token: the token and its session cookie."""
    if request.headers.get("x-csrf-token", "").lower() != "fetch":
        return {}
    session = request.cookies.get(SESSION_COOKIE) or secrets.token_hex(12)
    state = tx.get(SYSTEM, "csrf", session) or {"token": secrets.token_urlsafe(18)}
    tx.put(SYSTEM, "csrf", session, state)
    return {"x-csrf-token": state["token"], "set-cookie": f"{SESSION_COOKIE}={session}; path=/; HttpOnly"}


def csrf_refused(tx: Tx, request: Request) -> Response | None:
    token = request.headers.get("x-csrf-token", "")
    session = request.cookies.get(SESSION_COOKIE, "")
    state = tx.get(SYSTEM, "csrf", session) if session else None
    if token and state is not None and secrets.compare_digest(token, state["token"]):
        return None
    return Response(
        b"CSRF token validation failed", status_code=403, headers={"x-csrf-token": "Required"}, media_type="text/plain"
    )


# -- reading ---------------------------------------------------------------------------------


def customer_in_company_code(tx: Tx, customer: str, company: str) -> dict[str, Any] | None:
    partner = tx.get(SYSTEM, PARTNER, customer.lstrip("0") or "0")
    if partner is None:
        return None
    return next((c for c in partner["companies"] if c["CompanyCode"] == company), None)


def _render(partner: dict[str, Any], expand: bool) -> dict[str, Any]:
    number = partner["BusinessPartner"]
    uri = f"{SERVICE}/A_BusinessPartner('{number}')"
    out = {
        "__metadata": {"id": uri, "uri": uri, "type": "API_BUSINESS_PARTNER.A_BusinessPartnerType"},
        **{k: v for k, v in partner.items() if k not in ("companies", "addresses", "roles")},
    }
    if expand:
        out["to_Customer"] = {
            "Customer": partner["Customer"],
            "to_CustomerCompany": {"results": [{"Customer": partner["Customer"], **c} for c in partner["companies"]]},
        }
    else:
        out["to_Customer"] = {"__deferred": {"uri": f"{uri}/to_Customer"}}
    return out


def list_partners(tx: Tx, request: Request) -> Response:
    query = read_query(request, FILTERABLE)
    expand = "to_Customer" in request.query_params.get("$expand", "")
    found = [p for p in tx.list(SYSTEM, PARTNER) if all(_holds(p, c.field, c.op, c.value) for c in query.filters)]
    count = len(found)
    found = found[query.skip :]
    if query.top is not None:
        found = found[: query.top]
    return results([_render(p, expand) for p in found], count if query.inline_count else None)


def _holds(partner: dict[str, Any], field: str, op: str, value: Any) -> bool:
    actual = partner.get(field, "")
    if op == "=":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Only eq and ne filter business partners, not {op}")


def get_partner(tx: Tx, request: Request, number: str) -> Response:
    partner = tx.get(SYSTEM, PARTNER, number.lstrip("0") or "0")
    if partner is None:
        raise ODataError(
            404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment 'A_BusinessPartnerType' ({number})"
        )
    return odata_json(200, {"d": _render(partner, "to_Customer" in request.query_params.get("$expand", ""))})


# -- writing ---------------------------------------------------------------------------------


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"{what} must be a JSON object")
    return value


def _results(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    rows = _object(value, what).get("results")
    if not isinstance(rows, list):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"{what} needs a results array")
    return [_object(r, what) for r in rows]


def _company_rows(tx: Tx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        unknown = set(row) - {"CompanyCode", "ReconciliationAccount", "Customer"}
        if unknown:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property {sorted(unknown)[0]} is invalid")
        code = str(row.get("CompanyCode") or "")
        if company_code(tx, code) is None:
            raise ODataError(400, "CVI_EI/061", f"Company code {code or '(none)'} does not exist")
        out.append(
            {
                "CompanyCode": code,
                "ReconciliationAccount": row.get("ReconciliationAccount") or RECEIVABLE_RECONCILIATION,
            }
        )
    return out


def create_partner(tx: Tx, request: Request, body: Any) -> Response:
    refused = csrf_refused(tx, request)
    if refused is not None:
        return refused
    body = _object(body, "The request body")
    unknown = set(body) - PARTNER_FIELDS
    if unknown:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property {sorted(unknown)[0]} is invalid")
    for name, limit in LIMITS.items():
        if len(str(body.get(name) or "")) > limit:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property {name} is longer than {limit} characters")
    category = str(body.get("BusinessPartnerCategory") or "")
    if category not in ("1", "2"):
        raise ODataError(400, "R1/146", "Business partner category must be 1 (person) or 2 (organization)")
    if category == "2" and not body.get("OrganizationBPName1"):
        raise ODataError(400, "R1/147", "Enter a name for the organization (OrganizationBPName1)")
    roles = [str(r.get("BusinessPartnerRole") or "") for r in _results(body.get("to_BusinessPartnerRole"), "roles")]
    if set(roles) - ROLES:
        raise ODataError(400, "R11/657", f"Role {sorted(set(roles) - ROLES)[0]} is not known")
    addresses = _results(body.get("to_BusinessPartnerAddress"), "to_BusinessPartnerAddress")
    for address in addresses:
        if set(address) - ADDRESS_FIELDS:
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/004", f"Property {sorted(set(address) - ADDRESS_FIELDS)[0]} is invalid"
            )
    customer = _object(body.get("to_Customer") or {}, "to_Customer")
    if set(customer) - {"to_CustomerCompany"}:
        raise ODataError(
            400, "/IWBEP/CM_MGW_RT/004", f"Property {sorted(set(customer) - {'to_CustomerCompany'})[0]} is invalid"
        )
    companies = _company_rows(tx, _results(customer.get("to_CustomerCompany"), "to_CustomerCompany"))
    if companies and "FLCU01" not in roles:
        raise ODataError(400, "R11/658", "Company code data needs the customer role FLCU01")
    number = str(tx.count(SYSTEM, PARTNER) + 1000001)
    partner = {
        "BusinessPartner": number,
        "Customer": number if roles else "",
        "BusinessPartnerCategory": category,
        "BusinessPartnerGrouping": str(body.get("BusinessPartnerGrouping") or "BP02"),
        "OrganizationBPName1": str(body.get("OrganizationBPName1") or ""),
        "OrganizationBPName2": str(body.get("OrganizationBPName2") or ""),
        "SearchTerm1": str(body.get("SearchTerm1") or ""),
        "BusinessPartnerIDByExtSystem": str(body.get("BusinessPartnerIDByExtSystem") or ""),
        "roles": roles,
        "addresses": addresses,
        "companies": companies,
    }
    tx.put(SYSTEM, PARTNER, number, partner)
    return odata_json(201, {"d": _render(partner, True)}, {"location": f"{SERVICE}/A_BusinessPartner('{number}')"})


def create_customer_company(tx: Tx, request: Request, body: Any) -> Response:
    refused = csrf_refused(tx, request)
    if refused is not None:
        return refused
    body = _object(body, "The request body")
    customer = str(body.get("Customer") or "")
    partner = tx.get(SYSTEM, PARTNER, customer.lstrip("0") or "0")
    if partner is None or not partner["Customer"]:
        raise ODataError(400, "CVI_EI/062", f"Customer {customer or '(none)'} does not exist")
    rows = _company_rows(tx, [body])
    if any(c["CompanyCode"] == rows[0]["CompanyCode"] for c in partner["companies"]):
        raise ODataError(
            400, "CVI_EI/063", f"Customer {customer} already exists in company code {rows[0]['CompanyCode']}"
        )
    partner["companies"].append(rows[0])
    tx.put(SYSTEM, PARTNER, partner["BusinessPartner"], partner)
    return odata_json(201, {"d": {"Customer": customer, **rows[0]}})


def update_partner(tx: Tx, request: Request, body: Any, number: str) -> Response:
    refused = csrf_refused(tx, request)
    if refused is not None:
        return refused
    body = _object(body, "The request body")
    allowed = {"OrganizationBPName1", "OrganizationBPName2", "SearchTerm1"}
    if set(body) - allowed:
        raise ODataError(
            400, "/IWBEP/CM_MGW_RT/004", f"Property {sorted(set(body) - allowed)[0]} cannot be changed here"
        )
    partner = tx.get(SYSTEM, PARTNER, number.lstrip("0") or "0")
    if partner is None:
        raise ODataError(
            404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment 'A_BusinessPartnerType' ({number})"
        )
    for name, limit in LIMITS.items():
        if len(str(body.get(name) or "")) > limit:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property {name} is longer than {limit} characters")
    partner.update({k: str(v) for k, v in body.items()})
    tx.put(SYSTEM, PARTNER, partner["BusinessPartner"], partner)
    return Response(status_code=204)
