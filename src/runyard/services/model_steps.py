"""Model steps of ingestion pipelines, run on the trusted side.

A pipeline (``data.pipeline``) is cut into segments: runs of deterministic steps, which
are the user's code and run in the ingest sandbox (the ``pipeline_rows`` job), and model
steps (``extract``, ``classify``, ``normalize`` with a target or instructions, ``validate``),
which call a language model through ``services.llm`` under the ingesting key's principal
(its provider resolution, metering and the outbound-host policy) and so run here, where
the provider's key can be read — never in the sandbox, which has no network.

Rows travel between segments as JSON objects, each with its index in the request, so a
rejected row is reported against the row that was sent. A model step sends its rows in
batches (``batch_size`` rows per call, the answer a JSON object keyed by the row's index in
the batch) on a small thread pool (``concurrency`` calls at a time). A row whose answer is
missing or unusable is rejected with the step's error; a call that fails (timeout, 5xx
after retries, an answer that is not JSON) rejects its batch's rows with that error. When
*every* call of a step fails, the model is what is broken, not the data: the ingestion
fails with the call's code (502 ``llm_error`` / ``llm_invalid_response``, 504
``llm_timeout``) and nothing is stored.

Every call — its messages, answer, tokens, time and error — goes into a ``Trace`` that the
ingestion keeps in ``attributes.trace`` (the first ``MAX_TRACE_CALLS`` in full; the totals
count all of them). Tokens are metered into usage (``llm_tokens``) by ``LLMService``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from runyard.data.pipeline import PipelineError, Step, segments, validate
from runyard.data.types import column_name_error
from runyard.llm.prompts import render_prompt
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.llm import LLMService, ModelCallFailed, Provider

MAX_TRACE_CALLS = 100  # calls an ingestion keeps in full (a database row holds them)
MAX_TRACE_TEXT = 10_000  # characters of one message or answer kept in a trace
MAX_CELL_CHARS = 20_000  # characters of one value shown to the model
MAX_BATCH_CHARS = 100_000  # characters of rows one call shows the model (fewer rows than batch_size beyond)
DEFAULT_CONCURRENCY = 4
MAX_OPEN_FIELDS = 100  # fields the model may name when none are given
OPEN_FIELDS = ("(none given: choose the fields the text holds yourself, short snake_case names, the same names "
               "for every row)")

# (rows, the raw deterministic steps, the index of the first) -> (table, origin, failed rows)
Deterministic = Callable[[list[Any], list[Any], int], tuple[pa.Table, list[int], list[dict[str, Any]]]]


@dataclass
class Guidance:
    """What the model is told about the data, besides the rows: the request's description,
    schema definition and additional instructions, and the dataset's saved field definitions."""

    data_description: str | None = None
    schema_definition: dict[str, str] | None = None
    additional_instructions: str | None = None
    field_definitions: dict[str, str] | None = None


@dataclass
class Trace:
    """The model calls of one ingestion or preview (thread-safe: calls finish on a pool)."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    total_calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: dict[str, Any], usage: dict[str, Any] | None) -> None:
        with self._lock:
            self.total_calls += 1
            self.failed_calls += 1 if record.get("error") else 0
            self.prompt_tokens += int((usage or {}).get("prompt_tokens") or 0)
            self.completion_tokens += int((usage or {}).get("completion_tokens") or 0)
            self.ms += float(record.get("ms") or 0.0)
            if len(self.calls) < MAX_TRACE_CALLS:
                self.calls.append(record)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            calls = sorted(self.calls, key=lambda c: (c["step"], c["first_row"]))
            return {"calls": calls, "total_calls": self.total_calls, "failed_calls": self.failed_calls,
                    "calls_omitted": self.total_calls - len(calls), "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "total_tokens": self.prompt_tokens + self.completion_tokens, "ms": round(self.ms, 1)}

    def __bool__(self) -> bool:
        return self.total_calls > 0


def _clip(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TRACE_TEXT:
        return text[:MAX_TRACE_TEXT] + f"… ({len(text) - MAX_TRACE_TEXT} more characters)"
    return text


def _cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    return value


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as JSON would carry them (dates and timestamps as RFC 3339 strings)."""
    return orjson.loads(orjson.dumps(rows, default=str, option=orjson.OPT_NON_STR_KEYS))


