"""Received email → inputs: bodies, sender, attachments with hostile names, MIME limits,
malformed input, sender allow-lists."""

from __future__ import annotations

import random
from email.message import EmailMessage

import pytest

from runyard.triggers.email import (
    EmailError,
    EmailLimits,
    check_allow_pattern,
    parse_email,
    sanitize_filename,
    sender_allowed,
    unique_filenames,
)


def invoice_mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = '"Alice Example" <Alice@Example.COM>'
    msg["To"] = "invoices@runyard.test, other@runyard.test"
    msg["Cc"] = "boss@example.com"
    msg["Subject"] = "Invoice März =?"
    msg["Message-ID"] = "<inv-42@example.com>"
    msg["Reply-To"] = "billing@example.com"
    msg["X-Secret-Internal"] = "not kept"
    msg.set_content("Please find the invoice attached.\n")
    msg.add_alternative("<p>Please find the <b>invoice</b> attached.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.7 invoice", maintype="application", subtype="pdf", filename="../../etc/passwd")
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="con.txt")
    return msg


def test_text_html_sender_headers_and_two_hostile_attachments() -> None:
    email = parse_email(invoice_mail().as_bytes())
    assert email.subject == "Invoice März =?"
    assert email.text == "Please find the invoice attached.\n"
    assert email.html is not None and "<b>invoice</b>" in email.html
    assert email.sender == "Alice@example.com" and email.sender_name == "Alice Example"
    assert email.recipients == ("invoices@runyard.test", "other@runyard.test", "boss@example.com")
    assert email.message_id == "<inv-42@example.com>"
    assert email.headers["reply-to"] == "billing@example.com"
    assert "x-secret-internal" not in email.headers
    assert [(a.filename, a.content_type, a.data) for a in email.attachments] == [
        ("passwd", "application/pdf", b"%PDF-1.7 invoice"),
        ("_con.txt", "text/csv", b"a,b\n1,2\n"),
    ]
    inputs = email.as_inputs()
    assert inputs["attachments"] == [
        {"filename": "passwd", "content_type": "application/pdf", "size": 16},
        {"filename": "_con.txt", "content_type": "text/csv", "size": 8},
    ]
    with_envelope = parse_email(invoice_mail().as_bytes(), envelope_sender="bounce@example.com",
                                envelope_recipients=["invoices@runyard.test"])
    assert with_envelope.recipients == ("invoices@runyard.test",)
    assert with_envelope.envelope_sender == "bounce@example.com"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system32\\cmd.exe", "cmd.exe"),
        ("con.txt", "_con.txt"),
        ("LPT1", "_LPT1"),
        ("aux.tar.gz", "_aux.tar.gz"),
        ("invoice\x00\x07\n.pdf", "invoice.pdf"),
        ("report\u202egpj.exe", "reportgpj.exe"),  # a bidi override would show it as "exe.jpg"
        ('what?<is>:this|"*.txt', "what__is__this___.txt"),
        ("...", "attachment.bin"),
        ("  .bashrc  ", "bashrc"),
        ("trailing. . ", "trailing"),
        ("", "attachment.bin"),
        (None, "attachment.bin"),
    ],
)
def test_sanitize_filename(name: str | None, expected: str) -> None:
    assert sanitize_filename(name) == expected


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = sanitize_filename("x" * 5000 + ".pdf")
    assert len(name) == 120 and name.endswith(".pdf")
    wide = sanitize_filename("€" * 200 + ".xlsx")  # 3 bytes each in UTF-8
    assert wide.endswith(".xlsx") and len(wide.encode()) <= 240
    assert sanitize_filename(None, content_type="application/pdf") == "attachment.pdf"


def test_colliding_names_are_made_unique() -> None:
    names = ["a.pdf", "A.pdf", "a.pdf", "a-2.pdf", "b"]
    assert unique_filenames(names) == ["a.pdf", "A-3.pdf", "a-4.pdf", "a-2.pdf", "b"]
    long = ["y" * 120, "y" * 120]
    out = unique_filenames(long)
    assert out[1].endswith("-2") and len(out[1]) <= 120 and out[0] != out[1]


def test_attachment_names_from_mail_are_sanitised_and_unique() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg.set_content("x")
    for name in ["../../etc/passwd", "/etc/passwd", "z" * 400 + ".csv"]:
        msg.add_attachment(b"data", maintype="application", subtype="octet-stream", filename=name)
    names = [a.filename for a in parse_email(msg.as_bytes()).attachments]
    assert names[:2] == ["passwd", "passwd-2"]
    assert len(names[2]) == 120 and names[2].endswith(".csv")


def nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for level in range(depth):
        boundary = b"b%d" % level
        body = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--' + boundary + b"\r\n"
            + body + b"\r\n--" + boundary + b"--\r\n"
        )
    return b"From: a@example.com\r\nSubject: deep\r\n" + body


def test_nesting_depth_limit() -> None:
    assert parse_email(nested(10)).text == "leaf\n"
    for depth in (11, 50, 5000):
        with pytest.raises(EmailError) as err:
            parse_email(nested(depth))
        assert err.value.code == "too_deep"
    assert parse_email(nested(4), limits=EmailLimits(max_depth=4)).text == "leaf\n"
    with pytest.raises(EmailError):
        parse_email(nested(5), limits=EmailLimits(max_depth=4))


def test_part_count_and_size_limits() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg.set_content("x")
    for i in range(30):
        msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"{i}.bin")
    with pytest.raises(EmailError) as err:
        parse_email(msg.as_bytes(), limits=EmailLimits(max_parts=20))
    assert err.value.code == "too_many_parts"
    with pytest.raises(EmailError) as err:
        parse_email(msg.as_bytes(), limits=EmailLimits(max_bytes=1024))
    assert err.value.code == "too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\nthe boundary never comes\r\n',
    ],
)
def test_malformed_mime_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(EmailError) as err:
        parse_email(raw)
    assert err.value.code == "malformed_mime"
    assert "malformed" in err.value.message


def test_odd_but_readable_mail_is_accepted() -> None:
    raw = (
        b"From: not an address\r\nSubject: =?unknown-charset?q?hi?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    )
    email = parse_email(raw)
    assert email.sender is None and isinstance(email.text, str)


def test_random_bytes_never_crash() -> None:
    rng = random.Random(16)
    base = invoice_mail().as_bytes()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randrange(len(data))])
        for sample in (bytes(data), cut):
            try:
                parse_email(sample)
            except EmailError:
                pass


def test_sender_allow_list_is_exact_or_domain() -> None:
    allow = ["boss@example.com", "@partner.org", "@*.corp.example"]
    assert sender_allowed("Boss@Example.com", allow)
    assert not sender_allowed("other@example.com", allow)
    assert sender_allowed("anyone@partner.org", allow)
    assert not sender_allowed("anyone@evilpartner.org", allow)
    assert not sender_allowed("anyone@partner.org.evil.com", allow)
    assert not sender_allowed("anyone@sub.partner.org", allow)  # @domain is that domain only
    assert sender_allowed("x@eu.corp.example", allow) and not sender_allowed("x@corp.example", allow)
    assert not sender_allowed(None, allow) and not sender_allowed("no-at-sign", allow)
    assert sender_allowed("anyone@anywhere.net", [])  # no list: no filtering
    for bad in ("example.com", "@", "a@b", "@nodot", "two words@x.org"):
        with pytest.raises(ValueError):
            check_allow_pattern(bad)
