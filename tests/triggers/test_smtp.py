"""The SMTP listener, driven by real SMTP over loopback with the standard library's smtplib."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from runyard.triggers.email import ReceivedEmail, sender_allowed
from runyard.triggers.smtp import EmailListener, EmailRecord, RejectMessage

ALIASES = {"invoices@runyard.test", "support@runyard.test"}
MB = 1024 * 1024


class Inbox:
    def __init__(self) -> None:
        self.messages: list[ReceivedEmail] = []
        self.records: list[EmailRecord] = []
        self.lock = threading.Lock()

    def on_message(self, email: ReceivedEmail) -> None:
        if "support@runyard.test" in email.recipients and not sender_allowed(email.sender, ["@example.com"]):
            raise RejectMessage("sender_not_allowed", "sender not on the allow-list")
        with self.lock:
            self.messages.append(email)

    def on_record(self, record: EmailRecord) -> None:
        with self.lock:
            self.records.append(record)

    def wait_for(self, predicate: Callable[[EmailRecord], bool], timeout: float = 5.0) -> EmailRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for record in self.records:
                    if predicate(record):
                        return record
            time.sleep(0.01)
        raise AssertionError(f"no such record in {self.records}")


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def listener(inbox: Inbox) -> Iterator[EmailListener]:
    server = EmailListener(
        port=0,
        resolve_recipient=lambda address: address.lower() in ALIASES,
        on_message=inbox.on_message,
        on_record=inbox.on_record,
        max_message_bytes=1 * MB,
        max_connections=4,
        max_connections_per_ip=3,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def invoice(to: str = "invoices@runyard.test", sender: str = "alice@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = to
    msg["Subject"] = "Invoice 42"
    msg["Message-ID"] = "<42@example.com>"
    msg.set_content("Invoice attached.\n")
    msg.add_alternative("<p>Invoice attached.</p>\n", subtype="html")
    msg.add_attachment(b"%PDF-1.7\n" + bytes(range(256)), maintype="application", subtype="pdf",
                       filename="../../invoice 42.pdf")
    return msg


def test_binds_loopback_by_default() -> None:
    server = EmailListener(resolve_recipient=lambda a: False, on_message=lambda e: None)
    assert server.host == "127.0.0.1"


def test_accepted_mail_reaches_on_message_with_its_attachment(listener: EmailListener, inbox: Inbox) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        assert client.send_message(invoice()) == {}
    record = inbox.wait_for(lambda r: r.status == "accepted")
    assert record.recipients == ("invoices@runyard.test",) and record.sender == "alice@example.com"
    assert record.subject == "Invoice 42" and record.message_id == "<42@example.com>" and record.size > 0
    assert record.peer is not None and record.peer.startswith("127.0.0.1:")
    [email] = inbox.messages
    assert email.subject == "Invoice 42"
    assert email.text == "Invoice attached.\n" and email.html == "<p>Invoice attached.</p>\n"
    assert email.sender == "alice@example.com" and email.envelope_sender == "alice@example.com"
    assert email.recipients == ("invoices@runyard.test",)
    [attachment] = email.attachments
    assert attachment.filename == "invoice 42.pdf" and attachment.content_type == "application/pdf"
    assert attachment.data == b"%PDF-1.7\n" + bytes(range(256))


def test_unknown_recipient_is_refused_at_rcpt(listener: EmailListener, inbox: Inbox) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            client.send_message(invoice(to="nobody@runyard.test"))
        assert err.value.recipients["nobody@runyard.test"][0] == 550
        # refused at RCPT: DATA is never reached, so nothing was parsed or delivered
        client.mail("alice@example.com")
        assert client.rcpt("nobody@runyard.test")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as data_err:
            client.data(b"Subject: x\r\n\r\nx\r\n")
        assert data_err.value.smtp_code == 503
    record = inbox.wait_for(lambda r: r.reason == "recipient_rejected")
    assert record.status == "rejected" and record.recipients == ("nobody@runyard.test",)
    assert inbox.messages == []


def test_relay_to_an_outside_domain_is_refused(listener: EmailListener, inbox: Inbox) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            client.sendmail("spammer@example.net", ["victim@gmail.com"], invoice(to="victim@gmail.com").as_bytes())
        code, text = err.value.recipients["victim@gmail.com"]
        assert code == 550 and b"relay" in text
        # a mixed envelope: only our own alias gets the message
        refused = client.sendmail(
            "alice@example.com", ["victim@gmail.com", "invoices@runyard.test"], invoice().as_bytes()
        )
        assert set(refused) == {"victim@gmail.com"}
    inbox.wait_for(lambda r: r.status == "accepted")
    assert [m.recipients for m in inbox.messages] == [("invoices@runyard.test",)]
    inbox.wait_for(lambda r: r.reason == "recipient_rejected" and r.recipients == ("victim@gmail.com",))


def big_message(size: int) -> bytes:
    msg = invoice()
    msg.add_attachment(b"\x00" * size, maintype="application", subtype="octet-stream", filename="big.bin")
    return msg.as_bytes()


def test_oversized_data_is_refused_while_streaming_and_recorded(listener: EmailListener, inbox: Inbox) -> None:
    data = big_message(2 * MB)
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.helo("client.test")  # plain SMTP: no SIZE declared, so the limit is met during DATA
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("alice@example.com", ["invoices@runyard.test"], data)
        assert err.value.smtp_code == 552
        assert client.noop()[0] == 250  # the session survives, ready for the next message
        assert client.sendmail("alice@example.com", ["invoices@runyard.test"], invoice().as_bytes()) == {}
    record = inbox.wait_for(lambda r: r.reason == "too_large")
    assert record.status == "rejected" and record.size > MB and record.recipients == ("invoices@runyard.test",)
    assert record.sender == "alice@example.com"
    inbox.wait_for(lambda r: r.status == "accepted")
    assert len(inbox.messages) == 1


def test_declared_size_over_the_limit_is_refused_at_mail_from(listener: EmailListener, inbox: Inbox) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("size") and int(client.esmtp_features["size"]) == MB
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            client.sendmail("alice@example.com", ["invoices@runyard.test"], big_message(2 * MB))
        assert err.value.smtp_code == 552
    record = inbox.wait_for(lambda r: r.reason == "too_large")
    assert record.sender == "alice@example.com" and record.size > MB


def test_one_endless_line_is_counted_not_buffered(listener: EmailListener, inbox: Inbox) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def command(line: bytes) -> bytes:
            sock.sendall(line + b"\r\n")
            return reader.readline()

        assert reader.readline().startswith(b"220")
        assert command(b"HELO client.test").startswith(b"250")
        assert command(b"MAIL FROM:<alice@example.com>").startswith(b"250")
        assert command(b"RCPT TO:<invoices@runyard.test>").startswith(b"250")
        assert command(b"DATA").startswith(b"354")
        chunk = b"x" * 65536
        for _ in range(48):  # 3 MB without a single line break
            sock.sendall(chunk)
        assert command(b"\r\n.").startswith(b"552")
        assert command(b"QUIT").startswith(b"221")
    inbox.wait_for(lambda r: r.reason == "too_large" and r.size >= 3 * MB)


def test_on_message_may_reject_and_malformed_mail_is_refused(listener: EmailListener, inbox: Inbox) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.send_message(invoice(to="support@runyard.test", sender="eve@elsewhere.net"))
        assert err.value.smtp_code == 550
        broken = b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("a@example.com", ["invoices@runyard.test"], broken)
        assert err.value.smtp_code == 550 and b"malformed" in err.value.smtp_error
    inbox.wait_for(lambda r: r.reason == "sender_not_allowed")
    inbox.wait_for(lambda r: r.reason == "malformed_mime")
    assert inbox.messages == []


def test_connection_limits(listener: EmailListener) -> None:
    clients = [smtplib.SMTP("127.0.0.1", listener.port, timeout=10) for _ in range(3)]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as err:  # 4th from the same IP: per-IP limit of 3
            smtplib.SMTP("127.0.0.1", listener.port, timeout=10)
        assert err.value.smtp_code == 421
    finally:
        for client in clients:
            client.quit()
    deadline = time.monotonic() + 5
    while listener.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.active_connections == 0
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:  # slots are given back
        assert client.noop()[0] == 250


def test_global_connection_limit(inbox: Inbox) -> None:
    server = EmailListener(port=0, resolve_recipient=lambda a: True, on_message=inbox.on_message,
                           max_connections=2, max_connections_per_ip=10)
    with server:
        clients = [smtplib.SMTP("127.0.0.1", server.port, timeout=10) for _ in range(2)]
        with pytest.raises(smtplib.SMTPConnectError):
            smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        for client in clients:
            client.quit()


def test_stop_closes_the_port_and_open_sessions(inbox: Inbox) -> None:
    server = EmailListener(port=0, resolve_recipient=lambda a: True, on_message=inbox.on_message)
    server.start()
    port = server.port
    idle = smtplib.SMTP("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5 and not server.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        idle.noop()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_port_in_use_fails_start(listener: EmailListener, inbox: Inbox) -> None:
    clash = EmailListener(port=listener.port, resolve_recipient=lambda a: True, on_message=inbox.on_message)
    with pytest.raises(OSError):
        clash.start()
    assert not clash.running
