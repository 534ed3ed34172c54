"""Email triggers on a real server with its SMTP listener (``RUNYARD_SMTP_PORT``): real mail sent
with ``smtplib`` to an alias starts a run of the tool with the subject as an input and the
attachment as an input file; mail to no alias, from a sender off the allow-list, over the
trigger's size limit, to a disabled trigger or one whose owner is gone starts none — and every
message leaves a record saying why."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.support.api import deploy
from tests.support.servers import PgDatabase, Server, free_port

TOOL = """
import os
def main(subject: str, sender: str = "", attachment_1: str = ""):
    size = os.path.getsize(attachment_1) if attachment_1 else -1
    return {"subject": subject, "sender": sender, "size": size, "name": os.path.basename(attachment_1)}
"""


@pytest.fixture(scope="module")
def mail_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"runyard-smtp-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_SMTP_PORT": str(free_port())})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture
def admin(mail_server: Server) -> Iterator[httpx.Client]:
    with mail_server.client() as client:
        yield client


def smtp_port(server: Server) -> int:
    return int(server.extra_env["RUNYARD_SMTP_PORT"])


def message(to: str, *, sender: str = "boss@example.com", subject: str = "hello",
            attachment: bytes | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content("the body\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="../report.bin")
    return msg


def send(server: Server, msg: EmailMessage, *, to: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port(server), timeout=30) as smtp:
        smtp.send_message(msg, to_addrs=[to] if to else None)


def _eventually(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _trigger(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/email-triggers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _records(api: httpx.Client, trigger_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/email-triggers/{trigger_id}/records")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _runs(api: httpx.Client, tool: str) -> list[dict[str, Any]]:
    return api.get("/runs", params={"tool": tool, "limit": 1000}).json()["items"]


def test_mail_to_an_alias_runs_the_tool(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    tool = f"mail-{unique}"
    deploy(admin, tool, TOOL)
    address = f"Invoices-{unique}@Example.com"
    trigger = _trigger(admin, tool=tool, aliases=[address], allowed_senders=["@example.com"])
    assert trigger["aliases"] == [address.lower()] and trigger["enabled"] is True
    payload = bytes(range(256)) * 40  # 10,240 bytes
    send(mail_server, message(address, subject=f"invoice {unique}", attachment=payload))
    run_id = _eventually(lambda: (r := _records(admin, trigger["id"])) and r[0]["run_id"], what="the record")
    done = admin.get(f"/runs/{run_id}/wait", params={"timeout": 30}).json()
    assert done["status"] == "succeeded", done
    assert done["trigger"] == "email", done
    assert done["triggered_by"] == "boss@example.com", done  # the sender (a filter on GET /runs)
    assert done["output"] == {"subject": f"invoice {unique}", "sender": "boss@example.com", "size": len(payload),
                              "name": "report.bin"}, done
    record = _records(admin, trigger["id"])[0]
    assert record["status"] == "accepted" and record["reason"] is None and record["subject"] == f"invoice {unique}"
    # a client cannot claim the email trigger
    claimed = admin.post("/runs", json={"tool": tool, "inputs": {"subject": "x"}}, headers={"X-Runyard-Trigger": "email"})
    assert claimed.status_code == 400 and claimed.json()["error"]["details"]["field"] == "trigger", claimed.text
    # the alias API: list, add, rename, delete; an address cannot be two aliases
    aliases = admin.get(f"/email-triggers/{trigger['id']}/aliases").json()["items"]
    assert [a["address"] for a in aliases] == [address.lower()]
    second = admin.post(f"/email-triggers/{trigger['id']}/aliases", json={"address": f"second-{unique}@example.com"})
    assert second.status_code == 201, second.text
    taken = admin.post(f"/email-triggers/{trigger['id']}/aliases", json={"address": address.upper()})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "alias_taken", taken.text
    bad = admin.post(f"/email-triggers/{trigger['id']}/aliases", json={"address": "no-domain"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_alias", bad.text
    renamed = admin.patch(f"/email-triggers/{trigger['id']}/aliases/{second.json()['id']}",
                          json={"address": f"third-{unique}@example.com"})
    assert renamed.status_code == 200 and renamed.json()["address"] == f"third-{unique}@example.com", renamed.text
    assert admin.delete(f"/email-triggers/{trigger['id']}/aliases/{second.json()['id']}").status_code == 204
    assert admin.get(f"/email-triggers/{trigger['id']}").json()["aliases"] == [address.lower()]
    bad_sender = admin.patch(f"/email-triggers/{trigger['id']}", json={"allowed_senders": ["nobody"]})
    assert bad_sender.status_code == 400 and bad_sender.json()["error"]["code"] == "invalid_sender_pattern"
    listed = admin.get("/email-triggers", params={"limit": 1000}).json()["items"]
    assert trigger["id"] in {t["id"] for t in listed}


def test_unknown_recipients_are_refused_at_rcpt(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    stranger = f"nobody-{unique}@example.com"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mail_server, message(stranger))
    assert refused.value.recipients[stranger][0] == 550
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # never a relay
        send(mail_server, message(f"someone-{unique}@gmail.com"))

    def recorded() -> Any:
        items = admin.get("/email-records", params={"limit": 1000}).json()["items"]
        return [r for r in items if stranger in r["recipients"]]
    [record] = _eventually(recorded, what="the record of the refusal")
    assert record["status"] == "rejected" and record["reason"] == "recipient_rejected" and record["trigger_id"] is None


def test_a_sender_off_the_allow_list_is_rejected(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    tool = f"mailallow-{unique}"
    deploy(admin, tool, TOOL)
    address = f"allow-{unique}@example.com"
    trigger = _trigger(admin, tool=tool, aliases=[address], allowed_senders=["boss@example.com"])
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mail_server, message(address, sender="mallory@evil.example"))
    assert refused.value.smtp_code == 550
    [record] = _eventually(lambda: _records(admin, trigger["id"]), what="the record")
    assert record["status"] == "rejected" and record["reason"] == "sender_not_allowed" and record["run_id"] is None
    assert _runs(admin, tool) == []


def test_a_message_over_the_trigger_limit_is_refused(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    tool = f"mailbig-{unique}"
    deploy(admin, tool, TOOL)
    address = f"big-{unique}@example.com"
    trigger = _trigger(admin, tool=tool, aliases=[address], max_message_bytes=1024 * 1024)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mail_server, message(address, attachment=b"x" * (2 * 1024 * 1024)))
    assert refused.value.smtp_code == 550
    [record] = _eventually(lambda: _records(admin, trigger["id"]), what="the record")
    assert record["status"] == "rejected" and record["reason"] == "message_too_large", record
    assert record["size"] > 2 * 1024 * 1024
    assert _runs(admin, tool) == []


def test_a_disabled_trigger_refuses_mail(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    tool = f"mailoff-{unique}"
    deploy(admin, tool, TOOL)
    address = f"off-{unique}@example.com"
    trigger = _trigger(admin, tool=tool, aliases=[address])
    off = admin.patch(f"/email-triggers/{trigger['id']}", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail_server, message(address))
    [record] = _eventually(lambda: _records(admin, trigger["id"]), what="the record")
    assert record["status"] == "rejected" and record["reason"] == "recipient_rejected"
    assert _runs(admin, tool) == []
    # enabled again, it takes mail; deleted, its address is unknown
    assert admin.patch(f"/email-triggers/{trigger['id']}", json={"enabled": True}).json()["enabled"] is True
    send(mail_server, message(address))
    _eventually(lambda: _runs(admin, tool), what="a run")
    assert admin.delete(f"/email-triggers/{trigger['id']}").status_code == 204
    assert admin.get(f"/email-triggers/{trigger['id']}").status_code == 404
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail_server, message(address))


def test_a_trigger_whose_owner_is_gone_refuses_mail(mail_server: Server, admin: httpx.Client, unique: str) -> None:
    tool = f"mailowner-{unique}"
    deploy(admin, tool, TOOL, visibility="public")  # the admin's tool, run by another user's trigger
    username, password = f"mail-{unique}", "a-long-password-1"
    assert admin.post("/users", json={"username": username, "role": "member", "password": password}).status_code == 201
    key = admin.post("/auth/login", json={"username": username, "password": password}).json()["key"]
    address = f"owner-{unique}@example.com"
    with mail_server.client(key) as own:
        trigger = _trigger(own, tool=tool, aliases=[address])
        assert [t["id"] for t in own.get("/email-triggers").json()["items"]] == [trigger["id"]]
    assert admin.delete(f"/users/{username}").status_code == 204
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mail_server, message(address))
    assert refused.value.smtp_code == 550
    [record] = _eventually(lambda: _records(admin, trigger["id"]), what="the record")
    assert record["status"] == "rejected" and record["reason"] == "owner_revoked" and "owner" in record["detail"]
    view = admin.get(f"/email-triggers/{trigger['id']}").json()
    assert view["enabled"] is False and "owner" in view["disabled_reason"], view
    assert _runs(admin, tool) == []
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # disabled now: refused at RCPT
        send(mail_server, message(address))


def test_mail_can_start_a_workflow_with_its_attachment(mail_server: Server, admin: httpx.Client,
                                                       unique: str) -> None:
    """A workflow target: the subject and sender become inputs, the attachment a file input
    passed on to a step."""
    tool = f"mailstep-{unique}"
    deploy(admin, tool, TOOL)
    flow = f"mailflow-{unique}"
    saved = admin.post("/workflows", json={"definition": {
        "name": flow,
        "inputs": {"type": "object", "properties": {
            "subject": {"type": "string"}, "sender": {"type": "string"},
            "attachment_1": {"type": "string", "format": "file"}}},
        "steps": [{"id": "read", "uses": tool, "with": {
            "subject": "${{ inputs.subject }}", "sender": "${{ inputs.sender }}",
            "attachment_1": "${{ inputs.attachment_1 }}"}}],
        "outputs": {"size": "${{ steps.read.output.size }}", "subject": "${{ steps.read.output.subject }}"}}})
    assert saved.status_code == 201, saved.text
    address = f"flow-{unique}@example.com"
    trigger = _trigger(admin, workflow=flow, aliases=[address])
    assert trigger["workflow"] == flow and trigger["tool"] is None and trigger["target_kind"] == "workflow"
    send(mail_server, message(address, subject="to a workflow", attachment=b"x" * 1000))
    run_id = _eventually(lambda: (r := _records(admin, trigger["id"])) and r[0]["run_id"], what="the record")
    done = admin.get(f"/runs/{run_id}/wait", params={"timeout": 30}).json()
    assert done["type"] == "workflow" and done["status"] == "succeeded", done
    assert done["output"] == {"size": 1000, "subject": "to a workflow"}
    assert done["trigger"] == "email" and done["triggered_by"] == "boss@example.com"


def test_a_50_mb_attachment_is_refused_while_it_streams(mail_server: Server, admin: httpx.Client,
                                                        unique: str) -> None:
    """Over the node's limit (25 MB by default): refused at MAIL FROM when the size is
    declared, and cut off while DATA streams when it is not; recorded either way, no run."""
    tool = f"mail50-{unique}"
    deploy(admin, tool, TOOL)
    address = f"fifty-{unique}@example.com"
    _trigger(admin, tool=tool, aliases=[address])
    big = message(address, attachment=b"\0" * (50 * 1024 * 1024))
    with pytest.raises(smtplib.SMTPSenderRefused) as declared:
        send(mail_server, big)  # smtplib declares SIZE= since the server offers it
    assert declared.value.smtp_code == 552
    raw = big.as_bytes()
    with smtplib.SMTP("127.0.0.1", smtp_port(mail_server), timeout=60) as smtp:
        smtp.ehlo()
        assert smtp.mail("boss@example.com")[0] == 250  # no SIZE: the server counts as DATA streams
        assert smtp.rcpt(address)[0] == 250
        code, _ = smtp.data(raw)
    assert code == 552
    records = _eventually(lambda: [r for r in admin.get("/email-records", params={"limit": 1000}).json()["items"]
                                   if r["status"] == "rejected" and r["size"] and r["size"] > 25 * 1024 * 1024
                                   and address in (r.get("recipients") or [])], what="the record")
    assert records[0]["reason"] == "too_large", records
    assert _runs(admin, tool) == []
