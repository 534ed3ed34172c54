"""Email triggers: mail to one of a trigger's aliases starts a run of its tool, as its user.

The SMTP side is ``runyard.triggers.smtp.EmailListener`` (started by ``runyard up`` and
``runyard server`` when ``RUNYARD_SMTP_PORT`` is set): it asks :meth:`resolve_recipient` at
``RCPT TO`` (only an enabled trigger's alias is accepted, so nothing is ever relayed), hands
each message it accepted to :meth:`deliver`, and every decision it took itself (a recipient
refused, a message over the node's size limit, MIME it could not parse) to :meth:`record`.

Who sees what is as for schedules (``services.schedules``): an admin key every trigger of the
workspace, any other key its own user's (anyone else's is 404 ``email_trigger_not_found``);
reading takes any role, changing takes member, and a restricted key can do neither (403
``restricted``). A trigger runs as the user who made it, authorised again for every message:
a user deleted, or without the member role any more, disables the trigger (the reason in
``disabled_reason``) and the message is refused.

Delivery, per trigger the message was sent to: the sender (the ``From`` address, else the
envelope's) must match the allow-list — filtering, not authentication: both are forged at
will; the message must fit the trigger's ``max_message_bytes``; then a run of the tool starts
with ``ReceivedEmail.as_inputs()`` (subject, text, html, sender, headers, ...) as its inputs
and the attachments as input files ``attachment_1``, ``attachment_2``, ... (a tool whose
inputs are closed gets only the inputs and files it declares). Every message leaves a row in
``email_records``: accepted with its run, or rejected and why.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any, BinaryIO

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.trigger_targets import Targets, owned_row, parse_target, target_of
from runyard.services.users import UserService
from runyard.store.db import Database
from runyard.store.tables_triggers import email_aliases, email_records, email_triggers
from runyard.timeutil import rfc3339, utcnow
from runyard.triggers.email import ReceivedEmail, check_allow_pattern, sender_allowed
from runyard.triggers.smtp import EmailRecord, RejectMessage

log = logging.getLogger(__name__)

READ_EMAIL_TRIGGERS = Permission("viewer", "read email triggers", unrestricted=True)
WRITE_EMAIL_TRIGGERS = Permission("member", "manage email triggers", unrestricted=True)
READ_ALL_EMAIL_RECORDS = Permission("admin", "read the workspace's email records", unrestricted=True)
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MIN_MESSAGE_BYTES = 1024
MAX_MESSAGE_BYTES = 1024 * 1024 * 1024
MAX_ALLOWED_SENDERS = 1000
MAX_ALIASES = 100
MAX_ADDRESS_CHARS = 320
# Reasons :meth:`EmailTriggerService.deliver` records itself; the listener's record of the
# same refusal (it sees the RejectMessage) is not stored twice.
DELIVERY_REASONS = frozenset({"sender_not_allowed", "message_too_large", "trigger_disabled", "owner_revoked",
                              "run_refused"})
_ADDRESS = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")


def email_trigger_view(row: Any, aliases: list[str]) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "object": "email_trigger", **target_of(row).view(), "user_id": m["user_id"],
        "enabled": m["enabled"], "allowed_senders": list(m["allowed_senders"] or []),
        "max_message_bytes": m["max_message_bytes"], "aliases": aliases, "disabled_reason": m["disabled_reason"],
        "created_at": rfc3339(m["created_at"]), "updated_at": rfc3339(m["updated_at"]),
    }


def alias_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "object": "email_alias", "trigger_id": row.trigger_id, "address": row.address,
            "created_at": rfc3339(row.created_at)}


def record_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "object": "email_record", "trigger_id": m["trigger_id"], "sender": m["sender"],
        "recipients": list(m["recipients"] or []), "size": m["size"], "status": m["status"], "reason": m["reason"],
        "detail": m["detail"], "subject": m["subject"], "message_id": m["message_id"], "run_id": m["run_id"],
        "received_at": rfc3339(m["received_at"]),
    }


def normalise_address(address: Any) -> str:
    """``local@domain``, lowercase (400 ``invalid_alias`` otherwise)."""
    text = address.strip().strip("<>").strip().lower() if isinstance(address, str) else ""
    if len(text) > MAX_ADDRESS_CHARS or not _ADDRESS.match(text) or ".." in text:
        raise ValidationFailed("an alias is a full address, local@domain", code="invalid_alias",
                               details={"field": "address"})
    return text


def _bare(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


class EmailTriggerService:
    def __init__(self, db: Database, targets: Targets, users: UserService, *,
                 default_workspace: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.db = db
        self.targets = targets
        self.users = users
        self.default_workspace = default_workspace  # where records of mail to no alias go
        self.max_message_bytes = max_message_bytes  # the node's limit: a trigger's default and ceiling

    # -- validation ----------------------------------------------------------------------
    @staticmethod
    def _senders(value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > MAX_ALLOWED_SENDERS:
            raise ValidationFailed(f"allowed_senders is a list of at most {MAX_ALLOWED_SENDERS} entries",
                                   code="invalid_sender_pattern", details={"field": "allowed_senders"})
        out: list[str] = []
        for entry in value:
            try:
                if not isinstance(entry, str):
                    raise ValueError(f"{entry!r} is not a string")
                pattern = check_allow_pattern(entry)
            except ValueError as exc:
                raise ValidationFailed(f"allowed_senders: {exc}", code="invalid_sender_pattern",
                                       details={"field": "allowed_senders", "value": str(entry)[:200]}) from exc
            if pattern not in out:
                out.append(pattern)
        return out

    def _size(self, value: Any) -> int:
        if value is None:
            return self.max_message_bytes
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_MESSAGE_BYTES <= value <= MAX_MESSAGE_BYTES:
            raise ValidationFailed(f"max_message_bytes must be an integer in {MIN_MESSAGE_BYTES}..{MAX_MESSAGE_BYTES}",
                                   details={"field": "max_message_bytes"})
        return value

    # -- on behalf of a principal ----------------------------------------------------------
    def _visible_row(self, conn: sa.Connection, principal: Principal, trigger_id: str) -> Any:
        return owned_row(conn, email_triggers, principal, trigger_id, what="email trigger", code="email_trigger_not_found", detail="email_trigger_id")

    @staticmethod
    def _aliases(conn: sa.Connection, trigger_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t: [] for t in trigger_ids}
        if trigger_ids:
            for row in conn.execute(sa.select(email_aliases.c.trigger_id, email_aliases.c.address)
                                    .where(email_aliases.c.trigger_id.in_(trigger_ids)).order_by(email_aliases.c.id)):
                out[row.trigger_id].append(row.address)
        return out

    def _view(self, conn: sa.Connection, trigger_id: str) -> dict[str, Any]:
        row = conn.execute(sa.select(email_triggers).where(email_triggers.c.id == trigger_id)).one()
        return email_trigger_view(row, self._aliases(conn, [trigger_id])[trigger_id])

    def _insert_alias(self, conn: sa.Connection, trigger_id: str, address: str) -> str:
        taken = conn.execute(sa.select(email_aliases.c.id).where(email_aliases.c.address == address)).first()
        if taken is not None:
            raise Conflict(f"the address {address!r} is already an alias", code="alias_taken",
                           details={"address": address})
        count = conn.execute(sa.select(sa.func.count()).select_from(email_aliases)
                             .where(email_aliases.c.trigger_id == trigger_id)).scalar_one()
        if count >= MAX_ALIASES:
            raise ValidationFailed(f"a trigger has at most {MAX_ALIASES} aliases", code="invalid_alias",
                                   details={"field": "address"})
        alias_id = new_id("ema")
        try:
            conn.execute(email_aliases.insert().values(id=alias_id, trigger_id=trigger_id, address=address,
                                                       created_at=utcnow()))
        except sa.exc.IntegrityError as exc:  # taken at the same moment
            raise Conflict(f"the address {address!r} is already an alias", code="alias_taken",
                           details={"address": address}) from exc
        return alias_id

    def create(self, principal: Principal, *, tool: Any = None, workflow: Any = None, aliases: Any = None,
               allowed_senders: Any = None, max_message_bytes: Any = None, enabled: bool = True) -> dict[str, Any]:
        WRITE_EMAIL_TRIGGERS.check(principal)
        if principal.user_id is None:
            raise ValidationFailed("this key belongs to no user; an email trigger runs as a user")
        target = parse_target(tool, workflow)
        senders = self._senders(allowed_senders)
        size = self._size(max_message_bytes)
        addresses = [normalise_address(a) for a in (aliases or [])]
        self.targets.check(principal, target)
        now = utcnow()
        trigger_id = new_id("emt")
        with self.db.write() as conn:
            conn.execute(email_triggers.insert().values(
                id=trigger_id, workspace_id=principal.workspace_id, user_id=principal.user_id, target_kind=target.kind,
                target_name=target.name, enabled=bool(enabled), allowed_senders=senders, max_message_bytes=size,
                disabled_reason=None, created_at=now, updated_at=now))
            for address in dict.fromkeys(addresses):
                self._insert_alias(conn, trigger_id, address)
            return self._view(conn, trigger_id)

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        READ_EMAIL_TRIGGERS.check(principal)
        query = sa.select(email_triggers).where(email_triggers.c.workspace_id == principal.workspace_id)
        if principal.role != "admin":
            query = query.where(email_triggers.c.user_id == (principal.user_id or ""))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=email_triggers.c.id, id_col=email_triggers.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
            aliases = self._aliases(conn, [r.id for r in rows])
        return Page([email_trigger_view(r, aliases[r.id]) for r in rows], nxt, total)

    def get(self, principal: Principal, trigger_id: str) -> dict[str, Any]:
        READ_EMAIL_TRIGGERS.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            return email_trigger_view(row, self._aliases(conn, [row.id])[row.id])

    def update(self, principal: Principal, trigger_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the fields given; enabling (or disabling by hand) clears ``disabled_reason``."""
        WRITE_EMAIL_TRIGGERS.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, trigger_id)
        values: dict[str, Any] = {}
        if changes.get("tool") is not None or changes.get("workflow") is not None:
            target = parse_target(changes.get("tool"), changes.get("workflow"))
            self.targets.check(principal, target)
            values.update(target_kind=target.kind, target_name=target.name)
        if "allowed_senders" in changes:
            values["allowed_senders"] = self._senders(changes["allowed_senders"])
        if changes.get("max_message_bytes") is not None:
            values["max_message_bytes"] = self._size(changes["max_message_bytes"])
        if changes.get("enabled") is not None:
            values["enabled"] = bool(changes["enabled"])
            values["disabled_reason"] = None
        values["updated_at"] = utcnow()
        with self.db.write() as conn:
            conn.execute(email_triggers.update().where(email_triggers.c.id == row.id).values(**values))
            return self._view(conn, row.id)

    def delete(self, principal: Principal, trigger_id: str) -> None:
        WRITE_EMAIL_TRIGGERS.check(principal)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            conn.execute(email_aliases.delete().where(email_aliases.c.trigger_id == row.id))
            conn.execute(email_triggers.delete().where(email_triggers.c.id == row.id))

    # -- aliases -----------------------------------------------------------------------------
    def add_alias(self, principal: Principal, trigger_id: str, address: Any) -> dict[str, Any]:
        WRITE_EMAIL_TRIGGERS.check(principal)
        normalised = normalise_address(address)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            alias_id = self._insert_alias(conn, row.id, normalised)
            return alias_view(conn.execute(sa.select(email_aliases).where(email_aliases.c.id == alias_id)).one())

    def list_aliases(self, principal: Principal, trigger_id: str, *, cursor: str | None, limit: int,
                     include_total: bool = False) -> Page:
        READ_EMAIL_TRIGGERS.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            query = sa.select(email_aliases).where(email_aliases.c.trigger_id == row.id)
            rows, nxt, total = paginate(conn, query, sort_col=email_aliases.c.id, id_col=email_aliases.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
        return Page([alias_view(r) for r in rows], nxt, total)

    def _alias_row(self, conn: sa.Connection, trigger_id: str, alias_id: str) -> Any:
        row = conn.execute(sa.select(email_aliases).where(email_aliases.c.id == alias_id,
                                                          email_aliases.c.trigger_id == trigger_id)).first()
        if row is None:
            raise NotFound(f"alias {alias_id!r} not found", code="email_alias_not_found",
                           details={"alias_id": alias_id})
        return row

    def update_alias(self, principal: Principal, trigger_id: str, alias_id: str, address: Any) -> dict[str, Any]:
        WRITE_EMAIL_TRIGGERS.check(principal)
        normalised = normalise_address(address)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            alias = self._alias_row(conn, row.id, alias_id)
            if alias.address != normalised:
                taken = conn.execute(sa.select(email_aliases.c.id).where(email_aliases.c.address == normalised)).first()
                if taken is not None:
                    raise Conflict(f"the address {normalised!r} is already an alias", code="alias_taken",
                                   details={"address": normalised})
                conn.execute(email_aliases.update().where(email_aliases.c.id == alias.id).values(address=normalised))
            return alias_view(conn.execute(sa.select(email_aliases).where(email_aliases.c.id == alias.id)).one())

    def delete_alias(self, principal: Principal, trigger_id: str, alias_id: str) -> None:
        WRITE_EMAIL_TRIGGERS.check(principal)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            alias = self._alias_row(conn, row.id, alias_id)
            conn.execute(email_aliases.delete().where(email_aliases.c.id == alias.id))

    # -- records -------------------------------------------------------------------------------
    def list_records(self, principal: Principal, trigger_id: str, *, cursor: str | None, limit: int,
                     include_total: bool = False) -> Page:
        """The trigger's records, newest first."""
        READ_EMAIL_TRIGGERS.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, trigger_id)
            query = sa.select(email_records).where(email_records.c.trigger_id == row.id)
            rows, nxt, total = paginate(conn, query, sort_col=email_records.c.id, id_col=email_records.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
        return Page([record_view(r) for r in rows], nxt, total)

    def list_all_records(self, principal: Principal, *, cursor: str | None, limit: int,
                         include_total: bool = False) -> Page:
        """Every record of the workspace, mail to no alias included (admins), newest first."""
        READ_ALL_EMAIL_RECORDS.check(principal)
        query = sa.select(email_records).where(email_records.c.workspace_id == principal.workspace_id)
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=email_records.c.id, id_col=email_records.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
        return Page([record_view(r) for r in rows], nxt, total)

    # -- the SMTP listener's callbacks -------------------------------------------------------------
    def resolve_recipient(self, address: str) -> bool:
        """True when ``address`` is an alias of an enabled trigger (anything else is refused at RCPT)."""
        bare = _bare(address)
        if not bare or len(bare) > MAX_ADDRESS_CHARS:
            return False
        with self.db.read() as conn:
            found = conn.execute(
                sa.select(email_triggers.c.id).select_from(email_aliases.join(
                    email_triggers, email_triggers.c.id == email_aliases.c.trigger_id))
                .where(email_aliases.c.address == bare, email_triggers.c.enabled.is_(True))).first()
        return found is not None

    def _triggers_for(self, recipients: tuple[str, ...]) -> list[Any]:
        addresses = list(dict.fromkeys(_bare(r) for r in recipients if r))
        if not addresses:
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(email_triggers).select_from(email_aliases.join(
                    email_triggers, email_triggers.c.id == email_aliases.c.trigger_id))
                .where(email_aliases.c.address.in_(addresses)).order_by(email_triggers.c.id)).all()
        return list({r.id: r for r in rows}.values())

    def _store_record(self, *, workspace_id: str, trigger_id: str | None, status: str, reason: str | None,
                      sender: str | None, recipients: tuple[str, ...] | list[str], size: int,
                      detail: str | None = None, subject: str | None = None, message_id: str | None = None,
                      run_id: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(email_records.insert().values(
                id=new_id("emr"), workspace_id=workspace_id, trigger_id=trigger_id,
                sender=(sender or None) and sender[:MAX_ADDRESS_CHARS], recipients=list(recipients)[:100],
                size=size, status=status, reason=reason, detail=detail and detail[:2000],
                subject=subject and subject[:2000], message_id=message_id and message_id[:1000], run_id=run_id,
                received_at=utcnow()))

    def record(self, rec: EmailRecord) -> None:
        """The listener's record of a decision: stored once per trigger it concerns (with no
        trigger, in the default workspace). Accepted messages and the refusals ``deliver``
        made are stored by ``deliver`` (with the run, or per trigger)."""
        if rec.status == "accepted" or rec.reason in DELIVERY_REASONS:
            return
        common: dict[str, Any] = {"status": rec.status, "reason": rec.reason, "sender": rec.sender,
                                  "recipients": rec.recipients, "size": rec.size, "detail": rec.detail,
                                  "subject": rec.subject, "message_id": rec.message_id}
        rows = self._triggers_for(rec.recipients)
        if not rows:
            self._store_record(workspace_id=self.default_workspace, trigger_id=None, **common)
        for row in rows:
            self._store_record(workspace_id=row.workspace_id, trigger_id=row.id, **common)

    def _owner(self, row: Any) -> Principal | str:
        return self.users.acting_as(row.workspace_id, row.user_id, on_behalf_of=row.id,
                                    whose="the email trigger's owner")

    def _inputs(self, row: Any, owner: Principal, received: ReceivedEmail
                ) -> tuple[dict[str, Any], dict[str, tuple[str, BinaryIO]]]:
        """The run's inputs and input files; a target with closed inputs gets only those it declares."""
        inputs = received.as_inputs()
        names = [f"attachment_{i}" for i in range(1, len(received.attachments) + 1)]
        for entry, name in zip(inputs["attachments"], names, strict=True):
            entry["input"] = name
        files = {name: (a.filename, io.BytesIO(a.data)) for name, a in zip(names, received.attachments, strict=True)}
        schema = self.targets.input_schema(owner, target_of(row))
        if schema.get("additionalProperties") is False:
            declared = set(schema.get("properties") or {})
            inputs = {k: v for k, v in inputs.items() if k in declared}
            files = {k: v for k, v in files.items() if k in declared}
        return inputs, files

    def _deliver_to(self, row: Any, received: ReceivedEmail) -> tuple[str | None, str, str]:
        """Start the trigger's run: (run_id, reason, message) — run_id None when refused."""
        if not row.enabled:
            return None, "trigger_disabled", "this address does not take mail now"
        if not sender_allowed(received.sender or received.envelope_sender, row.allowed_senders or []):
            return None, "sender_not_allowed", "the sender is not allowed to send to this address"
        if received.size > row.max_message_bytes:
            return None, "message_too_large", f"the message is over {row.max_message_bytes} bytes"
        owner = self._owner(row)
        if isinstance(owner, str):
            with self.db.write() as conn:
                conn.execute(email_triggers.update().where(email_triggers.c.id == row.id)
                             .values(enabled=False, disabled_reason=owner, updated_at=utcnow()))
            log.info("email trigger %s disabled: %s", row.id, owner)
            return None, "owner_revoked", owner
        try:
            inputs, files = self._inputs(row, owner, received)
            sender = (received.sender or received.envelope_sender or "").strip().lower()[:320] or None
            run = self.targets.start(owner, target_of(row), inputs=inputs, trigger="email", source=row.id,
                                     files=files, by=sender)
        except DomainError as exc:
            return None, "run_refused", f"{exc.code}: {exc.message}"
        return run["id"], "", ""

    def deliver(self, received: ReceivedEmail) -> list[str]:
        """Start a run for each trigger the message was sent to; the runs' ids. Raises
        ``RejectMessage`` (the sender gets 550) when none took it. Records every decision."""
        rows = self._triggers_for(received.recipients)
        if not rows:
            raise RejectMessage("recipient_rejected", "no such recipient here")
        started: list[str] = []
        refusal: tuple[str, str] | None = None
        for row in rows:
            run_id, reason, message = self._deliver_to(row, received)
            self._store_record(workspace_id=row.workspace_id, trigger_id=row.id,
                               status="accepted" if run_id else "rejected", reason=None if run_id else reason,
                               sender=received.envelope_sender or received.sender, recipients=received.recipients,
                               size=received.size, detail=None if run_id else message, subject=received.subject,
                               message_id=received.message_id, run_id=run_id)
            if run_id:
                started.append(run_id)
            elif refusal is None:
                refusal = (reason, message)
        if not started:
            assert refusal is not None
            raise RejectMessage(*refusal)
        return started
