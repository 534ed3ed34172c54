"""DataGen's four run status words, from runyard's eight: the one table of the mapping
(docs/compat.md shows it too). ``runyard_status`` rides beside ``status`` in every answer,
so nothing runyard knows is lost."""

from __future__ import annotations

__all__ = ["STATUS_OF", "datagen_status", "PENDING", "RUNNING", "COMPLETED", "FAILED", "FINISHED"]

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"

#: runyard's run status → DataGen's.
STATUS_OF: dict[str, str] = {
    "awaiting_confirmation": PENDING,  # held for a person's confirmation before it is queued
    "queued": PENDING,
    "running": RUNNING,
    "waiting_for_input": RUNNING,  # started, paused on a question to a person
    "succeeded": COMPLETED,
    "failed": FAILED,
    "cancelled": FAILED,
    "timed_out": FAILED,  # e.g. past its execution_timeout
}

#: The words a run ends with.
FINISHED = frozenset({COMPLETED, FAILED})


def datagen_status(runyard_status: str) -> str:
    """DataGen's word for a runyard status; a status this table does not know (a newer
    server's) reads ``running``: not ended, so a waiting caller keeps waiting."""
    return STATUS_OF.get(runyard_status, RUNNING)
