"""Webhooks over HTTP on a real server: the URL secret starts a run with the request's JSON
(or form) as inputs; a wrong signature, an unknown token or a hook over its rate starts none."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx

from runyard.triggers.webhook import SignatureConfig, sign
from tests.support.api import deploy

TOOL = "def main(name: str = 'nobody', n: int = 0):\n    return f'hi {name} {n}'\n"


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def _hook(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _run_count(api: httpx.Client, tool: str) -> int:
    return len(api.get("/runs", params={"tool": tool, "limit": 1000}).json()["items"])


def test_a_hook_starts_a_run_with_the_json_body(api: httpx.Client, unique: str) -> None:
    tool = f"hook-{unique}"
    deploy(api, tool, TOOL)
    hook = _hook(api, tool=tool)
    url = hook["url"]
    assert "/hooks/rwh_" in url and hook["id"] not in url
    # the URL is shown once: reading the hook never gives it again
    again = api.get(f"/webhooks/{hook['id']}").json()
    assert "url" not in again and url.rsplit("/", 1)[1] not in json.dumps(again)
    accepted = httpx.post(url, json={"name": "bob", "n": 2}, timeout=30)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    done = api.get(f"/runs/{run_id}/wait", params={"timeout": 30}).json()
    assert done["status"] == "succeeded" and done["output"] == "hi bob 2" and done["trigger"] == "webhook", done
    # ?wait= answers with the run once it ended
    waited = httpx.post(url, params={"wait": 20}, json={"name": "ann"}, timeout=40)
    assert waited.status_code == 200, waited.text
    assert waited.json()["run"]["output"] == "hi ann 0" and waited.json()["status"] == "succeeded"
    # form fields are inputs too; an empty body is no inputs
    form = httpx.post(url, params={"wait": 20}, data={"name": "cy"}, timeout=40)
    assert form.status_code == 200 and form.json()["run"]["output"] == "hi cy 0", form.text
    empty = httpx.post(url, params={"wait": 20}, timeout=40)
    assert empty.status_code == 200 and empty.json()["run"]["output"] == "hi nobody 0", empty.text
    # a body that is not an object, or inputs the tool does not take: 400, no run
    count = _run_count(api, tool)
    for bad in (httpx.post(url, json=[1, 2], timeout=30), httpx.post(url, json={"n": "two"}, timeout=30)):
        assert bad.status_code == 400 and error_code(bad) == "invalid_inputs", bad.text
    assert _run_count(api, tool) == count
    assert api.get(f"/webhooks/{hook['id']}").json()["last_used_at"] is not None
    listed = api.get("/webhooks", params={"limit": 1000}).json()["items"]
    assert hook["id"] in {h["id"] for h in listed}


def test_unknown_tokens_are_404_and_reveal_nothing(api: httpx.Client, server: Any, unique: str) -> None:
    tool = f"hook404-{unique}"
    deploy(api, tool, TOOL)
    hook = _hook(api, tool=tool)
    base = server.base_url
    for path in ("/hooks/rwh_" + "A" * 43, "/hooks/junk", f"/hooks/{hook['id']}"):
        response = httpx.post(base + path, json={"name": "x"}, timeout=30)
        assert response.status_code == 404 and error_code(response) == "not_found", response.text
        assert hook["id"] not in response.text and tool not in response.text
    # a deleted or disabled hook's URL answers the same
    assert api.patch(f"/webhooks/{hook['id']}", json={"enabled": False}).json()["enabled"] is False
    response = httpx.post(hook["url"], json={}, timeout=30)
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert api.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert httpx.post(hook["url"], json={}, timeout=30).status_code == 404
    assert _run_count(api, tool) == 0


def test_a_wrong_signature_is_401_and_starts_no_run(api: httpx.Client, unique: str) -> None:
    tool = f"signed-{unique}"
    deploy(api, tool, TOOL)
    secret = "shared-secret-" + unique
    hook = _hook(api, tool=tool, signature={"secret": secret})
    assert hook["signature"]["header"] == "X-Hub-Signature-256" and "secret" not in hook["signature"]
    body = json.dumps({"name": "sig"}).encode()
    config = SignatureConfig()
    headers = {"Content-Type": "application/json"}
    for extra in ({}, sign(config, "not-the-secret", body), {"X-Hub-Signature-256": "sha256=" + "0" * 64}):
        response = httpx.post(hook["url"], content=body, headers={**headers, **extra}, timeout=30)
        assert response.status_code == 401, response.text
        assert error_code(response) in ("missing_signature", "invalid_signature")
    assert _run_count(api, tool) == 0
    response = httpx.post(hook["url"], content=body, params={"wait": 20},
                          headers={**headers, **sign(config, secret, body)}, timeout=40)
    assert response.status_code == 200 and response.json()["run"]["output"] == "hi sig 0", response.text
    # a timestamped (stripe-style) signature outside its window
    stripe = SignatureConfig(header="Stripe-Signature", format="stripe", tolerance_s=60)
    api.patch(f"/webhooks/{hook['id']}", json={"signature": {"secret": secret, "header": "Stripe-Signature",
                                                             "format": "stripe", "tolerance_s": 60}})
    old = sign(stripe, secret, body, timestamp=1_000_000_000)
    response = httpx.post(hook["url"], content=body, headers={**headers, **old}, timeout=30)
    assert response.status_code == 401 and error_code(response) == "signature_expired"
    assert _run_count(api, tool) == 1


def test_a_hook_over_its_rate_gets_429(api: httpx.Client, unique: str) -> None:
    tool = f"rate-{unique}"
    deploy(api, tool, TOOL)
    hook = _hook(api, tool=tool, rate_per_s=0.05, burst=2)
    answers = [httpx.post(hook["url"], json={"n": i}, timeout=30) for i in range(4)]
    assert [a.status_code for a in answers[:2]] == [202, 202], [a.text for a in answers]
    for refused in answers[2:]:
        assert refused.status_code == 429 and error_code(refused) == "rate_limited", refused.text
        assert int(refused.headers["Retry-After"]) >= 1
    # a request without a body is held to the limit too
    assert httpx.post(hook["url"], timeout=30).status_code == 429
    assert _run_count(api, tool) == 2


def test_invalid_webhooks_are_refused(api: httpx.Client, unique: str) -> None:
    response = api.post("/webhooks", json={"tool": f"missing-{unique}"})
    assert response.status_code == 400 and error_code(response) == "invalid_target"
    response = api.post("/webhooks", json={"workflow": f"missing-{unique}"})
    assert response.status_code == 400 and error_code(response) == "invalid_target"
    tool = f"hookbad-{unique}"
    deploy(api, tool, TOOL)
    response = api.post("/webhooks", json={"tool": tool, "signature": {"secret": "s", "header": "bad header"}})
    assert response.status_code == 400 and error_code(response) == "invalid_signature_config", response.text
    assert error_code(api.get("/webhooks/whk_missing")) == "webhook_not_found"


def test_the_token_is_checked_before_the_body_is_read(server: Any) -> None:
    """An unknown token is refused on the headers alone: the server answers 404 without
    waiting for the (never sent) body, and closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"POST /hooks/rwh_" + b"B" * 43 + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 404 " in status_line, answer[:200]
    # over the body limit, whatever the token: 413 before anything is read
    too_big = httpx.post(f"{server.base_url}/hooks/rwh_" + "C" * 43, content=b"x" * (17 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, timeout=60)
    assert too_big.status_code == 413
