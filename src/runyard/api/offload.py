"""Blocking service calls (database, files) run off the event loop, in the API's thread pool.

A plain ``loop.run_in_executor`` on a pool of our own: the handoff costs a fraction of
anyio's ``to_thread`` (capacity limiter, cancel scopes, run-vars) that Starlette's
``run_in_threadpool`` goes through, and every request to the API makes at least one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
MAX_THREADS = 40  # as many blocking calls in flight as Starlette's default allowed

_pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="runyard-api")


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool, functools.partial(fn, *args, **kwargs))
