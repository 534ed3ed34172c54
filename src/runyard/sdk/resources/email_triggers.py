"""``client.email_triggers``: mail sent to an alias address runs a tool.

The server's SMTP listener (``RUNYARD_SMTP_PORT``) accepts mail only for the aliases of
enabled triggers; each message leaves a record (``records``) saying what became of it: a
run started, or why not. ``allowed_senders`` is filtering, not authentication.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import EmailAlias, EmailRecord, EmailTrigger
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["EmailTriggers", "AsyncEmailTriggers"]


def _id(trigger: str | EmailTrigger) -> str:
    return trigger.id if isinstance(trigger, EmailTrigger) else str(trigger)


def _alias_id(alias: str | EmailAlias) -> str:
    return alias.id if isinstance(alias, EmailAlias) else str(alias)


class EmailTriggersAPI:
    """``client.email_triggers``, written once for :class:`EmailTriggers` and :class:`AsyncEmailTriggers`."""

    @endpoint
    def create(
        self,
        tool: str | None = None,
        *,
        workflow: str | None = None,
        aliases: Sequence[str] | None = None,
        allowed_senders: Sequence[str] | None = None,
        max_message_bytes: int | None = None,
        enabled: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[EmailTrigger]:
        """A new trigger running ``tool`` (or ``workflow``) for mail to its ``aliases`` (full
        addresses, ``local@domain``: ``invalid_alias``; one taken already: ``ConflictError``
        ``alias_taken``). ``allowed_senders``: ``user@example.com``, ``@example.com``,
        ``@*.example.com`` (empty: everyone). ``max_message_bytes`` (1 KiB – 1 GiB) defaults to
        the node's limit."""
        body = compact(tool=tool, workflow=workflow, aliases=list(aliases) if aliases is not None else None,
                       allowed_senders=list(allowed_senders) if allowed_senders is not None else None,
                       max_message_bytes=max_message_bytes, enabled=enabled)
        return EmailTrigger.model_validate((yield Send(RequestOptions(
            "POST", "/email-triggers", json=body, timeout=timeout))).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[EmailTrigger]:
        """The triggers the key can see, newest first, each with its aliases."""
        return Listing(EmailTrigger, lambda cursor: RequestOptions(
            "GET", "/email-triggers", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, trigger: str | EmailTrigger, *, timeout: Timeout = None) -> Plan[EmailTrigger]:
        """One trigger (``NotFoundError``, code ``email_trigger_not_found``)."""
        return EmailTrigger.model_validate((yield Send(RequestOptions(
            "GET", f"/email-triggers/{seg(_id(trigger))}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        trigger: str | EmailTrigger,
        *,
        tool: str | None = None,
        workflow: str | None = None,
        allowed_senders: Sequence[str] | None = None,
        max_message_bytes: int | None = None,
        enabled: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[EmailTrigger]:
        """Change what is given (``allowed_senders=[]`` allows everyone); enabling clears
        ``disabled_reason``. Aliases change with the ``*_alias`` methods."""
        body = compact(tool=tool, workflow=workflow,
                       allowed_senders=list(allowed_senders) if allowed_senders is not None else None,
                       max_message_bytes=max_message_bytes, enabled=enabled)
        return EmailTrigger.model_validate((yield Send(RequestOptions(
            "PATCH", f"/email-triggers/{seg(_id(trigger))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, trigger: str | EmailTrigger, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a trigger and its aliases (its records and runs stay)."""
        yield Send(RequestOptions("DELETE", f"/email-triggers/{seg(_id(trigger))}", timeout=timeout))

    # -- aliases -------------------------------------------------------------------------------
    @endpoint
    def create_alias(self, trigger: str | EmailTrigger, address: str, *, timeout: Timeout = None) -> Plan[EmailAlias]:
        """Add an address (stored lowercase; ``alias_taken`` when any trigger has it)."""
        return EmailAlias.model_validate((yield Send(RequestOptions(
            "POST", f"/email-triggers/{seg(_id(trigger))}/aliases", json={"address": address},
            timeout=timeout))).json())

    @listing
    def list_aliases(self, trigger: str | EmailTrigger, *, limit: int | None = None,
                     timeout: Timeout = None) -> Listing[EmailAlias]:
        """The trigger's aliases with their ids."""
        return Listing(EmailAlias, lambda cursor: RequestOptions(
            "GET", f"/email-triggers/{seg(_id(trigger))}/aliases", params={"limit": limit, "cursor": cursor},
            timeout=timeout))

    @endpoint
    def update_alias(self, trigger: str | EmailTrigger, alias: str | EmailAlias, address: str, *,
                     timeout: Timeout = None) -> Plan[EmailAlias]:
        """Change an alias's address."""
        return EmailAlias.model_validate((yield Send(RequestOptions(
            "PATCH", f"/email-triggers/{seg(_id(trigger))}/aliases/{seg(_alias_id(alias))}",
            json={"address": address}, timeout=timeout))).json())

    @endpoint
    def delete_alias(self, trigger: str | EmailTrigger, alias: str | EmailAlias, *,
                     timeout: Timeout = None) -> Plan[None]:
        """Remove an alias: mail to it is refused from then on."""
        yield Send(RequestOptions(
            "DELETE", f"/email-triggers/{seg(_id(trigger))}/aliases/{seg(_alias_id(alias))}", timeout=timeout))

    # -- records -------------------------------------------------------------------------------
    @listing
    def records(self, trigger: str | EmailTrigger, *, limit: int | None = None,
                timeout: Timeout = None) -> Listing[EmailRecord]:
        """What became of the mail sent to the trigger's aliases, newest first."""
        return Listing(EmailRecord, lambda cursor: RequestOptions(
            "GET", f"/email-triggers/{seg(_id(trigger))}/records", params={"limit": limit, "cursor": cursor},
            timeout=timeout))

    @listing
    def all_records(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[EmailRecord]:
        """Every record of the workspace, mail to no alias included, newest first (admin keys only)."""
        return Listing(EmailRecord, lambda cursor: RequestOptions(
            "GET", "/email-records", params={"limit": limit, "cursor": cursor}, timeout=timeout))


class EmailTriggers(EmailTriggersAPI, SyncResource):
    """``client.email_triggers``: mail to an alias runs a tool."""


class AsyncEmailTriggers(EmailTriggersAPI, AsyncResource):
    """``client.email_triggers`` of :class:`~runyard.AsyncClient` (coroutines)."""
