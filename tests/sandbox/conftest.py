import pytest


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox):
    sandbox.reset()
    yield
    sandbox.clear_faults()
