"""The built-in SMTP listener for email triggers (aiosmtpd), run in a background thread.

It is a final destination, never a relay: a recipient is accepted only when
``resolve_recipient(address)`` says so (an alias of an email trigger), anything else is refused
at RCPT time with 550, so no message for an outside domain is ever taken. A message over
``max_message_bytes`` is refused with 552 — declared too large in ``MAIL FROM ... SIZE=``, or
counted while DATA streams in: past the limit the bytes are read and dropped, never buffered
(aiosmtpd's own DATA reader keeps an over-long line in memory, so DATA is read here). The global
and per-client-IP connection limits answer 421 and hang up; a session idle for ``timeout_s``
is closed; a message has at most ``max_recipients`` recipients.

Accepted messages are parsed (:func:`runyard.triggers.email.parse_email`) and handed to
``on_message`` in a worker thread, so a slow callback never stalls other sessions. The callback
may raise :class:`RejectMessage` to refuse a message (a sender not on the allow-list, say): the
client gets 550 and the record says why; any other exception answers 451 (the sender retries).
Every decision about a message — accepted, or rejected and why — is passed to ``on_record``
as an :class:`EmailRecord`, including recipients refused at RCPT.

Binds 127.0.0.1 unless told otherwise: exposing it is a deployment decision.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, Envelope, Session

from runyard.triggers.email import EmailError, EmailLimits, ReceivedEmail, parse_email

__all__ = ["EmailListener", "EmailRecord", "RejectMessage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmailRecord:
    """One decision about a received message, for the server to store."""

    status: Literal["accepted", "rejected"]
    reason: str | None  # None when accepted; else e.g. too_large, recipient_rejected, malformed_mime
    sender: str | None  # the SMTP envelope sender (MAIL FROM)
    recipients: tuple[str, ...]
    size: int  # bytes received (for a declared SIZE=, the declared size)
    peer: str | None = None  # "ip:port" of the client
    message_id: str | None = None
    subject: str | None = None
    detail: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class RejectMessage(Exception):  # noqa: N818 - raised by callbacks to say "reject", not a failure
    """Raise from ``on_message`` to refuse a message with a 550 and ``reason`` on its record."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason


def _peer(session: Session | None) -> str | None:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else None


def _reply_text(text: str) -> str:
    # an SMTP reply is one line of printable ASCII
    return "".join(ch if " " <= ch < "\x7f" else "?" for ch in text)[:200]


class _Handler:
    """aiosmtpd's handler hooks; everything else is in _Session."""

    def __init__(self, listener: EmailListener) -> None:
        self._listener = listener

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        return await self._listener._check_recipient(session, envelope, address)


