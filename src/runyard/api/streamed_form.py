"""A multipart form whose one file streams straight into a sink, never into memory or a spool.

Starlette's form parser spools each file to a temporary file first; a workspace file of
gigabytes would then be written twice. Here the file part's bytes go, in chunks of about
a MiB, to ``sink.write`` (run off the event loop) as they arrive; the small text fields
are collected (each at most ``MAX_FIELD_BYTES``). Malformed forms are 400
``invalid_multipart``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from runyard.api.offload import in_thread
from runyard.services.errors import ValidationFailed

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 20
MAX_HEADER_BYTES = 16 * 1024  # a part's header line (Content-Disposition and the like)
FLUSH_BYTES = 1 << 20


class Sink(Protocol):
    def write(self, chunk: bytes) -> None: ...


@dataclass
class StreamedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None  # the file part's own file name (None: no file part came)
    content_type: str | None = None  # the file part's Content-Type


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"the multipart form is malformed: {message}", code="invalid_multipart")


async def stream_form(request: Request, sink: Sink, *, file_field: str = "file") -> StreamedForm:
    """Read the form: field ``file_field`` (a file part) into ``sink``, the text fields returned."""
    media, params = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data" or not params.get(b"boundary"):
        raise ValidationFailed("send a multipart/form-data body (fields: name, file)", code="invalid_multipart")
    form = StreamedForm()
    pending = bytearray()  # file bytes not yet handed to the sink
    state: dict[str, object] = {"name": None, "file": False, "data": bytearray(), "headers": {}}
    header_name = bytearray()
    header_value = bytearray()
    seen_file = False
    ended = False  # the closing boundary came: the body was not cut short

    def on_end() -> None:
        nonlocal ended
        ended = True

    def on_part_begin() -> None:
        state.update(name=None, file=False, data=bytearray(), headers={})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])
        if len(header_name) > MAX_HEADER_BYTES:
            raise _invalid(f"a part's header is longer than {MAX_HEADER_BYTES} bytes")

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])
        if len(header_value) > MAX_HEADER_BYTES:
            raise _invalid(f"a part's header is longer than {MAX_HEADER_BYTES} bytes")

    def on_header_end() -> None:
        state["headers"][bytes(header_name).lower()] = bytes(header_value)  # type: ignore[index]
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal seen_file
        headers: dict[bytes, bytes] = state["headers"]  # type: ignore[assignment]
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise _invalid("a part has no name in its Content-Disposition")
        name = options[b"name"].decode("utf-8", "replace")
        state["name"] = name
        if name == file_field:
            if seen_file:
                raise _invalid(f"more than one {file_field!r} part")
            seen_file = True
            state["file"] = True
            form.filename = options.get(b"filename", b"").decode("utf-8", "replace") or None
            form.content_type = headers.get(b"content-type", b"").decode("latin-1") or None
        elif len(form.fields) >= MAX_FIELDS:
            raise _invalid(f"more than {MAX_FIELDS} fields")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["file"]:
            pending.extend(data[start:end])
            return
        buffer: bytearray = state["data"]  # type: ignore[assignment]
        buffer.extend(data[start:end])
        if len(buffer) > MAX_FIELD_BYTES:
            raise _invalid(f"field {state['name']!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if not state["file"]:
            buffer: bytearray = state["data"]  # type: ignore[assignment]
            try:
                form.fields[str(state["name"])] = buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid(f"field {state['name']!r} is not UTF-8 text") from None

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_end": on_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if len(pending) >= FLUSH_BYTES:
                data = bytes(pending)
                pending.clear()
                await in_thread(sink.write, data)
        parser.finalize()
    except MultipartParseError as exc:
        raise _invalid(str(exc)) from None
    if not ended:
        raise _invalid("the body ended before the form's closing boundary")
    if pending:
        await in_thread(sink.write, bytes(pending))
    return form
