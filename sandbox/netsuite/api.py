"""The NetSuite stand-in's routes."""

from __future__ import annotations

from starlette.responses import Response

from sandbox.core import json_response
from sandbox.netsuite import SYSTEM
from sandbox.netsuite.collection_cases import CASE_TYPE, get_case, upsert_case
from sandbox.netsuite.customers import get_customer, upsert_customer
from sandbox.netsuite.errors import authenticate, error, fault_response
from sandbox.netsuite.journal_entries import create, get, put_by_ref
from sandbox.netsuite.query import suiteql_query
from sandbox.netsuite.receivables import routes as receivables_routes
from sandbox.routing import Routes, System, run_in_one_unit_of_work

_RECORD = "/services/rest/record/v1/journalEntry"
_CASE = "/services/rest/record/v1/" + CASE_TYPE
ROUTES: Routes = [
    ("POST", _RECORD, create),
    ("PUT", _RECORD + "/{ref}", put_by_ref),
    ("GET", _RECORD + "/{ref}", get),
    ("PUT", "/services/rest/record/v1/customer/{ref}", upsert_customer),
    ("GET", "/services/rest/record/v1/customer/{ref}", get_customer),
    ("PUT", _CASE + "/{ref}", upsert_case),
    ("GET", _CASE + "/{ref}", get_case),
    ("POST", "/services/rest/query/v1/suiteql", suiteql_query),
    *receivables_routes("/services/rest/record/v1"),
]


def not_found(message: str) -> Response:
    return json_response(404, error(404, "INVALID_URL", message).body)


NETSUITE = System(SYSTEM, ROUTES, authenticate, fault_response, not_found, run_in_one_unit_of_work)
