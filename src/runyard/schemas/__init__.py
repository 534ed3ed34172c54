"""The API's contracts: one pydantic model per request and response shape of each resource.

The API takes them as request bodies and ``response_model`` (so the OpenAPI document is
right by construction), the fast lane parses run creation with the same model, and
tests check that the SDK's models agree with them field by field. Services keep their
domain rules (a tool's name pattern, a schema's validity); these models state the
shapes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from runyard.services.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or a 400 ``validation_error`` naming each bad field (the same
    answer FastAPI's own body validation gives, see api/errors.py)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


def invalid(exc: ValidationError) -> ValidationFailed:
    errors = []
    first_field = None
    for err in exc.errors():
        if first_field is None and err.get("loc"):
            first_field = str(err["loc"][0])  # the request's own field, for details.field
        loc = ".".join(str(p) for p in err.get("loc", ()))
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": loc or "body", "message": message})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    details: dict[str, Any] = {"field": first_field or "body", "errors": errors}
    unknown = sorted(e["field"] for e in errors if e["message"] == "unknown field")
    if unknown:
        details["fields"] = unknown
        return ValidationFailed(f"unknown field(s): {', '.join(unknown)}", code="validation_error", details=details)
    return ValidationFailed(f"invalid request: {summary}", code="validation_error", details=details)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` written in place (for an OpenAPI
    ``requestBody`` given by hand, where a ``$ref`` into the model's own defs would dangle)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
