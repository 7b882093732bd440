"""What every request must be before anything starts: its business ids safe to put in a
workflow id, an Idempotency-Key header or a URL path, its lines and its size bounded.

One rule for every business id (amendment, contract, subscription, account, credit, refund,
usage event ids and the products that name steps): 1 to 100 of the characters A-Z, a-z,
0-9, `.`, `_`, `:` and `-`, starting with a letter or digit.

- The characters are those that mean the same in a header value, a URL path segment, a
  Temporal workflow id and a log line: no whitespace, no control characters (CR and LF split
  a header, NUL ends a C string), no `/`, `?`, `#` or `%` (they change what a URL points at),
  no Unicode (right-to-left marks reorder what a person reads, and httpx sends headers as
  ASCII). A first letter or digit keeps an id from reading as a command-line option.
- 100 characters is the shortest limit of a system o2c sends ids to (a Stripe meter event
  identifier, ≤ 100), and keeps every idempotency key `<process>-<id>/<step>` under Stripe's
  255 even when the step names a second id (`dunning-<invoice>/paid-out-of-band-<invoice>`
  is at most 226). Stripe object ids (`sub_…`, `in_…`, `ch_…`, `il_…`, about 30), Salesforce
  ids (18) and NetSuite internal ids (digits) pass.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_ID_LENGTH = 100
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
ID_RULE = (
    f"an id is 1 to {MAX_ID_LENGTH} letters (A-Z, a-z), digits, '.', '_', ':' or '-', starting with a letter or digit"
)

# The most lines a request may carry: the most items Stripe puts on one invoice (250), so a
# change billing could never show on one invoice is refused before it starts.
MAX_LINES = 250
# The most a request may weigh as JSON, read from a file or a body and as a workflow input.
# Temporal warns from 512 KB per payload and refuses at 2 MB; 250 lines take some 40 KB.
MAX_REQUEST_BYTES = 256 * 1024

_NAMES = {"\x00": "NUL", "\t": "a tab", "\n": "a line feed (LF)", "\r": "a carriage return (CR)", " ": "a space"}


def _character(ch: str) -> str:
    """A character as a person can read it in an error message, even an invisible one."""
    name = _NAMES.get(ch) or unicodedata.name(ch, "")
    shown = f"{ch!r} " if ch.isprintable() and not ch.isspace() and ch.isascii() else ""
    return f"{shown}U+{ord(ch):04X}" + (f" {name}" if name else "")


def id_problem(value: str) -> str:
    """Why `value` is not a business id, in words; empty when it is one."""
    if not value:
        return f"is empty; {ID_RULE}"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value):,} characters long; {ID_RULE}"
    if _ID.fullmatch(value):
        return ""
    first = value[0]
    if not (first.isascii() and first.isalnum()):
        return f"starts with {_character(first)}; {ID_RULE}"
    wrong = next(ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in "._:-")))
    return f"contains {_character(wrong)}; {ID_RULE}"


def is_business_id(value: str) -> bool:
    return not id_problem(value)


def _business_id(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise PydanticCustomError("business_id", problem)
    return value


def _optional_business_id(value: str) -> str:
    return value and _business_id(value)


_SCHEMA = {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": MAX_ID_LENGTH}

# A business id, refused by name with the reason when it breaks the rule above.
BusinessId = Annotated[str, AfterValidator(_business_id), WithJsonSchema(_SCHEMA)]
# The same rule for an id a request may leave empty ("" = not given).
OptionalBusinessId = Annotated[
    str, AfterValidator(_optional_business_id), WithJsonSchema({"anyOf": [_SCHEMA, {"const": ""}]})
]


def size_problem(what: str, size: int) -> str:
    """Why a request of `size` bytes is refused; empty when it is small enough."""
    if size <= MAX_REQUEST_BYTES:
        return ""
    return f"the {what} is {size:,} bytes; a request is at most {MAX_REQUEST_BYTES:,} bytes ({MAX_REQUEST_BYTES // 1024} KB)"


def request_size_problems(what: str, request: BaseModel) -> list[str]:
    """A request too heavy to become a workflow input, however it arrived."""
    problem = size_problem(what, len(request.model_dump_json().encode()))
    return [problem] if problem else []
