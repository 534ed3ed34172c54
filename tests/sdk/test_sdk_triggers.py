"""``client.schedules``, ``client.webhooks`` and ``client.email_triggers`` against a real server:
create, list (across pages), get, update, delete; the next times of a schedule; the server's
error codes as the SDK's exceptions; records of real mail sent to an SMTP listener; the async
client; and a ``workflow`` target passed through as given."""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from runyard import AsyncClient, Client, ConflictError, NotFoundError, ValidationError
from runyard.sdk.models import EmailRecord, Schedule, Webhook
from tests.support.servers import PgDatabase, Server, free_port

YEARLY = "0 9 1 1 *"  # never fires while a test runs


# ---- schedules -----------------------------------------------------------------------------


def test_schedule_lifecycle(client: Client, add_tool: str) -> None:
    s = client.schedules.create(add_tool, inputs={"a": 1}, cron=YEARLY, timezone="Europe/Paris", overlap="queue",
                                max_catch_up=3)
    assert isinstance(s, Schedule) and s.id.startswith("sch_")
    assert (s.tool, s.target_kind, s.target_name) == (add_tool, "tool", add_tool)
    assert (s.cron, s.timezone, s.interval_s, s.overlap, s.max_catch_up) == (YEARLY, "Europe/Paris", None, "queue", 3)
    assert s.enabled and s.inputs == {"a": 1} and s.user_id
    assert isinstance(s.next_fire_at, datetime) and s.next_fire_at.month == 1 and s.next_fire_at.hour == 8  # 9:00 CET

    assert client.schedules.get(s.id) == s
    assert client.schedules.get(s) == s  # a model works as the id

    times = client.schedules.next_times(s.id, count=3)
    assert times.schedule_id == s.id and times.enabled is True
    assert [t.year for t in times.times] == [times.times[0].year + i for i in range(3)]
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in times.times)  # type: ignore[union-attr]
    assert len(client.schedules.next_times(s.id).times) == 5  # the default

    # an interval replaces the cron; switching off clears next_fire_at
    changed = client.schedules.update(s.id, interval_s=3600, enabled=False, inputs={"a": 2, "b": 5})
    assert (changed.cron, changed.interval_s, changed.enabled, changed.next_fire_at) == (None, 3600, False, None)
    assert changed.inputs == {"a": 2, "b": 5} and changed.overlap == "queue"  # untouched fields stay
    gaps = client.schedules.next_times(s.id, 2).times
    assert (gaps[1] - gaps[0]).total_seconds() == 3600
    assert client.schedules.update(s.id, overlap="cancel_previous").overlap == "cancel_previous"

    client.schedules.delete(s.id)
    with pytest.raises(NotFoundError) as gone:
        client.schedules.get(s.id)
    assert gone.value.code == "schedule_not_found" and gone.value.status == 404
    with pytest.raises(NotFoundError):
        client.schedules.delete(s.id)
    with pytest.raises(NotFoundError):
        client.schedules.next_times(s.id)


