"""A window without cyclic garbage collection, for building a whole statement at once."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bulk() -> Iterator[None]:
    """No cyclic garbage collection while a file is read or its receipts made: a
    100,000-entry statement makes a million objects and no reference cycles, and
    collecting the growing heap over and over cost as much as the parsing itself.
    Reference counting still frees what is dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
