"""The sandbox's routing: a mount per system, routes per endpoint, guarded once."""

from __future__ import annotations

import httpx

STRIPE_AUTH = ("sk_test_routing", "")


def test_another_method_on_a_known_path_is_the_systems_own_404(sandbox):
    response = httpx.delete(f"{sandbox.url}/stripe/v1/invoices", auth=STRIPE_AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_unknown_urls_are_authenticated_and_faulted_like_known_ones(sandbox):
    assert httpx.get(f"{sandbox.url}/stripe/v1/nothing").status_code == 401
    sandbox.fault("stripe", "5xx", times=1)
    assert httpx.get(f"{sandbox.url}/stripe/v1/nothing", auth=STRIPE_AUTH).status_code == 500
    assert httpx.get(f"{sandbox.url}/stripe/v1/nothing", auth=STRIPE_AUTH).status_code == 404


def test_an_encoded_slash_stays_inside_a_path_parameter(sandbox):
    url = f"{sandbox.url}/entitlements/v1/accounts/acct%2Fone/restriction"
    assert httpx.put(url, json={"restricted": True}).status_code == 200
    [restriction] = sandbox.records("entitlements", "restriction")
    assert restriction["account_id"] == "acct/one"
    assert httpx.get(url + "/").json()["restricted"] is True  # a trailing slash is the same URL


def test_unknown_systems_and_control_endpoints(sandbox):
    assert httpx.get(f"{sandbox.url}/oracle/x").json() == {"error": "unknown system 'oracle'"}
    response = httpx.get(f"{sandbox.url}/_sandbox/nothing")
    assert response.status_code == 404 and "no control endpoint GET /_sandbox/nothing" in response.json()["error"]
    assert httpx.get(f"{sandbox.url}/_sandbox/records/stripe").status_code == 400
