"""Received email → trigger inputs: parsing with limits, safe attachment names, sender filters.

:func:`parse_email` turns the raw bytes of a message into a :class:`ReceivedEmail` (subject,
text and HTML bodies, the ``From`` address, recipients, message id, selected headers and the
attachments with sanitised names) or raises :class:`EmailError` with a stable ``code``:
``too_large``, ``too_deep`` (MIME nesting), ``too_many_parts``, ``malformed_mime``. It never
raises anything else for any input bytes.

Sender allow-lists (:func:`sender_allowed`) are **filtering, not authentication**: the ``From``
header (and the SMTP envelope sender) is chosen by whoever sends the mail and is trivially
forged. They cut noise; they do not prove who sent a message.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

__all__ = [
    "DEFAULT_KEEP_HEADERS",
    "Attachment",
    "EmailError",
    "EmailLimits",
    "ReceivedEmail",
    "check_allow_pattern",
    "parse_email",
    "sanitize_filename",
    "sender_allowed",
    "unique_filenames",
]

DEFAULT_KEEP_HEADERS: tuple[str, ...] = (
    "date",
    "reply-to",
    "in-reply-to",
    "references",
    "to",
    "cc",
    "list-id",
    "auto-submitted",
    "precedence",
)
_MAX_HEADER_VALUE = 2000
_MAX_FILENAME_BYTES = 240  # below the common 255-byte file-system limit, UTF-8 encoded
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_FORBIDDEN_CHARS = re.compile(r'[<>:"|?*]')
# the parser notices these, but carries on with a guess; a guess is not what the tool was sent
_FATAL_DEFECTS = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)


class EmailError(ValueError):
    """A message refused; ``code``: ``too_large``, ``too_deep``, ``too_many_parts``,
    ``malformed_mime``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EmailLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_depth: int = 10  # multipart inside multipart inside ... (the top level is depth 0)
    max_parts: int = 200
    max_filename_chars: int = 120


@dataclass(frozen=True)
class Attachment:
    filename: str  # sanitised and unique within the message
    content_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ReceivedEmail:
    subject: str
    text: str | None
    html: str | None
    sender: str | None  # the From address (forgeable)
    sender_name: str
    envelope_sender: str | None  # SMTP MAIL FROM, when received over SMTP (forgeable too)
    recipients: tuple[str, ...]  # SMTP RCPT TO when known, else To + Cc
    message_id: str | None
    headers: dict[str, str]
    attachments: tuple[Attachment, ...]
    size: int

    def as_inputs(self) -> dict[str, Any]:
        """The JSON part of a run's inputs; the attachments' bytes travel as input files."""
        return {
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "recipients": list(self.recipients),
            "message_id": self.message_id,
            "headers": dict(self.headers),
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size} for a in self.attachments
            ],
        }


# -- file names -------------------------------------------------------------------------------


def _fit(stem: str, ext: str, max_chars: int) -> str:
    """Shorten the stem so stem+ext fits in characters and in UTF-8 bytes; the extension stays."""
    stem = stem[: max(1, max_chars - len(ext))]
    while stem and len((stem + ext).encode("utf-8")) > _MAX_FILENAME_BYTES:
        stem = stem[:-1]
    return (stem or "_") + ext


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16 or not ext.isalnum():
        return name, ""
    return stem, "." + ext


