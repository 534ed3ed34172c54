"""/runs/{id}/expected, /comparison, /compare, /feedback — evaluating a run (services.expected,
services.run_comparison, services.feedback).

A file name in a path is matched as a path (``{filename:path}``) so that a name with a
slash, a ``..`` segment or an encoded slash reaches the service, which answers 400
``invalid_filename`` — never a route or a file of something else.
"""

from __future__ import annotations

import mimetypes
from typing import Any, BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from runyard.api.bodies import is_multipart, json_body, load_json
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.schemas import inline_schema, parse
from runyard.schemas.evaluation import (
    CompareRequest,
    ComparisonView,
    ExpectedCreate,
    ExpectedRename,
    ExpectedView,
    FeedbackUpdate,
    FeedbackView,
)
from runyard.services.errors import ValidationFailed
from runyard.services.expected import CHANGE_EXPECTED, MAX_EXPECTED_FILES

router = APIRouter(tags=["evaluation"], responses=error_responses(*AUTHENTICATED))
_EXPECTED_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": inline_schema(ExpectedCreate)},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "payload": {"type": "string", "description": "the JSON body (optional)"}},
        "additionalProperties": {"type": "string", "format": "binary"},
        "description": "each file part is stored as an expected file under its file name"}}}}}
_FILE_ANSWER = {200: {"description": "The expected file's bytes",
                      "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}


async def _expected_form(request: Request) -> tuple[dict[str, Any], list[tuple[str, BinaryIO]]]:
    """(the JSON of the ``payload`` field, the file parts as (file name, file))."""
    form = await request.form(max_files=MAX_EXPECTED_FILES, max_fields=20)
    body: dict[str, Any] = {}
    files: list[tuple[str, BinaryIO]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.append((value.filename or key, value.file))
        elif key == "payload":
            parsed = load_json(value.encode(), "form field 'payload'")
            if not isinstance(parsed, dict):
                raise ValidationFailed("form field 'payload' must be a JSON object", code="invalid_json",
                                       details={"field": "payload"})
            body = parsed
        else:
            raise ValidationFailed(f"unknown form field {key!r}: send 'payload' and files",
                                   details={"field": key})
    if not files:
        raise ValidationFailed("a multipart request needs at least one file part", code="missing_file",
                               details={"field": "file"})
    return body, files


# -- expected outputs ---------------------------------------------------------------------------
@router.get("/runs/{run_id}/expected", response_model=ExpectedView, responses=error_responses(404))
async def get_expected(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The expected output of the run's example (404 `expected_not_found` when none is set)."""
    return await in_thread(platform.expected.get, principal, run_id)


@router.post("/runs/{run_id}/expected", status_code=201, response_model=ExpectedView, openapi_extra=_EXPECTED_DOC,
             responses={200: {"description": "The example's expected output was updated"},
                        **error_responses(404, 409, 413, 415)})
async def set_expected(run_id: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    """Create or update the expected output of the run's example: copy the run's output
    (`copy_output`) and artifacts (`artifacts`), upload files (multipart), set `options`."""
    CHANGE_EXPECTED.check(principal)  # before a body is read
    if is_multipart(request):
        body, files = await _expected_form(request)
    else:
        body, files = await json_body(request), []
    spec = parse(ExpectedCreate, body)
    extra: dict[str, Any] = {"output": spec.output} if "output" in spec.model_fields_set else {}
    options = spec.options.model_dump() if spec.options is not None else None
    view, created = await in_thread(lambda: platform.expected.save(
        principal, run_id, copy_output=spec.copy_output, artifacts=spec.artifacts, options=options, files=files,
        **extra))
    return JSON(view, status_code=201 if created else 200)


@router.get("/runs/{run_id}/expected/{filename:path}", response_class=FileResponse,
            responses={**_FILE_ANSWER, **error_responses(404)})
async def download_expected(run_id: str, filename: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    view, path = await in_thread(platform.expected.file, principal, run_id, filename)
    media = view["content_type"] or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, filename=view["filename"], content_disposition_type="attachment",
                        headers={"X-Content-Type-Options": "nosniff", "ETag": f'"{view["sha256"]}"'})


@router.patch("/runs/{run_id}/expected/{filename:path}", response_model=ExpectedView,
              responses=error_responses(404, 409))
async def rename_expected(run_id: str, filename: str, body: ExpectedRename, platform: PlatformDep,
                          principal: PrincipalDep) -> dict:
    """Rename an expected file (409 `expected_file_exists` when the new name is taken)."""
    return await in_thread(platform.expected.rename, principal, run_id, filename, body.filename)


@router.delete("/runs/{run_id}/expected/{filename:path}", status_code=204, responses=error_responses(404))
async def delete_expected(run_id: str, filename: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.expected.delete_file, principal, run_id, filename)
    return Response(status_code=204)


# -- comparison ---------------------------------------------------------------------------------
@router.get("/runs/{run_id}/comparison", response_model=ComparisonView, responses=error_responses(404))
async def get_comparison(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The run against its example's expected output: field and file differences and a score
    in [0, 1] with its rule (404 `expected_not_found` when the example has none)."""
    return await in_thread(platform.comparison.comparison, principal, run_id)


@router.post("/runs/{run_id}/compare", response_model=ComparisonView, responses=error_responses(404))
async def compare(run_id: str, body: CompareRequest, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The run against another run (`run_id`: its output and artifacts as the expectation) or
    against a value (`expected`)."""
    given = body.model_fields_set
    if ("run_id" in given and body.run_id is not None) == ("expected" in given):
        raise ValidationFailed("give either run_id or expected", details={"field": "run_id"})
    options = body.options.model_dump() if body.options is not None else None
    if body.run_id is not None:
        return await in_thread(lambda: platform.comparison.compare(principal, run_id, other_run_id=body.run_id,
                                                                   options=options))
    return await in_thread(lambda: platform.comparison.compare(principal, run_id, expected=body.expected,
                                                               options=options))


# -- feedback -----------------------------------------------------------------------------------
@router.get("/runs/{run_id}/feedback", response_model=FeedbackView, responses=error_responses(404))
async def get_feedback(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The run's feedback (404 `feedback_not_found` when none was given)."""
    return await in_thread(platform.feedback.get, principal, run_id)


@router.patch("/runs/{run_id}/feedback", response_model=FeedbackView, responses=error_responses(404))
async def update_feedback(run_id: str, body: FeedbackUpdate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Set the fields given (a rating up/down or a score in [0, 1], comment, labels, corrected
    output); the others stay. A change reopens resolved feedback."""
    return await in_thread(platform.feedback.update, principal, run_id, body.model_dump(exclude_unset=True))


@router.delete("/runs/{run_id}/feedback", status_code=204, responses=error_responses(404))
async def clear_feedback(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.feedback.clear, principal, run_id)
    return Response(status_code=204)


@router.post("/runs/{run_id}/feedback/resolve", response_model=FeedbackView, responses=error_responses(404))
async def resolve_feedback(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Mark the run's feedback resolved (404 `feedback_not_found` when none was given)."""
    return await in_thread(platform.feedback.resolve, principal, run_id)