def _lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"- {name}: {description or '(no description)'}" for name, description in mapping.items())


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


class ModelSteps:
    def __init__(self, llm: LLMService, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.llm = llm
        self.concurrency = max(1, concurrency)

    # -- submit-time checks ---------------------------------------------------------------------
    def check(self, principal: Principal, raw: Any, guidance: Guidance | None = None) -> list[Step]:
        """The pipeline's model steps, each with a provider that resolves for this key (409
        ``llm_not_configured`` when none is configured, 404 for a provider it names that does
        not exist) and, for ``extract``, fields to fill. Raised before anything is saved."""
        try:
            steps = [s for s in validate(raw) if s.model]
        except PipelineError as exc:
            raise ValidationFailed(str(exc), code="invalid_pipeline",
                                   details={"field": "options.pipeline", "step": exc.step}) from None
        for step in steps:
            self.llm.resolve(principal, step.args["provider"])
        return steps

    # -- running ---------------------------------------------------------------------------------
    def run_rows(self, principal: Principal, rows: list[Any], raw: list[Any], deterministic: Deterministic,
                 *, guidance: Guidance | None = None, trace: Trace | None = None, ref_id: str | None = None,
                 first_index: int = 0) -> tuple[pa.Table, list[int], list[dict[str, Any]]]:
        """``rows`` through the whole pipeline, segment after segment: the table that came out,
        each of its rows' index in ``rows``, and the rows rejected (``{index, row, errors}``).
        ``first_index``: the index of ``raw``'s first step (the rest of a pipeline whose
        beginning already ran)."""
        from runyard.data.coerce import coerce_rows

        guidance = guidance or Guidance()
        trace = trace if trace is not None else Trace()
        current: list[Any] = list(rows)
        origin = list(range(len(rows)))
        failed: list[dict[str, Any]] = []
        table: pa.Table | None = None
        for is_model, first, steps in segments(raw, first_index=first_index):
            if table is not None:
                current, table = _jsonable(table.to_pylist()), None
            if not is_model:
                table, kept, rejected = deterministic(current, steps, first)
                failed += [{"index": origin[f["index"]], "row": rows[origin[f["index"]]], "errors": f["errors"]}
                           for f in rejected]
                origin = [origin[k] for k in kept]
                continue
            step = validate(steps, first_index=first)[0]
            dicts = [r if isinstance(r, dict) else {} for r in current]
            out, bad = self.run_step(principal, step, dicts, guidance, trace, ref_id=ref_id)
            failed += [{"index": origin[p], "row": rows[origin[p]],
                        "errors": {"pipeline": f"step {step.index} ({step.kind}): {message}"}}
                       for p, message in sorted(bad.items())]
            current = [out[p] for p in range(len(dicts)) if p not in bad]
            origin = [origin[p] for p in range(len(dicts)) if p not in bad]
        if table is None:
            coerced = coerce_rows(current, [], on_error="skip")
            dropped = {f["index"] for f in coerced.failed}
            failed += [{"index": origin[f["index"]], "row": rows[origin[f["index"]]], "errors": f["errors"]}
                       for f in coerced.failed]
            origin = [o for p, o in enumerate(origin) if p not in dropped]
            table = coerced.table
            if table.num_rows != len(origin):  # no columns at all: nothing to store
                table, origin = pa.table({}), []
        failed.sort(key=lambda f: f["index"])
        return table, origin, failed

    def run_step(self, principal: Principal, step: Step, rows: list[dict[str, Any]], guidance: Guidance,
                 trace: Trace, *, ref_id: str | None = None) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """One model step over ``rows``: the rows as the step leaves them (same positions) and
        the positions it rejects with their message. Raises ``ModelCallFailed`` when every call
        failed (nothing could be processed)."""
        provider = self.llm.resolve(principal, step.args["provider"])
        assert provider is not None
        batches = self._batches(step, rows)
        out = [dict(r) for r in rows]
        bad: dict[int, str] = {}
        fields = self.extract_fields(step, guidance) if step.kind == "extract" else {}
        errors: list[ModelCallFailed] = []
        lock = threading.Lock()

        def one(batch: tuple[int, list[dict[str, Any]]]) -> None:
            start, chunk = batch
            try:
                answers = self._call(principal, provider, step, chunk, start, guidance, trace, ref_id)
            except ModelCallFailed as exc:
                with lock:
                    errors.append(exc)
                    for k in range(len(chunk)):
                        bad[start + k] = f"the model call failed: {exc.message}"
                return
            for k, row in enumerate(chunk):
                try:
                    changes = self._apply(step, row, answers.get(str(k), _MISSING), fields)
                except ValueError as exc:
                    with lock:
                        bad[start + k] = str(exc)
                    continue
                if step.kind == "extract" and step.args["replace"]:
                    out[start + k] = changes  # the row becomes the fields alone
                else:
                    out[start + k].update(changes)

        if len(batches) <= 1 or self.concurrency == 1:
            for batch in batches:
                one(batch)
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches)),
                                    thread_name_prefix="model-step") as pool:
                list(pool.map(one, batches))
        if batches and len(errors) == len(batches):
            first = errors[0]
            raise ModelCallFailed(f"pipeline step {step.index} ({step.kind}): every model call failed, nothing "
                                  f"was stored: {first.message}", code=first.code, status=first.status,
                                  details={**(first.details or {}), "step": step.index})
        return out, bad

    def _call(self, principal: Principal, provider: Provider, step: Step, chunk: list[dict[str, Any]], start: int,
              guidance: Guidance, trace: Trace, ref_id: str | None) -> dict[str, Any]:
        messages = self._messages(step, chunk, guidance)
        record: dict[str, Any] = {"object": "llm_call", "step": step.index, "kind": step.kind, "first_row": start,
                                  "rows": len(chunk), "provider": provider.name}
        began = time.monotonic()
        try:
            answer = self.llm.chat(principal, f"pipeline_{step.kind}", messages, provider=provider,
                                   model=step.args["model"], json_answer=True, ref_id=ref_id)
        except ModelCallFailed as exc:
            trace.add({**record, "model": step.args["model"] or provider.default_model,
                       "messages": [{**m, "content": _clip(m["content"])} for m in messages],
                       "response": _clip((exc.details or {}).get("response")), "usage": None,
                       "ms": round((time.monotonic() - began) * 1000, 1), "error": {"code": exc.code,
                                                                                   "message": exc.message}}, None)
            raise
        t = answer.trace
        found = answer.parsed.get("rows") if isinstance(answer.parsed, dict) else None
        # An answer of the wrong shape is as unusable as one that is not JSON.
        error = None if isinstance(found, dict) else ModelCallFailed(
            f'the model\'s answer (pipeline_{step.kind}) has no "rows" object', code="llm_invalid_response",
            details={"provider": provider.name, "response": str(t["response"])[:500]})
        trace.add({**record, "model": t["model"], "messages": [{**m, "content": _clip(m["content"])}
                                                              for m in t["messages"]],
                   "response": _clip(t["response"]), "usage": t["usage"], "ms": t["ms"], "attempts": t["attempts"],
                   **({"error": {"code": error.code, "message": error.message}} if error else {})}, t["usage"])
        if error is not None:
            raise error
        assert isinstance(found, dict)
        return found

    @staticmethod
    def _shown(step: Step, row: dict[str, Any]) -> Any:
        """What the model is shown of one row: the columns the step reads (long values cut)."""
        args = step.args
        if step.kind == "classify":
            return _cell(row.get(args["column"]))
        columns = args["from"] if step.kind == "extract" else args["columns"]
        if not columns:  # extract without from, validate without columns: the whole row
            return {c: _cell(v) for c, v in row.items()}
        return {c: _cell(row.get(c)) for c in columns}

    def _batches(self, step: Step, rows: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
        """``batch_size`` rows per call, fewer when their text would pass ``MAX_BATCH_CHARS``
        (a row is always sent, alone if it must)."""
        size = step.args["batch_size"]
        batches: list[tuple[int, list[dict[str, Any]]]] = []
        start = 0
        while start < len(rows):
            end, chars = start, 0
            while end < len(rows) and end - start < size:
                cost = len(json.dumps(self._shown(step, rows[end]), ensure_ascii=False, default=str))
                if end > start and chars + cost > MAX_BATCH_CHARS:
                    break
                chars += cost
                end += 1
            batches.append((start, rows[start:end]))
            start = end
        return batches

    def _messages(self, step: Step, chunk: list[dict[str, Any]], guidance: Guidance) -> list[dict[str, str]]:
        args = step.args
        instructions = "\n".join(x for x in (args["instructions"], guidance.additional_instructions) if x) \
            or "(none)"
        description = guidance.data_description or "(not given)"
        rows = json.dumps({str(k): self._shown(step, r) for k, r in enumerate(chunk)}, ensure_ascii=False, default=str)
        if step.kind == "extract":
            fields = self.extract_fields(step, guidance)
            listed = _lines(fields) if fields else OPEN_FIELDS
            user = render_prompt("pipeline_extract.user", data_description=description, fields=listed,
                                 instructions=instructions, rows=rows)
        elif step.kind == "classify":
            user = render_prompt("pipeline_classify.user", data_description=description,
                                 labels=json.dumps(args["labels"], ensure_ascii=False), instructions=instructions,
                                 rows=rows)
        elif step.kind == "normalize":
            target = _lines(args["target"]) if args["target"] else "(none listed: use the usual canonical forms)"
            user = render_prompt("pipeline_normalize.user", data_description=description, target=target,
                                 instructions=instructions, rows=rows)
        else:  # validate
            user = render_prompt("pipeline_validate.user", data_description=description,
                                 instructions=instructions, rows=rows)
        return [{"role": "system", "content": render_prompt(f"pipeline_{step.kind}.system")},
                {"role": "user", "content": user}]

    @staticmethod
    def extract_fields(step: Step, guidance: Guidance) -> dict[str, str]:
        """The fields ``extract`` fills: its own, else the request's schema definition, else the
        dataset's saved field definitions; none: the model names them."""
        return dict(step.args["fields"] or guidance.schema_definition or guidance.field_definitions or {})

    @staticmethod
    def _apply(step: Step, row: dict[str, Any], answer: Any, fields: dict[str, str]) -> dict[str, Any]:
        """The values ``answer`` gives ``row`` (ValueError: the row is rejected, saying why).
        ``fields``: those ``extract`` fills (none: the model named them)."""
        if answer is _MISSING:
            raise ValueError("the model gave no answer for this row")
        args = step.args
        if step.kind == "classify":
            if answer not in args["labels"]:
                raise ValueError(f"the model's label {str(answer)[:100]!r} is not one of the labels")
            return {args["into"]: answer}
        if step.kind == "validate":
            if not isinstance(answer, dict) or not isinstance(answer.get("valid"), bool):
                raise ValueError('the model\'s answer for this row has no "valid": true/false')
            if not answer["valid"]:
                raise ValueError(f"invalid: {str(answer.get('reason') or 'no reason given')[:500]}")
            return {}
        if not isinstance(answer, dict):
            raise ValueError("the model's answer for this row is not an object")
        if step.kind == "extract":
            values: dict[str, Any] = {}
            if not fields:  # the model chose the fields: each must be a column name
                if len(answer) > MAX_OPEN_FIELDS:
                    raise ValueError(f"the model gave more than {MAX_OPEN_FIELDS} fields")
                for name in answer:
                    problem = column_name_error(name)
                    if problem:
                        raise ValueError(f"the model's field {str(name)[:100]!r}: {problem}")
            for name in fields or answer:
                value = answer.get(name)
                if not _scalar(value):
                    raise ValueError(f"the model's value for field {name!r} is not a string, number or boolean")
                values[name] = value
            return values
        # normalize
        changes: dict[str, Any] = {}
        for column in args["columns"]:
            if row.get(column) is None:
                continue
            if column not in answer:
                raise ValueError(f"the model gave no value for column {column!r}")
            value = answer[column]
            if value is not None and not isinstance(value, str):
                raise ValueError(f"the model's value for column {column!r} is not text")
            if args["target"] and value is not None and value not in args["target"]:
                raise ValueError(f"the model's value {value[:100]!r} for column {column!r} is not one of the "
                                 "canonical values")
            changes[column] = value
        return changes


_MISSING = object()