def test_schedule_errors_carry_the_servers_codes(client: Client, add_tool: str, unique: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron": "not a cron"}, "invalid_cron"),
        ({"cron": "0 0 31 2 *"}, "invalid_cron"),  # never fires
        ({"cron": YEARLY, "timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"interval_s": 0.01}, "interval_too_short"),
        ({}, "invalid_schedule"),
        ({"cron": YEARLY, "interval_s": 60}, "invalid_schedule"),
        ({"cron": YEARLY, "inputs": {"nope": 1}}, "invalid_inputs"),
    ]
    for fields, code in cases:
        with pytest.raises(ValidationError) as refused:
            client.schedules.create(add_tool, **fields)
        assert refused.value.code == code, (fields, refused.value)
        assert refused.value.status == 400
    with pytest.raises(ValidationError) as no_tool:
        client.schedules.create(f"missing-{unique}", cron=YEARLY)
    assert no_tool.value.code == "invalid_target"
    s = client.schedules.create(add_tool, cron=YEARLY, inputs={"a": 1})
    try:
        with pytest.raises(ValidationError) as bad_patch:
            client.schedules.update(s.id, cron="61 * * * *")
        assert bad_patch.value.code == "invalid_cron"
        with pytest.raises(ValidationError):
            client.schedules.next_times(s.id, count=0)
        assert client.schedules.get(s.id).cron == YEARLY  # the refused change changed nothing
    finally:
        client.schedules.delete(s.id)
    with pytest.raises(NotFoundError) as unknown:
        client.schedules.update("sch_unknown", enabled=False)
    assert unknown.value.code == "schedule_not_found"


def test_schedule_list_walks_every_page(client: Client, add_tool: str) -> None:
    made = [client.schedules.create(add_tool, cron=YEARLY, inputs={"a": i}, enabled=False) for i in range(5)]
    try:
        page = client.schedules.list(limit=2)
        assert len(page.items) == 2 and page.has_next_page()
        ids = [s.id for s in page]  # iterating follows the cursors
        assert {m.id for m in made} <= set(ids)
        assert len(ids) == len(set(ids))
        ours = [i for i in ids if i in {m.id for m in made}]
        assert ours == [m.id for m in reversed(made)]  # newest first
    finally:
        for m in made:
            client.schedules.delete(m.id)


# ---- webhooks ------------------------------------------------------------------------------


def test_webhook_lifecycle_and_its_url(client: Client, add_tool: str, unique: str) -> None:
    w = client.webhooks.create(add_tool, rate_per_s=5, burst=7)
    assert isinstance(w, Webhook) and w.id.startswith("whk_")
    assert w.url and "/hooks/rwh_" in w.url and w.signature is None
    assert (w.tool, w.rate_per_s, w.burst, w.enabled) == (add_tool, 5, 7, True)
    # the URL works, and is never shown again
    called = httpx.post(w.url, json={"a": 40}, params={"wait": 30}, timeout=60)
    assert called.status_code == 200 and called.json()["run"]["output"] == 42, called.text
    again = client.webhooks.get(w.id)
    assert again.url is None and again.last_used_at is not None
    assert w.id in [h.id for h in client.webhooks.list(limit=1)]

    signed = client.webhooks.update(w.id, signature={"secret": "s3cret", "header": "X-Sig", "format": "hex"},
                                    burst=9)
    assert signed.signature is not None
    assert (signed.signature.header, signed.signature.format, signed.signature.algorithm) == ("X-Sig", "hex", "sha256")
    assert signed.burst == 9 and signed.rate_per_s == 5
    assert "secret" not in json.dumps(signed.to_dict())
    unsigned_call = httpx.post(w.url, json={"a": 1}, timeout=30)
    assert unsigned_call.status_code == 401 and unsigned_call.json()["error"]["code"] == "missing_signature"
    assert client.webhooks.update(w.id, remove_signature=True).signature is None
    assert client.webhooks.update(w.id, enabled=False).enabled is False
    with pytest.raises(ValueError):
        client.webhooks.update(w.id, signature={"secret": "x"}, remove_signature=True)

    with pytest.raises(ValidationError) as bad:
        client.webhooks.create(add_tool, signature={"secret": "s", "header": "Bad Header:"})
    assert bad.value.code == "invalid_signature_config"
    with pytest.raises(ValidationError) as schema:  # refused by the request's schema
        client.webhooks.create(add_tool, signature={"secret": "s", "algorithm": "md5"})
    assert schema.value.code == "validation_error" and "signature.algorithm" in str(schema.value)
    with pytest.raises(ValidationError) as missing:
        client.webhooks.create(f"missing-{unique}")
    assert missing.value.code == "invalid_target"

    client.webhooks.delete(w)
    with pytest.raises(NotFoundError) as gone:
        client.webhooks.get(w.id)
    assert gone.value.code == "webhook_not_found"
    assert httpx.post(w.url, json={"a": 1}, timeout=30).status_code == 404


# ---- email triggers ------------------------------------------------------------------------


def test_email_trigger_lifecycle_and_aliases(client: Client, add_tool: str, unique: str) -> None:
    first = f"In-{unique}@Example.com"
    t = client.email_triggers.create(add_tool, aliases=[first], allowed_senders=["@example.com"],
                                     max_message_bytes=4096)
    assert t.id.startswith("emt_") and t.aliases == [first.lower()]
    assert (t.tool, t.allowed_senders, t.max_message_bytes, t.enabled) == (add_tool, ["@example.com"], 4096, True)
    assert client.email_triggers.get(t.id) == t
    assert t.id in [x.id for x in client.email_triggers.list(limit=1)]

    second = client.email_triggers.create_alias(t, f"second-{unique}@example.com")
    assert second.id.startswith("ema_") and second.trigger_id == t.id
    with pytest.raises(ConflictError) as taken:
        client.email_triggers.create_alias(t.id, first.upper())
    assert taken.value.code == "alias_taken"
    with pytest.raises(ValidationError) as bad_alias:
        client.email_triggers.create_alias(t.id, "no-domain")
    assert bad_alias.value.code == "invalid_alias"
    renamed = client.email_triggers.update_alias(t.id, second, f"third-{unique}@example.com")
    assert renamed.id == second.id and renamed.address == f"third-{unique}@example.com"
    listed = list(client.email_triggers.list_aliases(t.id, limit=1))  # one per page: the cursor is followed
    assert {a.address for a in listed} == {first.lower(), renamed.address} and len(listed) == 2
    client.email_triggers.delete_alias(t.id, second.id)
    assert client.email_triggers.get(t.id).aliases == [first.lower()]
    with pytest.raises(NotFoundError):
        client.email_triggers.delete_alias(t.id, second.id)

    changed = client.email_triggers.update(t.id, allowed_senders=[], enabled=False)
    assert changed.allowed_senders == [] and changed.enabled is False and changed.max_message_bytes == 4096
    with pytest.raises(ValidationError) as bad_sender:
        client.email_triggers.update(t.id, allowed_senders=["nobody"])
    assert bad_sender.value.code == "invalid_sender_pattern"
    assert list(client.email_triggers.records(t.id)) == []

    client.email_triggers.delete(t.id)
    with pytest.raises(NotFoundError) as gone:
        client.email_triggers.get(t.id)
    assert gone.value.code == "email_trigger_not_found"
    with pytest.raises(NotFoundError):
        list(client.email_triggers.records(t.id))


@pytest.fixture(scope="module")
def mail_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"runyard-sdk-smtp-{backend}"),
                 database_url=pg.url if pg else None, extra_env={"RUNYARD_SMTP_PORT": str(free_port())})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


