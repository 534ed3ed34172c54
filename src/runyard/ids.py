"""Prefixed, time-sortable identifiers (``run_01J…``).

The body is a ULID: 48 bits of milliseconds then 80 random bits, Crockford base32, so
ids sort by creation time as plain strings — list pagination can key on the id alone.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every prefix ``new_id`` is called with: a name starting with one of these and ``_`` reads
# as an id where a reference may be either (``GET /tools/tool_x``), so names cannot.
PREFIXES = ("bat", "cln", "con", "ds", "ema", "emr", "emt", "exp", "fbk", "fld", "ing", "job", "llm", "lnk", "ns", "run", "sch", "sec", "set", "setv", "tok",
            "tool", "tpl", "tplv", "tv", "uis", "upl", "usr", "wf", "wfv", "whk", "wrk", "ws", "wsf")
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id; monotonic within this process even inside one millisecond."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        _last_ms, _last_rand = ms, rand
    return f"{prefix}_{_encode(ms, 10)}{_encode(rand, 16)}"


def looks_like_id(name: str) -> bool:
    """Whether ``name`` starts like an id (``tool_…``) and so cannot serve as a name."""
    prefix, sep, _ = name.partition("_")
    return bool(sep) and prefix.lower() in PREFIXES
