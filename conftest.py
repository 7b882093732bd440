"""Repository-wide pytest settings.

The Temporal SDK's native runtime can abort the interpreter while it shuts down after a
test environment closes. The result is known by then, so leave with pytest's own exit
status before interpreter teardown can turn a green run red.
"""

import os
import sys

import pytest

_exit_status = {"code": None}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    code = _exit_status["code"]
    if code is None or os.environ.get("O2C_NO_FAST_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
