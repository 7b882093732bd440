"""The AvaTax stand-in's routes."""

from __future__ import annotations

from starlette.responses import Response

from sandbox.avatax import SYSTEM
from sandbox.avatax.errors import authenticate, error, fault_response
from sandbox.avatax.listing import list_transactions
from sandbox.avatax.transactions import commit_transaction, create_transaction, get_transaction, void_transaction
from sandbox.core import json_response
from sandbox.routing import Routes, System, run_in_one_unit_of_work

_COMPANY = "/api/v2/companies/{company}/transactions"
_DOC = _COMPANY + "/{code}"
ROUTES: Routes = [
    ("POST", "/api/v2/transactions/create", create_transaction),
    ("GET", _COMPANY, list_transactions),
    ("GET", _DOC, get_transaction),
    ("POST", _DOC + "/commit", commit_transaction),
    ("POST", _DOC + "/void", void_transaction),
]


def not_found(message: str) -> Response:
    return json_response(404, error(404, "EntityNotFoundError", message).body)


AVATAX = System(SYSTEM, ROUTES, authenticate, fault_response, not_found, run_in_one_unit_of_work)
