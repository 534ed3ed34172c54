"""Reading JSON or multipart request bodies with errors in the envelope's terms."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from runyard.services.errors import PayloadTooLarge, ValidationFailed

MAX_JSON_BYTES = 16 * 1024 * 1024
# Arrays/objects nested deeper than this are refused (``too_deep``): validating or storing
# them recursed until Python's stack ran out. 64 leaves room for any real schema or input.
MAX_JSON_DEPTH = 64


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def json_body(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    return parse_json_object(await request.body(), allow_empty=allow_empty)


def parse_json_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if not raw:
        if allow_empty:
            return {}
        raise ValidationFailed("request body must be a JSON object", code="invalid_json")
    if len(raw) > MAX_JSON_BYTES:
        raise too_large(MAX_JSON_BYTES)
    body = load_json(raw)
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object", code="invalid_json")
    return body


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes", details={"limit": limit})


def load_json(raw: bytes, what: str = "request body") -> Any:
    """A JSON value, refusing nesting beyond ``MAX_JSON_DEPTH`` and strings with lone surrogates."""
    try:
        value = orjson.loads(raw)
        checked_strings = True  # orjson refuses lone surrogates itself
    except orjson.JSONDecodeError:
        # orjson refuses what the json module reads (integers beyond 64 bits, NaN, lone
        # surrogates): the json module decides, and words the error when there is one.
        try:
            value = json.loads(raw)
        except RecursionError:
            raise _too_deep(what) from None
        except ValueError as exc:
            raise ValidationFailed(f"{what} is not valid JSON: {exc}", code="invalid_json") from exc
        checked_strings = False
    # The bracket count bounds the depth: a body with few brackets needs no walk.
    if not checked_strings or raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        check_json_value(value, what, strings=not checked_strings)
    return value


def check_json_value(value: Any, what: str, *, strings: bool = True) -> None:
    """Raise ``too_deep`` past ``MAX_JSON_DEPTH``, and (``strings``) ``invalid_unicode`` for
    a string (or key) that cannot be encoded as UTF-8, such as ``"\\ud800"``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if strings and not item.isascii():
                _check_encodable(item, what)
            continue
        if isinstance(item, dict):
            children: Any = item.values()
            if strings:
                for key in item:
                    if isinstance(key, str) and not key.isascii():
                        _check_encodable(key, what)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_JSON_DEPTH:
            raise _too_deep(what)
        stack.extend((child, depth + 1) for child in children)


def _too_deep(what: str) -> ValidationFailed:
    return ValidationFailed(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels", code="too_deep",
                            details={"max_depth": MAX_JSON_DEPTH})


def _check_encodable(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationFailed(
            f"{what} has a string that is not valid Unicode (a lone surrogate such as \\ud800 at "
            f"position {exc.start})", code="invalid_unicode") from None


async def multipart_body(request: Request, json_field: str) -> tuple[dict[str, Any], dict[str, tuple[str, BinaryIO]]]:
    """(the JSON object in ``json_field``, {field name: (filename, file)}) of a multipart form."""
    form = await request.form(max_files=100, max_fields=200)
    body: dict[str, Any] = {}
    files: dict[str, tuple[str, BinaryIO]] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files[key] = (value.filename or key, value.file)
        elif key == json_field:
            try:
                parsed = load_json(value.encode(), f"form field {json_field!r}")
            except ValidationFailed as exc:
                if exc.code != "invalid_json":
                    raise
                raise ValidationFailed(f"form field {json_field!r} is not valid JSON", code="invalid_json",
                                       details={"field": json_field}) from exc
            if not isinstance(parsed, dict):
                raise ValidationFailed(f"form field {json_field!r} must be a JSON object", code="invalid_json",
                                       details={"field": json_field})
            body.update(parsed)
        else:
            body[key] = _form_value(value)
    return body, files


def _form_value(value: str) -> Any:
    """Plain form fields: JSON when they parse as a JSON list/object/number/bool, else the string."""
    stripped = value.strip()
    if stripped[:1] in "[{" or stripped in ("true", "false", "null"):
        try:
            return load_json(stripped.encode(), "a form field")
        except ValidationFailed as exc:
            if exc.code != "invalid_json":
                raise
            return value
    return value


def pick(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}", details={"fields": sorted(unknown)})
    return body
