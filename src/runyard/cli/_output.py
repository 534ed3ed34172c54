"""Output and failure conventions shared by every command.

- ``--json``: stdout carries exactly one JSON document and nothing else; human notes,
  spinners and logs go to stderr.
- Errors: one line on stderr (API code, message, request id); with ``--json`` the error
  envelope is also printed on stdout so scripts can parse it.
- Exit codes: see :class:`Exit`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from runyard.sdk import errors as sdk_errors
from runyard.sdk.models import RunyardModel

P = ParamSpec("P")
R = TypeVar("R")


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # API, network or configuration error
    USAGE = 2  # bad command line (click's own code)
    RUN_FAILED = 3  # the run ended failed, cancelled or timed_out
    RUN_UNFINISHED = 4  # --timeout passed while the run was still going
    INTERRUPTED = 130  # Ctrl-C (the shell convention: 128 + SIGINT); a started run goes on


def stdout() -> Console:
    # A pipe has no width: let tables take what they need instead of Rich's 80 columns.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 400
    return Console(soft_wrap=False, width=width)


def stderr() -> Console:
    return Console(stderr=True)


def jsonable(value: Any) -> Any:
    if isinstance(value, RunyardModel):
        return value.to_dict()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    # Plain write, not Rich: no markup, no wrapping, no colour codes in a pipe.
    sys.stdout.write(json.dumps(jsonable(value), indent=2, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A human remark on stderr (never pollutes --json stdout)."""
    stderr().print(message, highlight=False)


def outcome(json_output: bool, value: Any, message: str) -> None:
    """A command's result: ``value`` as JSON on stdout with ``--json``, else ``message``."""
    if json_output:
        print_json(value)
    else:
        note(message)


@contextlib.contextmanager
def spinner(message: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr, only when stderr is an interactive terminal."""
    if enabled and sys.stderr.isatty():
        with stderr().status(message):
            yield
    else:
        yield


def fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


STATUS_STYLE = {
    "succeeded": "green", "failed": "red", "timed_out": "red", "cancelled": "yellow",
    "running": "cyan", "queued": "blue", "awaiting_confirmation": "magenta",
}


def status_text(status: str | None) -> Text:
    return Text(str(status), style=STATUS_STYLE.get(status or "", ""))


def _cell(value: Any) -> Text:
    # Values are data, never markup: a tool description with [brackets] prints as is.
    return value if isinstance(value, Text) else Text(fmt(value))


def table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> Table:
    t = Table(title=title, header_style="bold", show_lines=False)
    for col in columns:
        # IDs must stay copy-pasteable: kept on one line when possible, folded (never
        # truncated with an ellipsis) when the terminal is too narrow.
        t.add_column(col, overflow="fold", no_wrap=col in ("ID", "NAME", "PATH"))
    for row in rows:
        t.add_row(*[_cell(v) for v in row])
    return t


def kv_table(pairs: list[tuple[str, Any]]) -> Text:
    """``key  value`` lines, keys aligned; a multi-line value continues under its first
    line. Plain text rather than a table, so a long value never pads every other row."""
    width = max((len(k) for k, _ in pairs), default=0)
    out = Text()
    for key, value in pairs:
        cell = _cell(value)
        for i, line in enumerate(cell.split("\n") if cell.plain else [cell]):
            if line.plain:
                out.append(key.ljust(width) if i == 0 else " " * width, style="bold" if i == 0 else "")
                out.append("  ")
                out.append_text(line)
            else:
                out.append(key if i == 0 else "", style="bold")
            out.append("\n")
    out.rstrip()
    return out


def fail(message: str, *, code: Exit = Exit.ERROR, json_mode: bool = False, body: Any = None) -> typer.Exit:
    if json_mode:
        print_json(body if body is not None else {"error": {"code": "cli_error", "message": message}})
    # Escaped: server messages and hints like runyard[server] contain brackets.
    stderr().print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


def _connection_hint(exc: sdk_errors.APIConnectionError) -> str:
    """Where we tried to go, and what usually fixes it."""
    url = exc.request.url if exc.request is not None else None
    where = f"{url.scheme}://{url.netloc.decode()}" if url is not None else "the server"
    cause = exc.__cause__
    reason = str(cause) if cause is not None and str(cause) else type(cause or exc).__name__
    if isinstance(exc, sdk_errors.APITimeoutError):
        return (f"no answer from {where} in time ({reason}); "
                "pass a larger --timeout where the command has one, or check the server's load")
    return (f"cannot connect to {where} ({reason}): is the server running? Start it with `runyard up` "
            "(or `bash scripts/up.sh` in a checkout), or point the CLI elsewhere with --base-url, "
            "RUNYARD_BASE_URL or `runyard login --base-url URL`")


def _quiet_stdout() -> None:
    """The reader of stdout went away (``| head``): nothing more to say, and nothing to
    complain about at exit when Python flushes what is left."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _error_line(exc: Exception) -> str:
    if isinstance(exc, sdk_errors.APIConnectionError):
        return _connection_hint(exc)
    if isinstance(exc, sdk_errors.APIStatusError):
        rid = f" (request_id: {exc.request_id})" if exc.request_id else ""
        line = f"{exc.code}: {exc.message}{rid}"
        if isinstance(exc, sdk_errors.ValidationError):
            fields = [f"{e.get('field', '?')}: {e.get('message', '')}" for e in exc.errors[:5]]
            if fields and not all(f in exc.message for f in fields):
                line += " [" + "; ".join(fields) + "]"
        return line
    return str(exc)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn SDK and config errors into a one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        json_mode = bool(kwargs.get("json_output"))
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise  # a deliberate exit code (typer's Exit is a RuntimeError: let it through)
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(int(Exit.OK)) from None
        except sdk_errors.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else None
            raise fail(_error_line(exc), json_mode=json_mode, body=body) from None
        except (sdk_errors.RunyardError, RuntimeError, OSError, ValueError) as exc:
            raise fail(_error_line(exc), json_mode=json_mode) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=Exit.INTERRUPTED, json_mode=json_mode) from None

    return wrapper


JSON_HELP = "Print only JSON on stdout (for scripts)."
