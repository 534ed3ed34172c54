"""``runyard schedules``, ``runyard webhooks`` and ``runyard email-triggers`` against the shared
server: each command in table and --json modes, the server's error codes on stderr (and as the
envelope on stdout with --json), and the checks the CLI makes itself (exit code 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import Invoke, as_json

ADD = "def main(a: int, b: int = 2) -> int:\n    return a + b\n"
YEARLY = "0 9 1 1 *"


@pytest.fixture
def tool(cli: Invoke, tmp_path: Path, unique: str) -> str:
    name = f"trig-{unique}"
    f = tmp_path / "add.py"
    f.write_text(ADD)
    r = cli("deploy", str(f), "--name", name, "--json")
    assert r.exit_code == 0, r.output
    return name


def ok(cli: Invoke, *args: str, **kwargs: Any) -> Any:
    r = cli(*args, "--json", **kwargs)
    assert r.exit_code == 0, r.output
    return as_json(r)


def test_help_lists_the_trigger_groups(cli: Invoke) -> None:
    r = cli("--help")
    assert r.exit_code == 0
    for group in ("schedules", "webhooks", "email-triggers"):
        assert group in r.stdout


# ---- schedules -----------------------------------------------------------------------------


def test_schedules(cli: Invoke, tool: str) -> None:
    r = cli("schedules", "create", "--tool", tool, "--cron", YEARLY, "--timezone", "Europe/Paris", "-i", "a=1",
            "-i", "b=x", "--overlap", "queue")
    assert r.exit_code == 1  # b must be an int: the server's code on stderr
    assert "invalid_inputs" in r.stderr
    s = ok(cli, "schedules", "create", "--tool", tool, "--cron", YEARLY, "--timezone", "Europe/Paris",
           "-i", "a=1", "--overlap", "queue", "--max-catch-up", "2")
    assert (s["tool"], s["cron"], s["timezone"], s["inputs"], s["overlap"], s["max_catch_up"]) == (
        tool, YEARLY, "Europe/Paris", {"a": 1}, "queue", 2)
    sid = s["id"]
    try:
        r = cli("schedules", "list")
        assert r.exit_code == 0 and sid in r.stdout and f"{YEARLY} (Europe/Paris)" in r.stdout
        assert sid in [x["id"] for x in ok(cli, "schedules", "list", "--limit", "1000")]
        r = cli("schedules", "get", sid)
        assert r.exit_code == 0 and "Europe/Paris" in r.stdout and "queue" in r.stdout and '{"a": 1}' in r.stdout
        assert ok(cli, "schedules", "get", sid) == s

        r = cli("schedules", "next", sid, "--count", "3")
        assert r.exit_code == 0, r.output
        lines = r.stdout.split()
        assert len(lines) == 3 and all(line.endswith("T08:00:00Z") and "-01-01" in line for line in lines)
        times = ok(cli, "schedules", "next", sid)
        assert times["schedule_id"] == sid and len(times["times"]) == 5

        changed = ok(cli, "schedules", "update", sid, "--interval", "3600", "--disable", "--inputs", '{"a": 5}')
        assert (changed["cron"], changed["interval_s"], changed["enabled"], changed["inputs"]) == (
            None, 3600, False, {"a": 5})
        r = cli("schedules", "next", sid, "-n", "1")
        assert r.exit_code == 0 and "disabled" in r.stderr
        r = cli("schedules", "update", sid, "--enable")
        assert r.exit_code == 0 and "every 3600s" in r.stderr and "enabled" in r.stderr
        r = cli("schedules", "update", sid, "--cron", "not a cron", "--json")
        assert r.exit_code == 1 and as_json(r)["error"]["code"] == "invalid_cron" and "invalid_cron" in r.stderr
    finally:
        r = cli("schedules", "delete", sid)
        assert r.exit_code == 0 and "Deleted" in r.stderr
    r = cli("schedules", "get", sid, "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "schedule_not_found"
    assert "schedule_not_found" in r.stderr


def test_schedule_errors(cli: Invoke, tool: str) -> None:
    for args, code in [
        (("--cron", "*/5 * * *"), "invalid_cron"),
        (("--cron", YEARLY, "--timezone", "Mars/Base"), "invalid_timezone"),
        (("--interval", "0.1"), "interval_too_short"),
        ((), "invalid_schedule"),
    ]:
        r = cli("schedules", "create", "--tool", tool, *args, "--json")
        assert r.exit_code == 1 and as_json(r)["error"]["code"] == code, (args, r.output)
    # the CLI's own checks: usage errors, nothing sent
    r = cli("schedules", "create", "--cron", YEARLY)
    assert r.exit_code == 2 and "--tool" in r.output
    r = cli("schedules", "create", "--tool", tool, "--cron", YEARLY, "--overlap", "sometimes")
    assert r.exit_code == 2 and "--overlap" in r.output
    r = cli("schedules", "create", "--tool", tool, "--cron", YEARLY, "-i", "a=@/etc/hostname")
    assert r.exit_code == 2 and "not files" in r.output
    r = cli("schedules", "next", "sch_nope", "--count", "0")
    assert r.exit_code == 2


def test_disabled_interval_schedule_table_output(cli: Invoke, tool: str) -> None:
    r = cli("schedules", "create", "--tool", tool, "--interval", "60", "--disabled", "-i", "a=2",
            "--overlap", "cancel_previous")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and "every 60s (disabled)" in r.stderr
    sid = r.stderr.split("Created schedule ")[1].split()[0]
    s = ok(cli, "schedules", "get", sid)
    assert (s["enabled"], s["next_fire_at"], s["overlap"], s["interval_s"]) == (False, None, "cancel_previous", 60)
    assert ok(cli, "schedules", "delete", sid) == {"deleted": sid}


# ---- webhooks ------------------------------------------------------------------------------


def test_webhooks(cli: Invoke, tool: str) -> None:
    r = cli("webhooks", "create", "--tool", tool, "--signature-header", "X-Sig",
            "--signature-secret-env", "HOOK_SECRET", "--signature-format", "hex", "--rate", "5", "--burst", "6",
            env={"HOOK_SECRET": "s3cret"})
    assert r.exit_code == 0, r.output
    url = r.stdout.strip()
    assert "/hooks/rwh_" in url and "\n" not in url
    assert "will not be shown again" in r.stderr and "X-Sig" in r.stderr
    wid = r.stderr.split("Webhook ")[1].split()[0]
    try:
        unsigned = httpx.post(url, json={"a": 1}, timeout=30)
        assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "missing_signature"

        w = ok(cli, "webhooks", "get", wid)
        assert "url" not in w or w["url"] is None
        assert w["signature"]["header"] == "X-Sig" and w["signature"]["format"] == "hex" and w["burst"] == 6
        r = cli("webhooks", "get", wid)
        assert r.exit_code == 0 and "X-Sig: sha256 hex" in r.stdout and "5/s, burst 6" in r.stdout
        assert url not in r.stdout
        r = cli("webhooks", "list")
        assert r.exit_code == 0 and wid in r.stdout and url not in r.stdout
        assert wid in [x["id"] for x in ok(cli, "webhooks", "list", "--limit", "1000")]

        changed = ok(cli, "webhooks", "update", wid, "--no-signature", "--rate", "2")
        assert changed["signature"] is None and changed["rate_per_s"] == 2 and changed["burst"] == 6
        called = httpx.post(url, json={"a": 40}, params={"wait": 30}, timeout=60)
        assert called.status_code == 200 and called.json()["run"]["output"] == 42, called.text
        r = cli("webhooks", "update", wid, "--disable")
        assert r.exit_code == 0 and "disabled" in r.stderr and "signature none" in r.stderr
        assert httpx.post(url, json={"a": 1}, timeout=30).status_code == 404
    finally:
        assert ok(cli, "webhooks", "delete", wid) == {"deleted": wid}
    r = cli("webhooks", "get", wid, "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "webhook_not_found"


def test_webhook_create_json_and_errors(cli: Invoke, tool: str, unique: str) -> None:
    created = ok(cli, "webhooks", "create", "--tool", tool, "--disabled")
    assert created["url"] and created["enabled"] is False
    ok(cli, "webhooks", "delete", created["id"])
    r = cli("webhooks", "create", "--tool", f"missing-{unique}", "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "invalid_target"
    r = cli("webhooks", "create", "--tool", tool, "--signature-secret-env", "UNSET_VAR_FOR_TEST",
            env={"UNSET_VAR_FOR_TEST": None})
    assert r.exit_code == 2 and "UNSET_VAR_FOR_TEST" in r.output
    r = cli("webhooks", "create", "--tool", tool, "--signature-header", "X-Sig")
    assert r.exit_code == 2 and "--signature-secret-env" in r.output
    r = cli("webhooks", "create", "--tool", tool, "--signature-secret-env", "S", "--signature-header", "Bad Header:",
            "--json", env={"S": "x"})
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "invalid_signature_config"
    r = cli("webhooks", "create")
    assert r.exit_code == 2


# ---- email triggers ------------------------------------------------------------------------


def test_email_triggers(cli: Invoke, tool: str, unique: str) -> None:
    first, second = f"in-{unique}@example.com", f"Two-{unique}@Example.com"
    r = cli("email-triggers", "create", "--tool", tool, "--alias", first, "--allow-sender", "@example.com",
            "--allow-sender", "boss@corp.example", "--max-message-bytes", "4096")
    assert r.exit_code == 0, r.output
    assert first in r.stderr
    tid = r.stderr.split("Created email trigger ")[1].split()[0]
    try:
        t = ok(cli, "email-triggers", "get", tid)
        assert (t["aliases"], t["allowed_senders"], t["max_message_bytes"]) == (
            [first], ["@example.com", "boss@corp.example"], 4096)
        r = cli("email-triggers", "get", tid)
        assert r.exit_code == 0 and first in r.stdout and "boss@corp.example" in r.stdout
        r = cli("email-triggers", "list")
        assert r.exit_code == 0 and tid in r.stdout and first in r.stdout
        assert tid in [x["id"] for x in ok(cli, "email-triggers", "list", "--limit", "1000")]

        alias = ok(cli, "email-triggers", "add-alias", tid, second)
        assert alias["address"] == second.lower() and alias["trigger_id"] == tid
        r = cli("email-triggers", "add-alias", tid, first.upper(), "--json")
        assert r.exit_code == 1 and as_json(r)["error"]["code"] == "alias_taken"
        r = cli("email-triggers", "add-alias", tid, "nodomain")
        assert r.exit_code == 1 and "invalid_alias" in r.stderr
        r = cli("email-triggers", "aliases", tid)
        assert r.exit_code == 0 and alias["id"] in r.stdout and first in r.stdout
        assert {a["address"] for a in ok(cli, "email-triggers", "aliases", tid)} == {first, second.lower()}
        # by id, or by address (any case)
        assert ok(cli, "email-triggers", "remove-alias", tid, alias["id"])["deleted"] == alias["id"]
        first_id = ok(cli, "email-triggers", "aliases", tid)[0]["id"]
        r = cli("email-triggers", "remove-alias", tid, first.upper())
        assert r.exit_code == 0 and "Removed alias" in r.stderr
        assert ok(cli, "email-triggers", "get", tid)["aliases"] == []
        r = cli("email-triggers", "remove-alias", tid, first, "--json")
        assert r.exit_code == 1 and "has no alias" in r.stderr
        r = cli("email-triggers", "remove-alias", tid, first_id, "--json")
        assert r.exit_code == 1 and as_json(r)["error"]["code"] == "email_alias_not_found"

        changed = ok(cli, "email-triggers", "update", tid, "--allow-everyone", "--disable")
        assert changed["allowed_senders"] == [] and changed["enabled"] is False
        changed = ok(cli, "email-triggers", "update", tid, "--allow-sender", "@x.example", "--enable")
        assert changed["allowed_senders"] == ["@x.example"] and changed["enabled"] is True
        r = cli("email-triggers", "update", tid, "--allow-sender", "nobody", "--json")
        assert r.exit_code == 1 and as_json(r)["error"]["code"] == "invalid_sender_pattern"
        r = cli("email-triggers", "update", tid, "--allow-sender", "@a.example", "--allow-everyone")
        assert r.exit_code == 2

        assert ok(cli, "email-triggers", "records", tid) == []
        r = cli("email-triggers", "records", tid)
        assert r.exit_code == 0 and "STATUS" in r.stdout and "TRIGGER" not in r.stdout
        r = cli("email-triggers", "records")
        assert r.exit_code == 0 and "TRIGGER" in r.stdout
        assert isinstance(ok(cli, "email-triggers", "records"), list)
    finally:
        assert ok(cli, "email-triggers", "delete", tid) == {"deleted": tid}
    r = cli("email-triggers", "get", tid, "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "email_trigger_not_found"
    r = cli("email-triggers", "records", tid)
    assert r.exit_code == 1 and "email_trigger_not_found" in r.stderr
    r = cli("email-triggers", "create", "--alias", first)
    assert r.exit_code == 2
