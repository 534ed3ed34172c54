"""Webhook deliveries over HTTP on a real server: a timestamped signature is accepted once
(a replay within its window is 409 `webhook_replayed`, no run); a hook's `mapping` renders the
request (body, headers, query) into the run's inputs; form fields and multipart files."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from runyard.triggers.webhook import SignatureConfig, sign
from tests.support.api import deploy

TOOL = "def main(name: str = 'nobody', n: int = 0, event: str = ''):\n    return f'hi {name} {n} {event}'.strip()\n"
FILE_TOOL = """from pathlib import Path

def main(data: str, note: str = ''):
    return Path(data).read_text() + note
"""
JSON_HEADERS = {"Content-Type": "application/json"}


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def _hook(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _run_count(api: httpx.Client, tool: str) -> int:
    return len(api.get("/runs", params={"tool": tool, "limit": 1000}).json()["items"])


def _post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, timeout=40, **kwargs)


def test_a_replayed_stripe_signature_is_refused(api: httpx.Client, unique: str) -> None:
    tool = f"replay-{unique}"
    deploy(api, tool, TOOL)
    secret = "replay-secret-" + unique
    hook = _hook(api, tool=tool, signature={"secret": secret, "header": "Stripe-Signature", "format": "stripe",
                                            "tolerance_s": 300})
    config = SignatureConfig(header="Stripe-Signature", format="stripe", tolerance_s=300)
    body = json.dumps({"name": "ann"}).encode()
    now = int(time.time())
    signed = sign(config, secret, body, timestamp=now)
    first = _post(hook["url"], content=body, headers={**JSON_HEADERS, **signed})
    assert first.status_code == 202, first.text
    # the very same request again, and the same signature spelt differently: refused, no run
    value = signed["Stripe-Signature"]
    digest = value.split("v1=", 1)[1]
    respelt = f"t={now}, v1={digest.upper()}"
    for headers in (signed, {"Stripe-Signature": value + ",v1=" + "0" * 64}, {"Stripe-Signature": respelt}):
        again = _post(hook["url"], content=body, headers={**JSON_HEADERS, **headers})
        assert again.status_code == 409 and error_code(again) == "webhook_replayed", again.text
    assert _run_count(api, tool) == 1
    # a new timestamp is a new delivery, even of the same body
    fresh = _post(hook["url"], content=body, params={"wait": 20},
                  headers={**JSON_HEADERS, **sign(config, secret, body, timestamp=now + 1)})
    assert fresh.status_code == 200 and fresh.json()["run"]["output"] == "hi ann 0", fresh.text
    # so is the same timestamp over another body
    other = json.dumps({"name": "bob"}).encode()
    assert _post(hook["url"], content=other,
                 headers={**JSON_HEADERS, **sign(config, secret, other, timestamp=now)}).status_code == 202
    assert _run_count(api, tool) == 3
    # a wrong signature is still 401 (not a replay), and starts nothing
    wrong = _post(hook["url"], content=body, headers={**JSON_HEADERS, **sign(config, "other", body, timestamp=now)})
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_signature", wrong.text
    assert _run_count(api, tool) == 3


def test_a_replayed_timestamp_header_signature_is_refused(api: httpx.Client, unique: str) -> None:
    tool = f"replayts-{unique}"
    deploy(api, tool, TOOL)
    secret = "ts-secret-" + unique
    hook = _hook(api, tool=tool, signature={"secret": secret, "header": "X-Signature", "format": "hex",
                                            "timestamp_header": "X-Timestamp", "tolerance_s": 120})
    config = SignatureConfig(header="X-Signature", format="hex", timestamp_header="X-Timestamp", tolerance_s=120)
    body = json.dumps({"n": 1}).encode()
    headers = {**JSON_HEADERS, **sign(config, secret, body)}
    assert _post(hook["url"], content=body, headers=headers).status_code == 202
    replay = _post(hook["url"], content=body, headers=headers)
    assert replay.status_code == 409 and error_code(replay) == "webhook_replayed", replay.text
    assert _run_count(api, tool) == 1
    # a request refused for its inputs starts no run and is forgotten: once the tool takes
    # them, the same signed request goes through
    bad = json.dumps({"n": "two"}).encode()
    bad_headers = {**JSON_HEADERS, **sign(config, secret, bad)}
    refused = _post(hook["url"], content=bad, headers=bad_headers)
    assert refused.status_code == 400 and error_code(refused) == "invalid_inputs", refused.text
    deploy(api, tool, "def main(n: str = ''):\n    return 'n=' + n\n")
    retried = _post(hook["url"], content=bad, headers=bad_headers, params={"wait": 20})
    assert retried.status_code == 200 and retried.json()["run"]["output"] == "n=two", retried.text


def test_without_a_timestamp_a_resend_is_not_refused(api: httpx.Client, unique: str) -> None:
    """GitHub-style signatures carry no timestamp: a replay cannot be told from a resend."""
    tool = f"notime-{unique}"
    deploy(api, tool, TOOL)
    secret = "gh-secret-" + unique
    hook = _hook(api, tool=tool, signature={"secret": secret})
    body = json.dumps({"name": "gh"}).encode()
    headers = {**JSON_HEADERS, **sign(SignatureConfig(), secret, body)}
    assert [_post(hook["url"], content=body, headers=headers).status_code for _ in range(2)] == [202, 202]
    assert _run_count(api, tool) == 2


def test_a_mapping_renders_the_request_into_inputs(api: httpx.Client, unique: str) -> None:
    tool = f"mapped-{unique}"
    deploy(api, tool, TOOL)
    mapping = {"name": "${{ inputs.body.sender.login }}",
               "n": "${{ len(inputs.body.commits) + default(inputs.query.extra, 0) }}",
               "event": "${{ inputs.headers['x-github-event'] }}/${{ inputs.query.ref }}"}
    hook = _hook(api, tool=tool, mapping=mapping)
    assert hook["mapping"] == mapping
    assert api.get(f"/webhooks/{hook['id']}").json()["mapping"] == mapping
    payload = {"sender": {"login": "octo"}, "commits": [{"id": 1}, {"id": 2}], "unused": True}
    done = _post(hook["url"], json=payload, params={"wait": 20, "ref": "main"}, headers={"X-GitHub-Event": "push"})
    assert done.status_code == 200, done.text
    run = done.json()["run"]
    assert run["output"] == "hi octo 2 push/main", run
    # a body that is not an object is fine when a mapping reads it
    api.patch(f"/webhooks/{hook['id']}", json={"mapping": {"name": "${{ join(inputs.body, '+') }}"}})
    listed = _post(hook["url"], json=["a", "b"], params={"wait": 20})
    assert listed.status_code == 200 and listed.json()["run"]["output"] == "hi a+b 0", listed.text
    # form fields are the body too
    api.patch(f"/webhooks/{hook['id']}", json={"mapping": {"name": "form-${{ inputs.body.who }}"}})
    form = _post(hook["url"], data={"who": "cy"}, params={"wait": 20})
    assert form.status_code == 200 and form.json()["run"]["output"] == "hi form-cy 0", form.text
    # mapping: null: the body is the inputs again
    patched = api.patch(f"/webhooks/{hook['id']}", json={"mapping": None})
    assert patched.status_code == 200 and patched.json()["mapping"] is None
    plain = _post(hook["url"], json={"name": "plain"}, params={"wait": 20})
    assert plain.status_code == 200 and plain.json()["run"]["output"] == "hi plain 0", plain.text


def test_credentials_and_the_signature_header_are_not_shown_to_a_mapping(api: httpx.Client, unique: str) -> None:
    tool = f"hidden-{unique}"
    deploy(api, tool, TOOL)
    secret = "hidden-" + unique
    hook = _hook(api, tool=tool, signature={"secret": secret},
                 mapping={"name": "${{ default(inputs.headers.authorization, 'none') }}-"
                                  "${{ default(inputs.headers.cookie, 'none') }}-"
                                  "${{ default(inputs.headers['x-hub-signature-256'], 'none') }}-"
                                  "${{ inputs.headers['x-custom'] }}"})
    body = b"{}"
    headers = {**JSON_HEADERS, **sign(SignatureConfig(), secret, body), "Authorization": "Bearer ry_secret",
               "Cookie": "session=1", "X-Custom": "ok"}
    done = _post(hook["url"], content=body, headers=headers, params={"wait": 20})
    assert done.status_code == 200 and done.json()["run"]["output"] == "hi none-none-none-ok 0", done.text


def test_a_bad_mapping_is_refused_when_saved(api: httpx.Client, unique: str) -> None:
    tool = f"badmap-{unique}"
    deploy(api, tool, TOOL)
    for mapping, column in (({"name": "${{ inputs.body. }}"}, 18), ({"name": "x ${{ steps.a.output }}"}, 7),
                            ({"name": "${{ inputs.secrets }}"}, 5), ({"name": {"a": ["${{ inputs.body"]}}, 1)):
        response = api.post("/webhooks", json={"tool": tool, "mapping": mapping})
        assert response.status_code == 400 and error_code(response) == "invalid_mapping", response.text
        assert response.json()["error"]["details"]["column"] == column, response.text
        assert response.json()["error"]["details"]["field"].startswith("mapping.name"), response.text
    assert api.post("/webhooks", json={"tool": tool, "mapping": ["${{ inputs.body }}"]}).status_code == 400
    hook = _hook(api, tool=tool, mapping={"name": "${{ inputs.body.name }}"})
    response = api.patch(f"/webhooks/{hook['id']}", json={"mapping": {"n": "${{ item }}"}})
    assert response.status_code == 400 and error_code(response) == "invalid_mapping", response.text
    assert api.get(f"/webhooks/{hook['id']}").json()["mapping"] == {"name": "${{ inputs.body.name }}"}


def test_a_mapping_that_fails_on_a_request_is_422_and_starts_no_run(api: httpx.Client, unique: str) -> None:
    tool = f"mapfail-{unique}"
    deploy(api, tool, TOOL)
    hook = _hook(api, tool=tool, mapping={"name": "${{ inputs.body.user.name }}", "n": "${{ inputs.body.n + 1 }}"})
    for payload in ({"n": 1}, {"user": {"name": "x"}, "n": "one"}, None):
        response = _post(hook["url"], json=payload)
        assert response.status_code == 422 and error_code(response) == "mapping_failed", response.text
        assert response.json()["error"]["details"]["field"] in ("mapping.name", "mapping.n"), response.text
    # the mapping renders, but the tool does not take what it made: 400 as without one
    response = _post(hook["url"], json={"user": {"name": ["not", "text"]}, "n": 1})
    assert response.status_code == 400 and error_code(response) == "invalid_inputs", response.text
    assert _run_count(api, tool) == 0
    ok = _post(hook["url"], json={"user": {"name": "z"}, "n": 1}, params={"wait": 20})
    assert ok.status_code == 200 and ok.json()["run"]["output"] == "hi z 2", ok.text


def test_multipart_files_become_input_files(api: httpx.Client, unique: str) -> None:
    tool = f"hookfile-{unique}"
    deploy(api, tool, FILE_TOOL)
    hook = _hook(api, tool=tool)
    done = _post(hook["url"], data={"note": "!"}, files={"data": ("in.txt", b"hello")}, params={"wait": 20})
    assert done.status_code == 200, done.text
    run = done.json()["run"]
    assert run["status"] == "succeeded" and run["output"] == "hello!", run
    assert run["input_files"] == ["data"]
    # signed: the HMAC covers the raw multipart body
    secret = "mp-" + unique
    signed_hook = _hook(api, tool=tool, signature={"secret": secret, "format": "stripe", "header": "Stripe-Signature"})
    request = httpx.Request("POST", signed_hook["url"], params={"wait": 20}, files={"data": ("d.txt", b"signed")})
    raw = request.read()
    config = SignatureConfig(header="Stripe-Signature", format="stripe")
    request.headers.update(sign(config, secret, raw))
    with httpx.Client(timeout=40) as client:
        answer = client.send(request)
        assert answer.status_code == 200 and answer.json()["run"]["output"] == "signed", answer.text
        request2 = httpx.Request("POST", signed_hook["url"], content=raw,
                                 headers={"Content-Type": request.headers["Content-Type"],
                                          **sign(config, "wrong", raw)})
        wrong = client.send(request2)
        assert wrong.status_code == 401 and error_code(wrong) == "invalid_signature", wrong.text
    # a file the tool does not take: 400, no run
    before = _run_count(api, tool)
    extra = _post(hook["url"], files={"data": ("a.txt", b"a"), "other": ("b.txt", b"b")})
    assert extra.status_code == 400 and error_code(extra) == "invalid_inputs", extra.text
    assert _run_count(api, tool) == before
