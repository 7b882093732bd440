"""What every HTTP adapter shares: sending a request with transport failures
classified as transient, and reading JSON with exact decimals."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx

from adapters.errors import TransientError

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class HttpAdapter:
    """The HTTP client an adapter owns: its system's base URL, timeout and headers (tests
    may pass a client of their own). Closed with aclose()."""

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str], client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()


async def send(client: httpx.AsyncClient, system: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(
            system,
            f"{method} {url} timed out ({type(exc).__name__}); the outcome is unknown, retry with the same key",
            code="timeout",
        ) from exc
    except httpx.TransportError as exc:
        raise TransientError(system, f"{method} {url} failed to connect: {exc!r}", code="connection") from exc


def read_json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object the systems o2c talks to answer with (an unreadable body as `_raw`)."""
    if not response.content:
        return {}
    try:
        body: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return {"_raw": response.text[:500]}
    return body


def json_content(body: Any) -> bytes:
    """Encode a request body; Decimals go out as JSON numbers, exactly as written
    (never through a float)."""
    marker = "\u0000dec:"

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return marker + format(value, "f")
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    text = json.dumps(convert(body))
    text = re.sub(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"', r"\1", text)
    return text.encode()
