"""Reading JSON or multipart request bodies with errors in the envelope's terms."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from runyard.services.errors import ValidationFailed

MAX_JSON_BYTES = 60 * 1024 * 1024


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
        raise ValidationFailed("request body is too large", code="payload_too_large", status=413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses what the json module reads (integers beyond 64 bits, NaN):
        # the json module decides, and words the error when there is one.
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object", code="invalid_json")
    return body


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
                parsed = json.loads(value)
            except ValueError as exc:
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
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def pick(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}", details={"fields": sorted(unknown)})
    return body
