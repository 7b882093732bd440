"""How o2c talks to Temporal: where to connect, the pydantic data converter, o2c's search attributes.

Where to connect is resolved per option (address, namespace, API key, TLS); the first source
that sets it wins:

1. o2c's own variables, `O2C_TEMPORAL_ADDRESS`, `O2C_TEMPORAL_NAMESPACE`, `O2C_TEMPORAL_API_KEY`
   and `O2C_TEMPORAL_TLS` (read by settings.py; the caller passes them to `connect_config`);
2. the Temporal SDK's variables: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
   `TEMPORAL_TLS` and the `TEMPORAL_TLS_*` certificates;
3. the profile `TEMPORAL_PROFILE` (`default` unless set) of the `temporal` CLI's configuration
   file, `TEMPORAL_CONFIG_FILE` or else `~/.config/temporalio/temporal.toml`;
4. the embedded stack's dev server: `127.0.0.1:7233`, namespace `default`, no TLS.

An API key implies TLS unless TLS is switched off explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.service import RPCError, RPCStatusCode

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"


def connect_config(
    *, address: str | None = None, namespace: str | None = None, api_key: str | None = None, tls: bool | None = None
) -> ClientConnectConfig:
    """The connection options, from o2c's own values (None: not set) over the TEMPORAL_*
    variables, the CLI profile and the defaults, in the order the module docstring gives."""
    config = ClientConfigProfile.load().to_client_connect_config()
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", DEFAULT_NAMESPACE)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    if api_key:
        config["api_key"] = api_key
        config.setdefault("tls", True)
    if tls is False:
        config["tls"] = False
    elif tls and not config.get("tls"):
        # A profile's TLS settings (certificates, server name) stay when o2c only asks for TLS.
        config["tls"] = True
    return config


async def connect(config: ClientConnectConfig) -> Client:
    """A client with the pydantic data converter, which the worker and every front door share."""
    return await Client.connect(**config, data_converter=pydantic_data_converter)


async def register_search_attributes(client: Client, namespace: str, keys: Iterable[SearchAttributeKey[str]]) -> None:
    """Idempotent: registers, as Keyword, only those of `keys` the namespace lacks."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server cannot list
            raise
        known = set()
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in keys if k.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