class _Session(SMTP):
    def __init__(self, listener: EmailListener, **kwargs: Any) -> None:
        super().__init__(_Handler(listener), **kwargs)
        self._listener = listener
        self._admitted_ip: str | None = None
        self._refused = False
        self._last_status = ""

    # -- connection limits --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self._admitted_ip is None:  # the TCP connection, not STARTTLS
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            if not self._listener._admit(ip):
                self._refused = True
                transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted_ip = ip
            self._listener._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted_ip is not None:
            self._listener._release(self._admitted_ip)
            self._admitted_ip = None
            self._listener._sessions.discard(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- commands -----------------------------------------------------------------------------

    async def push(self, status: Any) -> None:
        self._last_status = status if isinstance(status, str) else bytes(status).decode("ascii", "replace")
        await super().push(status)

    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's command name
        await super().smtp_MAIL(arg)
        if self._last_status.startswith("552"):  # SIZE= declared over the limit
            sender = re.search(r"<([^>]*)>", arg or "")
            size = re.search(r"\bSIZE=(\d{1,20})", arg or "", re.IGNORECASE)
            self._listener._record(
                EmailRecord(
                    "rejected",
                    "too_large",
                    sender.group(1) if sender else None,
                    (),
                    int(size.group(1)) if size else 0,
                    peer=_peer(self.session),
                    detail="declared SIZE over the limit",
                )
            )

    async def smtp_DATA(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's command name
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self._listener.max_message_bytes
        buffer = bytearray()
        size = 0
        over = False
        at_line_start = True
        finished = False
        while self.transport is not None:
            try:
                chunk = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:  # a long line: take it in pieces
                chunk = await self._reader.read(exc.consumed)
            except asyncio.IncompleteReadError:
                break  # the client went away mid-DATA
            self._reset_timeout()  # idle timeout, not a deadline for the whole upload
            if at_line_start and chunk == b".\r\n":
                finished = True
                break
            if at_line_start and chunk.startswith(b"."):
                chunk = chunk[1:]  # dot-unstuffing (RFC 5321 4.5.2)
            at_line_start = chunk.endswith(b"\r\n")
            size += len(chunk)
            if over:
                continue
            if size > limit:
                over = True
                buffer = bytearray()  # drop what we had; the rest is counted, not kept
            else:
                buffer += chunk
        sender = envelope.mail_from
        recipients = tuple(envelope.rcpt_tos)
        peer = _peer(self.session)
        self._set_post_data_state()
        if not finished:
            return
        if over:
            self._listener._record(
                EmailRecord("rejected", "too_large", sender, recipients, size, peer=peer,
                            detail=f"over the {limit}-byte limit")
            )
            await self.push("552 5.3.4 Error: message size exceeds fixed maximum message size")
            return
        status = await self._listener._deliver(bytes(buffer), sender, recipients, peer)
        await self.push(status)


class EmailListener:
    """An SMTP server for email triggers in a background thread: ``start()`` / ``stop()``.

    ``port=0`` binds a free port; read the bound one from :attr:`port` after ``start()``.
    ``resolve_recipient`` and ``on_message`` run in worker threads (they may touch the database);
    ``on_record`` too. See the module docstring for the rules.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2525,
        *,
        resolve_recipient: Callable[[str], bool],
        on_message: Callable[[ReceivedEmail], None],
        on_record: Callable[[EmailRecord], None] | None = None,
        max_message_bytes: int = 25 * 1024 * 1024,
        max_connections: int = 100,
        max_connections_per_ip: int = 20,
        max_recipients: int = 50,
        timeout_s: float = 60.0,
        hostname: str = "runyard",
        limits: EmailLimits | None = None,
        workers: int = 4,
    ) -> None:
        if max_message_bytes < 1024 or max_connections < 1 or max_connections_per_ip < 1 or max_recipients < 1:
            raise ValueError("limits must be positive (max_message_bytes at least 1 KiB)")
        self.host = host
        self._requested_port = port
        self.resolve_recipient = resolve_recipient
        self.on_message = on_message
        self.on_record = on_record
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.max_recipients = max_recipients
        self.timeout_s = timeout_s
        self.hostname = hostname
        base = limits or EmailLimits()
        self.limits = EmailLimits(
            max_bytes=max_message_bytes, max_depth=base.max_depth, max_parts=base.max_parts,
            max_filename_chars=base.max_filename_chars,
        )
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._port: int | None = None
        # touched only on the loop's thread
        self._per_ip: dict[str, int] = {}
        self._total = 0
        self._sessions: set[_Session] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the listener is not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def active_connections(self) -> int:
        return self._total

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._ready.clear()
        self._start_error = None
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="runyard-smtp-cb")
        self._thread = threading.Thread(target=self._run, name="runyard-smtp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the SMTP listener did not start in time")
        if self._start_error is not None:
            error = self._start_error
            self._thread.join(timeout)
            self._thread = None
            self._executor.shutdown(wait=False)
            raise error

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown)
        thread.join(timeout)
        self._thread = None
        self._port = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> EmailListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _factory(self) -> _Session:
        return _Session(
            self,
            data_size_limit=self.max_message_bytes,  # advertised as SIZE; DATA is counted by _Session
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.hostname,
            ident="runyard ESMTP",
            timeout=self.timeout_s,
            command_call_limit=1000,  # a session looping on NOOP/RSET is dropped eventually
            loop=self._loop,
        )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(loop.create_server(self._factory, host=self.host, port=self._requested_port))
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                server.close()
                for session in list(self._sessions):
                    session.close_now()
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
            finally:
                loop.close()
                self._loop = None
                self._server = None

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.close_now()
        assert self._loop is not None
        self._loop.stop()

    # -- limits (loop thread) -----------------------------------------------------------------

    def _admit(self, ip: str) -> bool:
        if self._total >= self.max_connections or self._per_ip.get(ip, 0) >= self.max_connections_per_ip:
            return False
        self._total += 1
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return True

    def _release(self, ip: str) -> None:
        self._total = max(0, self._total - 1)
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)

    # -- decisions ----------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _record(self, record: EmailRecord) -> None:
        if self.on_record is None:
            return
        assert self._loop is not None

        def call() -> None:
            try:
                assert self.on_record is not None
                self.on_record(record)
            except Exception:  # noqa: BLE001 - storing a record must never break the SMTP session
                log.exception("on_record failed for %s", record)

        # fire-and-forget on a worker thread: the reply does not wait for the record
        try:
            self._loop.run_in_executor(self._executor, call)
        except RuntimeError:  # shutting down: the executor is gone
            log.warning("email record dropped during shutdown: %s", record)

    async def _check_recipient(self, session: Session, envelope: Envelope, address: str) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Error: too many recipients"
        try:
            accepted = bool(await self._in_thread(self.resolve_recipient, address))
        except Exception:  # noqa: BLE001 - a lookup failure is temporary for the client
            log.exception("resolve_recipient failed for %r", address)
            return "451 4.3.0 Error: temporary failure, try again later"
        if not accepted:
            self._record(
                EmailRecord("rejected", "recipient_rejected", envelope.mail_from, (address,), 0, peer=_peer(session))
            )
            # the same answer for an unknown alias and an outside domain: this server never relays
            return f"550 5.1.1 <{_reply_text(address)}>: recipient not accepted here (no relaying)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def _deliver(self, data: bytes, sender: str | None, recipients: tuple[str, ...], peer: str | None) -> str:
        size = len(data)
        try:
            email = await self._in_thread(
                lambda: parse_email(
                    data, limits=self.limits, envelope_sender=sender, envelope_recipients=recipients
                )
            )
        except EmailError as exc:
            self._record(EmailRecord("rejected", exc.code, sender, recipients, size, peer=peer, detail=exc.message))
            return f"550 5.6.0 Error: {_reply_text(exc.message)}"
        common = {"peer": peer, "message_id": email.message_id, "subject": email.subject}
        try:
            await self._in_thread(self.on_message, email)
        except RejectMessage as exc:
            self._record(EmailRecord("rejected", exc.reason, sender, recipients, size, detail=exc.message, **common))
            return f"550 5.7.1 Error: {_reply_text(exc.message)}"
        except Exception as exc:  # noqa: BLE001 - the sender should retry later, not lose the mail
            log.exception("on_message failed")
            self._record(
                EmailRecord("rejected", "handler_error", sender, recipients, size, detail=type(exc).__name__, **common)
            )
            return "451 4.3.0 Error: temporary failure, try again later"
        self._record(EmailRecord("accepted", None, sender, recipients, size, **common))
        return "250 OK: message accepted"
