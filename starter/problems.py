"""Failures of what the CLI talks to, named for the person at the terminal: which system, at
which address, and whether it did not answer or answered with an error. Only a Temporal that
did not answer suggests that `o2c dev` may not be running."""

from __future__ import annotations

import httpx
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from adapters.errors import AdapterError
from settings import Settings
from starter.console import EXIT_REFUSED, EXIT_SYSTEM, Refused, SystemProblem

# The systems an adapter names in its errors, with the setting that holds their address.
SYSTEMS = {
    "stripe": ("Stripe", "stripe_base_url"),
    "avatax": ("AvaTax", "avatax_base_url"),
    "netsuite": ("NetSuite", "netsuite_base_url"),
    "sap": ("SAP S/4HANA", "sap_base_url"),
    "salesforce": ("Salesforce", "crm_base_url"),
}


def _where(settings: Settings) -> str:
    from starter.client import temporal_config

    return str(temporal_config(settings)["target_host"])


def _namespace(settings: Settings) -> str:
    from starter.client import temporal_config

    return str(temporal_config(settings)["namespace"])


def temporal_unreachable(settings: Settings, reason: str) -> SystemProblem:
    """Client.connect fails with a RuntimeError whose text carries the transport's reason."""
    what = "refused the connection" if "refused" in reason.lower() else f"did not answer ({reason})"
    return SystemProblem(f"Temporal at {_where(settings)} {what}; is `o2c dev` running?")


def _temporal(error: RPCError, settings: Settings) -> tuple[int, str]:
    if error.status == RPCStatusCode.NOT_FOUND:
        # Temporal answered: the workflow is unknown, or closed and no longer takes updates.
        if "already completed" in error.message:
            return EXIT_REFUSED, f"that process has already finished ({error.message}); nothing to answer"
        return EXIT_REFUSED, f"no such process in namespace {_namespace(settings)}: {error.message}"
    if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return EXIT_SYSTEM, str(temporal_unreachable(settings, error.message))
    return EXIT_SYSTEM, f"Temporal at {_where(settings)} answered {error.status.name}: {error.message}"


def _http(error: httpx.HTTPError, settings: Settings) -> str:
    try:
        where = str(error.request.url.copy_with(query=None))
    except RuntimeError:  # an error raised before any request was made
        where = settings.sandbox_url
    name = "the sandbox" if where.startswith(settings.sandbox_url) else where.split("/")[2]
    if isinstance(error, httpx.HTTPStatusError):
        detail = error.response.text[:200].strip()
        return f"{name} at {where} answered {error.response.status_code}" + (f": {detail}" if detail else "")
    if isinstance(error, httpx.ConnectError):
        return f"{name} at {where} refused the connection"
    return f"{name} at {where} did not answer ({type(error).__name__})"


def _adapter(error: AdapterError, settings: Settings) -> str:
    name, attribute = SYSTEMS.get(error.system, (error.system, "sandbox_url"))
    url = getattr(settings, attribute)
    owner = "the sandbox's " if url.startswith(settings.sandbox_url) else ""
    if error.status:
        return f"{owner}{name} at {url} answered {error.status}: {error.message}"
    return f"{owner}{name} at {url}: {error.message}"


def explain(error: BaseException, settings: Settings) -> tuple[int, str] | None:
    """The exit code and the sentence for a failure the CLI knows; None for a bug, which
    keeps its traceback."""
    if isinstance(error, Refused):
        return EXIT_REFUSED, str(error)
    if isinstance(error, SystemProblem):
        return EXIT_SYSTEM, str(error)
    if isinstance(error, WorkflowUpdateFailedError):
        return EXIT_REFUSED, f"refused: {error.cause.message if isinstance(error.cause, FailureError) else error}"
    if isinstance(error, RPCError):
        return _temporal(error, settings)
    if isinstance(error, AdapterError):
        return EXIT_SYSTEM, _adapter(error, settings)
    if isinstance(error, httpx.HTTPError):
        return EXIT_SYSTEM, _http(error, settings)
    return None