def sanitize_filename(
    name: str | None, *, content_type: str | None = None, max_chars: int = 120, fallback: str = "attachment"
) -> str:
    """A name safe to write into a run's input directory on any OS: the last path component
    only, no control/format characters (bidi overrides included), none of ``<>:"|?*``, no leading
    dots or trailing dots/spaces, Windows device names defused, at most ``max_chars``
    characters (and 240 UTF-8 bytes) keeping the extension. Empty results become ``fallback``
    plus an extension guessed from ``content_type``."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").split("/")[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _FORBIDDEN_CHARS.sub("_", text)
    text = " ".join(text.split())  # tabs, runs of spaces
    text = text.strip(" .")
    if not text:
        guessed = mimetypes.guess_extension((content_type or "").split(";")[0].strip().lower() or "x/none")
        text = fallback + (guessed or ".bin")
    if text.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        text = "_" + text
    stem, ext = _split_ext(text)
    if len(text) > max_chars or len(text.encode("utf-8")) > _MAX_FILENAME_BYTES:
        text = _fit(stem, ext, max_chars)
    return text


def unique_filenames(names: Sequence[str], *, max_chars: int = 120) -> list[str]:
    """De-duplicate (case-insensitively, as on macOS/Windows): ``a.pdf``, ``a-2.pdf``, ..."""
    taken = {n.lower() for n in names}
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate = name
        if candidate.lower() in seen:
            stem, ext = _split_ext(name)
            n = 2
            while True:
                suffix = f"-{n}"
                candidate = _fit(stem[: max(1, max_chars - len(ext) - len(suffix))], suffix + ext, max_chars)
                # also avoid a later attachment's own name
                if candidate.lower() not in seen and candidate.lower() not in taken:
                    break
                n += 1
        seen.add(candidate.lower())
        taken.add(candidate.lower())
        out.append(candidate)
    return out


# -- sender allow-lists -----------------------------------------------------------------------


def check_allow_pattern(pattern: str) -> str:
    """Validate and normalise one allow-list entry: ``user@example.com``, ``@example.com``
    (exactly that domain) or ``@*.example.com`` (its subdomains). Raises ValueError."""
    text = pattern.strip().lower()
    if text.startswith("@*."):
        domain = text[3:]
    elif text.startswith("@"):
        domain = text[1:]
    else:
        local, at, domain = text.rpartition("@")
        if not at or not local:
            raise ValueError(f"{pattern!r} is neither an address nor an @domain pattern")
    if not domain or "@" in domain or "." not in domain.strip(".") or any(c.isspace() for c in text):
        raise ValueError(f"{pattern!r} has no valid domain")
    return text


def sender_allowed(sender: str | None, patterns: Iterable[str]) -> bool:
    """True when ``sender`` matches an entry (case-insensitive); an empty list allows everyone.
    Filtering only — see the module docstring."""
    normalised = [check_allow_pattern(p) for p in patterns]
    if not normalised:
        return True
    if not sender:
        return False
    address = sender.strip().lower()
    _, at, domain = address.rpartition("@")
    if not at:
        return False
    for pattern in normalised:
        if pattern.startswith("@*."):
            if domain.endswith("." + pattern[3:]):
                return True
        elif pattern.startswith("@"):
            if domain == pattern[1:]:
                return True
        elif address == pattern:
            return True
    return False


# -- parsing ----------------------------------------------------------------------------------


def _clean_header(value: object) -> str:
    text = str(value) if value is not None else ""
    text = " ".join(text.replace("\r", " ").replace("\n", " ").split())  # no header injection in logs
    return text[:_MAX_HEADER_VALUE]


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [str(v) for v in msg.get_all(name, [])]
    found = []
    for display, addr in getaddresses(values):
        addr = addr.strip()
        if "@" in addr and len(addr) <= 320:
            found.append((_clean_header(display), addr))
    return found


def _decode_text(part: Message, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name: show the text rather than drop it
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")  # SMTP's CRLF is transport, not content


def _walk(msg: Message, limits: EmailLimits) -> list[Message]:
    """The leaf parts in order, checking depth and count without recursion (the input decides
    the depth). An attached message (message/rfc822) is one leaf, kept whole as an .eml file,
    but its own parts still count towards the limits."""
    leaves: list[Message] = []
    stack: list[tuple[Message, int, bool]] = [(msg, 0, True)]  # (part, depth, collect leaves)
    count = 0
    while stack:
        part, depth, collect = stack.pop()
        count += 1
        if count > limits.max_parts:
            raise EmailError("too_many_parts", f"more than {limits.max_parts} MIME parts")
        if depth > limits.max_depth:
            raise EmailError("too_deep", f"MIME parts nested deeper than {limits.max_depth}")
        for defect in part.defects:
            if collect and isinstance(defect, _FATAL_DEFECTS):
                raise EmailError("malformed_mime", f"malformed MIME: {type(defect).__name__}")
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart":
            if not isinstance(payload, list):
                raise EmailError("malformed_mime", "malformed MIME: a multipart without parts")
            stack.extend((child, depth + 1, collect) for child in reversed(payload))
            continue
        if collect:
            leaves.append(part)
        if isinstance(payload, list):  # message/rfc822 and friends
            stack.extend((child, depth + 1, False) for child in reversed(payload))
    return leaves


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _leaf_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes(policy=policy.SMTP)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def parse_email(
    data: bytes,
    *,
    limits: EmailLimits | None = None,
    envelope_sender: str | None = None,
    envelope_recipients: Sequence[str] | None = None,
    keep_headers: Iterable[str] = DEFAULT_KEEP_HEADERS,
) -> ReceivedEmail:
    """Parse a received message. See the module docstring for what can be raised."""
    limits = limits or EmailLimits()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if len(data) > limits.max_bytes:
        raise EmailError("too_large", f"message of {len(data)} bytes is over the {limits.max_bytes}-byte limit")
    try:
        return _parse(data, limits, envelope_sender, envelope_recipients, keep_headers)
    except EmailError:
        raise
    except RecursionError as exc:  # the stdlib parser recurses per nesting level
        raise EmailError("too_deep", f"MIME parts nested deeper than {limits.max_depth}") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile input is the sender's problem
        raise EmailError("malformed_mime", f"malformed message: {type(exc).__name__}") from exc


def _parse(
    data: bytes,
    limits: EmailLimits,
    envelope_sender: str | None,
    envelope_recipients: Sequence[str] | None,
    keep_headers: Iterable[str],
) -> ReceivedEmail:
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    if not msg.keys():
        raise EmailError("malformed_mime", "malformed message: no headers")
    leaves = _walk(msg, limits)

    text_parts: list[str] = []
    html_parts: list[str] = []
    raw_attachments: list[tuple[str | None, str, bytes]] = []
    for part in leaves:
        content_type = part.get_content_type()
        if _is_attachment(part):
            try:
                name = part.get_filename()
            except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter: fall back to no name
                name = None
            if not name and content_type == "message/rfc822":
                name = "message.eml"
            raw_attachments.append((name, content_type, _leaf_bytes(part)))
        elif content_type == "text/html":
            html_parts.append(_decode_text(part, _leaf_bytes(part)))
        else:
            text_parts.append(_decode_text(part, _leaf_bytes(part)))

    names = [
        sanitize_filename(name, content_type=ctype, max_chars=limits.max_filename_chars)
        for name, ctype, _ in raw_attachments
    ]
    names = unique_filenames(names, max_chars=limits.max_filename_chars)
    attachments = tuple(
        Attachment(filename=n, content_type=ctype, data=payload)
        for n, (_, ctype, payload) in zip(names, raw_attachments, strict=True)
    )

    senders = _addresses(msg, "from")
    if senders:
        sender_name, sender = senders[0]
    else:  # an unparsable From: keep what parseaddr makes of it, if it looks like an address
        sender_name, sender = parseaddr(_clean_header(msg.get("from", "")))
        sender = sender if "@" in sender else ""
    if sender:  # domains are case-insensitive; local parts keep their case
        local, _, domain = sender.rpartition("@")
        sender = f"{local}@{domain.lower()}"
    if envelope_recipients is not None:
        recipients = tuple(envelope_recipients)
    else:
        recipients = tuple(a for _, a in _addresses(msg, "to") + _addresses(msg, "cc"))
    headers = {}
    for name in keep_headers:
        value = msg.get(name)
        if value is not None:
            headers[name.lower()] = _clean_header(value)
    message_id = _clean_header(msg.get("message-id")) or None

    return ReceivedEmail(
        subject=_clean_header(msg.get("subject", "")),
        text="\n".join(text_parts) if text_parts else None,
        html="\n".join(html_parts) if html_parts else None,
        sender=sender or None,
        sender_name=_clean_header(sender_name),
        envelope_sender=envelope_sender or None,
        recipients=recipients,
        message_id=message_id,
        headers=headers,
        attachments=attachments,
        size=len(data),
    )