def _send(server: Server, to: str, sender: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", int(server.extra_env["RUNYARD_SMTP_PORT"]), timeout=30) as smtp:
        smtp.send_message(msg)


def test_email_records_of_real_mail(mail_server: Server, unique: str) -> None:
    with Client(api_key=mail_server.admin_key, base_url=mail_server.base_url, timeout=30) as c:
        c.tools.deploy("def main(subject: str = '', **rest):\n    return subject\n", name=f"mail-{unique}")
        address = f"box-{unique}@example.com"
        t = c.email_triggers.create(f"mail-{unique}", aliases=[address], allowed_senders=["boss@example.com"])
        with pytest.raises(smtplib.SMTPDataError):  # not on the allow-list: refused, and recorded
            _send(mail_server, address, "stranger@elsewhere.org", f"spam {unique}")
        _send(mail_server, address, "boss@example.com", f"hi {unique}")
        deadline = time.monotonic() + 20
        while len(records := list(c.email_triggers.records(t.id))) < 2:
            assert time.monotonic() < deadline, records
            time.sleep(0.1)
        accepted, rejected = records  # newest first
        assert isinstance(accepted, EmailRecord) and accepted.trigger_id == t.id
        assert (accepted.status, accepted.subject, accepted.sender) == ("accepted", f"hi {unique}", "boss@example.com")
        assert accepted.run_id and c.runs.wait(accepted.run_id, timeout=30).output == f"hi {unique}"
        assert (rejected.status, rejected.reason, rejected.run_id) == ("rejected", "sender_not_allowed", None)
        assert rejected.received_at is not None and rejected.size and rejected.recipients == [address]
        every = {r.id for r in c.email_triggers.all_records(limit=1)}
        assert {accepted.id, rejected.id} <= every


# ---- the async client ----------------------------------------------------------------------


def test_async_triggers(server: Any, add_tool: str) -> None:
    async def go() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as c:
            s = await c.schedules.create(add_tool, cron=YEARLY, inputs={"a": 1})
            assert (await c.schedules.get(s.id)).cron == YEARLY
            assert s.id in [x.id async for x in c.schedules.list(limit=1)]
            first_page = await c.schedules.list(limit=1)
            assert len(first_page.items) == 1
            assert len((await c.schedules.next_times(s.id, 2)).times) == 2
            assert (await c.schedules.update(s.id, enabled=False)).enabled is False
            with pytest.raises(ValidationError) as bad:
                await c.schedules.update(s.id, timezone="Nowhere/Land")
            assert bad.value.code == "invalid_timezone"
            await c.schedules.delete(s.id)
            with pytest.raises(NotFoundError):
                await c.schedules.get(s.id)

            w = await c.webhooks.create(add_tool)
            assert w.url and (await c.webhooks.get(w.id)).url is None
            assert w.id in [x.id async for x in c.webhooks.list()]
            await c.webhooks.delete(w.id)

            t = await c.email_triggers.create(add_tool)
            alias = await c.email_triggers.create_alias(t.id, f"a-{t.id.lower()}@example.com")
            assert [a.id async for a in c.email_triggers.list_aliases(t.id)] == [alias.id]
            assert [r async for r in c.email_triggers.records(t.id)] == []
            await c.email_triggers.delete(t.id)

    asyncio.run(go())


# ---- what the SDK sends --------------------------------------------------------------------


def test_workflow_targets_and_fields_pass_through_as_given() -> None:
    sent: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent.append((request.method, request.url.path, body))
        return httpx.Response(201, json={"id": "x_1", "status": "accepted", "address": "a@b.c"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with Client(api_key="k", base_url="http://runyard.test", http_client=http, max_retries=0) as c:
        c.schedules.create(workflow="nightly", interval_s=60)
        c.webhooks.create(workflow="nightly")
        c.email_triggers.create(workflow="nightly", aliases=["a@b.c"])
        c.schedules.update("sch_1", workflow="other")
        c.webhooks.update("whk_1", remove_signature=True)
        c.email_triggers.update("emt_1", allowed_senders=[])
    assert sent == [
        ("POST", "/api/v1/schedules", {"workflow": "nightly", "interval_s": 60}),
        ("POST", "/api/v1/webhooks", {"workflow": "nightly"}),
        ("POST", "/api/v1/email-triggers", {"workflow": "nightly", "aliases": ["a@b.c"]}),
        ("PATCH", "/api/v1/schedules/sch_1", {"workflow": "other"}),
        ("PATCH", "/api/v1/webhooks/whk_1", {"signature": None}),
        ("PATCH", "/api/v1/email-triggers/emt_1", {"allowed_senders": []}),
    ]
