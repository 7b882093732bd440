"""Customers and their balance transactions (`/v1/customers`)."""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.params import integer, list_object, merge_metadata
from sandbox.stripe.payments import attach


def _customer_fields(customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    for name in ("name", "email", "description", "currency"):
        if name in params:
            customer[name] = params[name] or None
    if "address" in params:
        address = params["address"]
        if address == "":
            customer["address"] = None
        elif isinstance(address, dict):
            current = dict(customer.get("address") or {})
            for name in ("line1", "line2", "city", "state", "postal_code", "country"):
                if name in address:
                    current[name] = address[name] or None
            customer["address"] = current
        else:
            raise invalid("Invalid address: must be a hash", param="address")
    customer["metadata"] = merge_metadata(customer.get("metadata", {}), params.get("metadata"))
    return customer


def new_customer(id_: str | None = None) -> dict[str, Any]:
    return {
        "id": id_ or new_id("cus"),
        "object": "customer",
        "name": None,
        "email": None,
        "description": None,
        "address": None,
        "balance": 0,
        "currency": None,
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
        "invoice_settings": {"default_payment_method": None},
    }


def create_customer(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    customer = _customer_fields(new_customer(params.get("id")), params)
    if tx.get(SYSTEM, "customer", customer["id"]):
        raise invalid(f"Customer already exists: {customer['id']}", param="id", code="resource_already_exists")
    tx.put(SYSTEM, "customer", customer["id"], customer)
    return 200, customer


def get_customer(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    return 200, customer


def update_customer(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    settings = params.get("invoice_settings")
    pm_id = None
    if settings is not None:
        if not isinstance(settings, dict):
            raise invalid("Invalid invoice_settings: must be a hash", param="invoice_settings")
        pm_id = settings.get("default_payment_method")
    before = (customer.get("invoice_settings") or {}).get("default_payment_method")
    customer = _customer_fields(customer, params)
    if pm_id is not None:
        customer["invoice_settings"] = {**(customer.get("invoice_settings") or {}), "default_payment_method": None}
        if pm_id:
            pm = attach(tx, pm_id, id, param="invoice_settings[default_payment_method]")
            customer["invoice_settings"]["default_payment_method"] = pm["id"]
    tx.put(SYSTEM, "customer", id, customer)
    if pm_id is not None and customer["invoice_settings"]["default_payment_method"] != before:
        emit(
            tx,
            "customer.updated",
            customer,
            previous_attributes={"invoice_settings": {"default_payment_method": before}},
        )
    return 200, customer


def create_balance_transaction(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    if "amount" not in params:
        raise missing("amount")
    if "currency" not in params:
        raise missing("currency")
    amount = integer(params["amount"], "amount")
    customer["balance"] = int(customer.get("balance") or 0) + amount
    customer["currency"] = customer.get("currency") or params["currency"].lower()
    txn = {
        "id": new_id("cbtxn"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "currency": params["currency"].lower(),
        "customer": id,
        "description": params.get("description"),
        "ending_balance": customer["balance"],
        "type": "adjustment",
        "created": int(time.time()),
        "metadata": merge_metadata({}, params.get("metadata")),
    }
    tx.put(SYSTEM, "customer", id, customer)
    tx.put(SYSTEM, "customer_balance_transaction", txn["id"], txn)
    return 200, txn


def list_balance_transactions(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    if tx.get(SYSTEM, "customer", id) is None:
        raise no_such("customer", id)
    data = [t for t in tx.list(SYSTEM, "customer_balance_transaction") if t["customer"] == id]
    return 200, list_object(f"/v1/customers/{id}/balance_transactions", list(reversed(data)))
