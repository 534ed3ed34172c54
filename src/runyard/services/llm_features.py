"""Model features over the data workspace, each under the caller's grants: a model only
ever sees the schemas and samples of datasets the caller's key can read.

- ``question_to_sql``: a natural-language question becomes one SQL query, checked by the
  same read-only guard as any query before anything runs (``POST /query`` with
  ``is_natural_language``).
- ``infer_description``: a dataset's description and field definitions, from the model
  when a provider is configured, else built deterministically from the column
  statistics (``source: "statistics"``).
- ``ask``: a question answered by the model running read-only queries (a ``run_sql``
  tool) under the caller's grants; events ``plan``, ``step`` (each query and what it
  saw), then ``answer`` or ``error`` (``POST /ask`` streams them, ``POST /autorag``
  answers the outcome at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from runyard.data.sql import QueryRejected, check_sql
from runyard.llm.prompts import render_prompt
from runyard.services.access import Principal
from runyard.services.datasets import DatasetService
from runyard.services.errors import DomainError, ValidationFailed
from runyard.services.llm import LLMService, ModelCallFailed, Provider

MAX_SAMPLE_ROWS = 20
MAX_CELL_CHARS = 200
MAX_SCHEMA_CHARS = 200_000
ASK_ROW_LIMIT = 50
ASK_MAX_STEPS = 6
RUN_SQL_TOOL = {"type": "function", "function": {
    "name": "run_sql", "description": "Run one read-only DuckDB SELECT over the listed datasets; returns columns "
                                      "and at most the first rows, or the error.",
    "parameters": {"type": "object", "properties": {"sql": {"type": "string", "description": "one SELECT"}},
                   "required": ["sql"]}}}


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    return value


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_text(datasets: list[dict[str, Any]]) -> str:
    """One line per dataset: ``"ns"."ds": col (type), …``."""
    lines = []
    for d in datasets:
        cols = ", ".join(f"{_quote(c['name'])} ({c['type']})" for c in d["columns"]) or "(no columns yet)"
        lines.append(f"- {_quote(d['namespace'])}.{_quote(d['name'])}: {cols}")
    return "\n".join(lines) or "(none)"


class ModelFeatures:
    def __init__(self, llm: LLMService, datasets: DatasetService, queries: Any = None) -> None:
        self.llm = llm
        self.datasets = datasets
        self.queries = queries  # services.queries.QueryService: runs ask's queries

    # -- natural-language query --------------------------------------------------------------------
    def _readable_schemas(self, principal: Principal, namespace: str | None,
                          dataset: str | None = None) -> tuple[list[dict[str, Any]], str]:
        readable = self.datasets.schema(principal, namespace)["datasets"]
        if dataset is not None:
            readable = [d for d in readable if d["name"] == dataset]
            if not readable:
                raise ValidationFailed(f"dataset {namespace}/{dataset} not found among the datasets this key can read",
                                       code="dataset_not_found", details={"namespace": namespace, "dataset": dataset})
        schemas = schema_text(readable)
        if len(schemas) > MAX_SCHEMA_CHARS:
            raise ValidationFailed("this key can read too many datasets to describe them all to the model: "
                                   "name a namespace (and a dataset)", code="too_many_datasets",
                                   details={"datasets": len(readable)})
        return readable, schemas

    def question_to_sql(self, principal: Principal, question: str, *, namespace: str | None = None,
                        dataset: str | None = None, provider: str | None = None,
                        model: str | None = None) -> tuple[str, dict[str, Any]]:
        """The SQL for ``question`` and the model call's trace. The prompt holds the schemas of
        the datasets this key can read (those of ``namespace`` when given, only ``dataset`` when
        that is given too) and no others; the answer must pass ``check_sql``."""
        chosen = self.llm.resolve(principal, provider)
        _, schemas = self._readable_schemas(principal, namespace, dataset)
        messages = [{"role": "system", "content": render_prompt("nl_to_sql.system")},
                    {"role": "user", "content": render_prompt("nl_to_sql.user", schemas=schemas,
                                                              namespace=namespace or "(none)", question=question)}]
        answer = self.llm.complete_json(principal, "nl_to_sql", messages, provider=chosen, model=model)
        sql = answer.parsed.get("sql", "")
        if sql is None:
            raise ValidationFailed("the model found no query answering this question: "
                                   + str(answer.parsed.get("explanation") or "no reason given"),
                                   code="question_unanswerable",
                                   details={"explanation": answer.parsed.get("explanation")})
        if not isinstance(sql, str) or not sql.strip():
            raise ModelCallFailed('the model\'s answer has no "sql" string', code="llm_invalid_response",
                                  details={"provider": chosen.name if chosen else None, "response": str(sql)[:500]})
        try:
            checked = check_sql(sql)
        except QueryRejected as exc:
            raise ValidationFailed(f"the model's SQL was refused, nothing ran: {exc.message}", code=exc.code,
                                   details={"sql": sql}) from None
        return checked, answer.trace

    # -- ask / autorag ------------------------------------------------------------------------------
    def prepare_ask(self, principal: Principal, provider: str | None = None) -> Provider:
        """The provider ``ask`` will use (409 ``llm_not_configured`` before anything streams)."""
        chosen = self.llm.resolve(principal, provider)
        assert chosen is not None
        return chosen

    def ask(self, principal: Principal, question: str, *, namespace: str | None = None,
            helper_prompt: str | None = None, provider: str | Provider | None = None, model: str | None = None,
            max_steps: int = ASK_MAX_STEPS) -> Iterator[dict[str, Any]]:
        """Events, in order: one ``plan``, a ``step`` per query the model ran (its SQL, the
        columns, the first rows, or the error it was given back), then ``answer`` (the text,
        every model call's trace) or ``error`` (``code``, ``message``). Queries run as the
        caller, through the read-only guard; nothing is saved."""
        # Refusals before any model call (no provider, a namespace this key cannot see) raise
        # from the first ``next``: an HTTP front end answers them as errors, not events.
        chosen = provider if isinstance(provider, Provider) else self.prepare_ask(principal, provider)
        readable, schemas = self._readable_schemas(principal, namespace)
        yield {"event": "plan", "question": question, "provider": chosen.name, "max_steps": max_steps,
               "datasets": [f'{d["namespace"]}.{d["name"]}' for d in readable]}
        helper = f"\nInstructions from the user: {helper_prompt}\n" if helper_prompt else ""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": render_prompt("ask.system", row_limit=ASK_ROW_LIMIT, max_steps=max_steps)},
            {"role": "user", "content": render_prompt("ask.user", schemas=schemas, namespace=namespace or "(none)",
                                                      helper=helper, question=question)}]
        traces: list[dict[str, Any]] = []
        steps = 0
        for _ in range(max_steps + 1):
            try:
                answer = self.llm.chat(principal, "ask", [dict(m) for m in messages], provider=chosen, model=model,
                                       tools=[RUN_SQL_TOOL] if steps < max_steps else None)
            except DomainError as exc:
                yield {"event": "error", "code": exc.code, "message": exc.message, "status": exc.status}
                return
            traces.append(answer.trace)
            result = answer.result
            if not result.tool_calls:
                text = (result.content or "").strip()
                if not text:
                    yield {"event": "error", "code": "llm_invalid_response", "status": 502,
                           "message": "the model gave neither an answer nor a query"}
                    return
                yield {"event": "answer", "answer": text, "steps": steps, "trace": traces}
                return
            messages.append({"role": "assistant", "content": result.content, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in result.tool_calls]})
            for call in result.tool_calls:
                steps += 1
                step = self._run_step(principal, call.name, call.arguments, namespace)
                yield {"event": "step", "index": steps, **step}
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.dumps({k: step[k] for k in ("columns", "rows", "truncated", "error")
                                                        if k in step}, default=str)})
        yield {"event": "error", "code": "llm_too_many_steps", "status": 502,
               "message": f"the model did not answer within {max_steps} queries"}

    def _run_step(self, principal: Principal, name: str, arguments: dict[str, Any],
                  namespace: str | None) -> dict[str, Any]:
        sql = arguments.get("sql")
        if name != "run_sql" or not isinstance(sql, str) or not sql.strip():
            return {"sql": sql if isinstance(sql, str) else None,
                    "error": {"code": "invalid_tool_call", "message": f"unknown tool {name!r} or no sql given"}}
        try:
            checked = check_sql(sql)
            out = self.queries.run(principal, query=checked, namespace=namespace, limit=ASK_ROW_LIMIT)
        except QueryRejected as exc:
            return {"sql": sql, "error": {"code": exc.code, "message": exc.message}}
        except DomainError as exc:
            return {"sql": sql, "error": {"code": exc.code, "message": exc.message}}
        return {"sql": checked, "columns": [c.get("name") for c in out.get("columns") or []],
                "rows": out.get("rows") or [], "row_count": out.get("row_count", 0),
                "truncated": bool(out.get("truncated"))}

    def autorag(self, principal: Principal, question: str, **kwargs: Any) -> dict[str, Any]:
        """``ask`` answered at once: the answer, the steps and the trace; a failure raises."""
        steps: list[dict[str, Any]] = []
        for event in self.ask(principal, question, **kwargs):
            kind = event.pop("event")
            if kind == "step":
                steps.append(event)
            elif kind == "answer":
                return {"object": "answer", "answer": event["answer"], "steps": steps, "trace": event["trace"]}
            elif kind == "error":
                raise DomainError(event["message"], code=event["code"], status=event["status"],
                                  details={"steps": steps} if steps else None)
        raise ModelCallFailed("the model gave no answer", code="llm_invalid_response")

    # -- descriptions ------------------------------------------------------------------------------
    def infer_description(self, principal: Principal, namespace: str, dataset: str, *,
                          sample: list[dict[str, Any]] | None = None, current_description: str | None = None,
                          current_schema: list[dict[str, Any]] | None = None, provider: str | None = None,
                          model: str | None = None) -> dict[str, Any]:
        view = self.datasets.get(principal, namespace, dataset)  # read access, fresh statistics
        columns: list[dict[str, Any]] = list(view["columns"])
        if current_schema:
            known = {c["name"] for c in columns}
            columns += [{"name": c["name"], "type": c.get("type", "unknown")} for c in current_schema
                        if c.get("name") not in known]
        description = current_description if current_description is not None else view.get("description") or ""
        return self._describe(principal, namespace, dataset, view["rows"], columns, description, sample,
                              provider=provider, model=model)

    def describe_sample(self, principal: Principal, sample: list[dict[str, Any]], *,
                        current_description: str | None = None, current_schema: dict[str, str] | None = None,
                        provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        """``infer_description`` for rows stored nowhere (DataLinks' ``/infer/description``):
        the columns and their statistics come from the sample itself."""
        columns = sample_columns(sample)
        known = {c["name"] for c in columns}
        columns += [{"name": name, "type": "unknown"} for name in current_schema or {} if name not in known]
        return self._describe(principal, "sample", "sample", len(sample), columns, current_description or "",
                              sample, provider=provider, model=model)

    def infer_sample_schema(self, principal: Principal, sample: list[dict[str, Any]], *,
                            current_schema: dict[str, str] | None = None, provider: str | None = None,
                            model: str | None = None) -> dict[str, Any]:
        """Each field of ``sample`` and its runyard type: from the model when a provider is
        configured (its answer checked: known fields, known types), else runyard's
        deterministic type inference (``source: "statistics"``)."""
        from runyard.data.types import COLUMN_TYPES

        columns = sample_columns(sample)
        inferred = {c["name"]: c["type"] for c in columns}
        chosen = self.llm.resolve(principal, provider, required=provider is not None)
        if chosen is None:
            return {"object": "inferred_schema", "source": "statistics", "provider": None, "model": None,
                    "schema": inferred, "trace": []}
        rows = [{k: _short(v) for k, v in r.items()} for r in sample[:MAX_SAMPLE_ROWS]]
        messages = [{"role": "system", "content": render_prompt("infer_schema.system",
                                                                types=", ".join(COLUMN_TYPES))},
                    {"role": "user", "content": render_prompt(
                        "infer_schema.user", columns=_column_lines(columns),
                        current_schema=json.dumps(current_schema or {}, ensure_ascii=False),
                        sample=json.dumps(rows, default=str, ensure_ascii=False) if rows else "(none given)")}]
        answer = self.llm.complete_json(principal, "infer_schema", messages, provider=chosen, model=model)
        given = answer.parsed.get("schema")
        if not isinstance(given, dict):
            raise ModelCallFailed('the model\'s answer lacks "schema" (an object of field: type)',
                                  code="llm_invalid_response",
                                  details={"provider": chosen.name, "response": json.dumps(answer.parsed)[:500]})
        # The model may refine a type, never invent a field or a type runyard does not have.
        schema = {name: given[name] if given.get(name) in COLUMN_TYPES else kind for name, kind in inferred.items()}
        return {"object": "inferred_schema", "source": "model", "provider": chosen.name,
                "model": answer.trace["model"], "schema": schema, "trace": [answer.trace]}

    def _describe(self, principal: Principal, namespace: str, dataset: str, row_count: int,
                  columns: list[dict[str, Any]], description: str, sample: list[dict[str, Any]] | None, *,
                  provider: str | None, model: str | None) -> dict[str, Any]:
        chosen = self.llm.resolve(principal, provider, required=provider is not None)
        if chosen is None:
            return {"object": "inferred_description", "source": "statistics", "provider": None, "model": None,
                    **statistics_description(namespace, dataset, row_count, columns, description), "trace": []}
        rows = [{k: _short(v) for k, v in r.items()} for r in (sample or [])[:MAX_SAMPLE_ROWS]]
        messages = [{"role": "system", "content": render_prompt("infer_description.system")},
                    {"role": "user", "content": render_prompt(
                        "infer_description.user", namespace=namespace, dataset=dataset, rows=row_count,
                        current_description=description or "(none)", columns=_column_lines(columns),
                        sample=json.dumps(rows, default=str, ensure_ascii=False) if rows else "(none given)")}]
        answer = self.llm.complete_json(principal, "infer_description", messages, provider=chosen, model=model)
        text = answer.parsed.get("data_description")
        definitions = answer.parsed.get("field_definitions")
        if not isinstance(text, str) or not text.strip() or not isinstance(definitions, dict):
            raise ModelCallFailed('the model\'s answer lacks "data_description" (text) or "field_definitions" '
                                  "(an object)", code="llm_invalid_response",
                                  details={"provider": chosen.name, "response": json.dumps(answer.parsed)[:500]})
        names = {c["name"] for c in columns}
        fields = {str(k): str(v).strip() for k, v in definitions.items() if k in names and v is not None}
        return {"object": "inferred_description", "source": "model", "provider": chosen.name,
                "model": answer.trace["model"], "data_description": text.strip(), "field_definitions": fields,
                "trace": [answer.trace]}


def sample_columns(sample: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Columns of rows given inline, as the statistics of stored columns read: runyard's
    inferred type, empty values, distinct values and a few samples."""
    from runyard.data.infer import infer_schema

    rows = [r for r in sample if isinstance(r, dict)]
    out: list[dict[str, Any]] = []
    for column in infer_schema(rows, sample=len(rows) or 1):
        values = [r.get(column.name) for r in rows]
        present = [v for v in values if v is not None]
        out.append({"name": column.name, "type": column.type, "null_count": len(values) - len(present),
                    "distinct_approx": len({json.dumps(v, sort_keys=True, default=str) for v in present}),
                    "samples": present[:3]})
    return out


def _column_lines(columns: list[dict[str, Any]]) -> str:
    return "\n".join(f"- {c['name']}: {c.get('type')}; {_stats_phrase(c)}" for c in columns) or "(no columns)"


def _stats_phrase(column: dict[str, Any]) -> str:
    parts = []
    if column.get("distinct_approx") is not None:
        parts.append(f"about {column['distinct_approx']} distinct values")
    if column.get("null_count"):
        parts.append(f"{column['null_count']} empty")
    if column.get("min") is not None and column.get("max") is not None:
        parts.append(f"from {_short(column['min'])} to {_short(column['max'])}")
    samples = [s for s in column.get("samples") or [] if s is not None][:3]
    if samples:
        parts.append("e.g. " + ", ".join(json.dumps(_short(s), default=str, ensure_ascii=False) for s in samples))
    return "; ".join(parts) or "no statistics"


def statistics_description(namespace: str, dataset: str, rows: int, columns: list[dict[str, Any]],
                           current: str = "") -> dict[str, Any]:
    """A description and field definitions built only from the column statistics: the
    same input gives the same text."""
    names = ", ".join(f"{c['name']} ({c.get('type')})" for c in columns) or "no columns yet"
    text = f'"{namespace}"."{dataset}" holds {rows} rows with {len(columns)} columns: {names}.'
    if current:
        text = f"{current.strip()} ({text})"
    fields = {c["name"]: f"Type {c.get('type')}; {_stats_phrase(c)}." for c in columns}
    return {"data_description": text, "field_definitions": fields}
