"""Chunked, deterministic generation: plan once, then produce fixed-size blocks.

Blocks of :data:`~runyard.synth.seeding.BLOCK_ROWS` rows are the unit of randomness.
Every block is independent, so blocks may be generated on several threads; results
are always consumed in block order, which keeps the output byte-identical whatever
the worker count or the (smaller) chunk size used for streaming.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .errors import GenerationError, TemplateError
from .generators.base import BlockContext, PlanContext
from .generators.formula import FormulaRunner, validate_formulas
from .generators.numeric import Constant
from .seeding import BLOCK_ROWS, KeyedPermutation, normalize_seed
from .template import Field, Template, parse_template

MAX_COUNT = 1_000_000_000
PREVIEW_ROWS = 3
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Plan:
    """Everything fixed before the first byte: validated fields, types, permutations."""

    template: Template
    version: int
    seed: int
    count: int
    context: PlanContext
    schema: pa.Schema
    permutations: dict[str, KeyedPermutation | None] = field(default_factory=dict)
    has_formula: bool = False

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.template.fields

    @property
    def block_count(self) -> int:
        return math.ceil(self.count / BLOCK_ROWS)


def apply_overrides(template: Template, overrides: Mapping[str, Any] | None) -> Template:
    """Fix fields to constants or swap their generator for one request.

    A mapping value with a ``generator`` key is a replacement spec; anything else is a
    constant. The result is re-parsed, so formulas are re-checked against the new types.
    """
    if not overrides:
        return template
    if not isinstance(overrides, Mapping):
        raise TemplateError("overrides must be an object of field name → value or generator spec")
    document = template.to_dict()
    by_name = {f["name"]: i for i, f in enumerate(document["fields"])}
    for name, value in overrides.items():
        if name not in by_name:
            raise TemplateError("override names a field the template does not have", field=name)
        if isinstance(value, Mapping) and "generator" in value:
            spec = {**value, "name": name}
        elif isinstance(value, str | int | float | bool) or value is None:
            spec = {"name": name, "generator": Constant.name, "value": value}
        else:
            raise TemplateError("override must be a constant or an object with 'generator'", field=name)
        document["fields"][by_name[name]] = spec
    return parse_template(document)


def plan_generation(
    template: Template,
    *,
    count: int,
    seed: int | str | None = None,
    version: int = 1,
    overrides: Mapping[str, Any] | None = None,
    resolver: Any = None,
    _depth: int = 0,
) -> Plan:
    """Validate a request completely; every refusal happens here, before any output."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise GenerationError(f"count must be an integer between 0 and {MAX_COUNT}", code="invalid_count")
    try:
        seed_value = normalize_seed(seed)
    except ValueError as exc:
        raise GenerationError(str(exc), code="invalid_seed") from None
    template = apply_overrides(template, overrides)
    context = PlanContext(seed=seed_value, version=version, count=count, resolver=resolver,
                          seeding=template.seeding, specs={f.name: f.spec.stream_key for f in template.fields})
    context.shared["reference-depth"] = _depth
    for f in template.fields:
        f.generator.prepare(context, f.spec.unique)
    types = {f.name: f.generator.output_type(context) for f in template.fields}
    if any(f.spec.generator == "reference" for f in template.fields):
        # Reference types are only known now; formulas over them are re-bound.
        for name, dtype in validate_formulas(template.fields, types).items():
            context.shared[("formula-type", name)] = dtype
            types[name] = dtype
    permutations: dict[str, KeyedPermutation | None] = {}
    for f in template.fields:
        if not f.spec.unique:
            continue
        gen = f.generator
        if gen.unique_by_construction:
            permutations[f.name] = None
            continue
        space = gen.unique_space(context)
        if space is None:
            raise TemplateError(f"unique is not supported by generator '{gen.name}'", field=f.name, option="unique")
        if count > space:
            raise GenerationError(
                f"field '{f.name}' is unique but its generator has only {space:,} distinct values; "
                f"{count:,} rows were requested",
                code="unique_space_too_small", field=f.name, available=space, requested=count,
            )
        permutations[f.name] = KeyedPermutation(
            min(space, KeyedPermutation.MAX_SIZE),
            context.stream(f"unique:{f.name}", 0, "unique-permutation", spec_of=f.name))
    schema = pa.schema([pa.field(f.name, types[f.name], nullable=True) for f in template.fields])
    return Plan(template=template, version=version, seed=seed_value, count=count, context=context,
                schema=schema, permutations=permutations,
                has_formula=any(f.spec.generator == "formula" for f in template.fields))


def _with_nulls(ctx: BlockContext, f: Field, values: pa.Array) -> pa.Array:
    rate = f.spec.null_rate
    if rate <= 0 or pa.types.is_null(values.type):
        return values
    mask = ctx.rng(f.name, "null").random(ctx.n) < rate
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def generate_block(plan: Plan, block: int, runner: FormulaRunner | None = None) -> pa.RecordBatch:
    row_start = block * BLOCK_ROWS
    n = min(BLOCK_ROWS, plan.count - row_start)
    ctx = BlockContext(plan=plan.context, block=block, row_start=row_start, n=n, formula_runner=runner)
    arrays: list[pa.Array] = []
    for f, schema_field in zip(plan.fields, plan.schema, strict=True):
        gen = f.generator
        values = gen.generate_unique(ctx, plan.permutations[f.name]) if f.spec.unique else gen.generate(ctx)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if values.type != schema_field.type:
            values = values.cast(schema_field.type)
        values = _with_nulls(ctx, f, values)
        ctx.columns[f.name] = values
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, schema=plan.schema)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map`` over a thread pool, yielding in input order with bounded look-ahead."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth") as pool:
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def default_workers() -> int:
    import os

    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def iter_blocks(plan: Plan, *, workers: int = 1,
                transform: Callable[[pa.RecordBatch, int], T] | None = None) -> Iterator[T]:
    """Blocks in order; ``transform(batch, row_start)`` runs on the worker thread too."""
    runner = FormulaRunner() if plan.has_formula else None

    def make(block: int) -> Any:
        batch = generate_block(plan, block, runner)
        return transform(batch, block * BLOCK_ROWS) if transform is not None else batch

    try:
        yield from ordered_map(make, range(plan.block_count), workers)
    finally:
        if runner is not None:
            runner.close()


def iter_batches(plan: Plan, *, workers: int = 1, chunk_rows: int = BLOCK_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``chunk_rows`` rows, in order."""
    for batch in iter_blocks(plan, workers=workers):
        yield from split(batch, chunk_rows)


def split(batch: pa.RecordBatch, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    if chunk_rows >= batch.num_rows:
        yield batch
        return
    for offset in range(0, batch.num_rows, chunk_rows):
        yield batch.slice(offset, chunk_rows)


def read_column(plan: Plan, name: str) -> pa.Array:
    """One column of a whole generation (used to materialise referenced populations)."""
    index = plan.template.field_names.index(name)
    chunks = [batch.column(index) for batch in iter_blocks(plan)]
    if not chunks:
        return pa.array([], plan.schema.field(name).type)
    return pa.concat_arrays(chunks)


def generate_table(template: Template, count: int, **kwargs: Any) -> pa.Table:
    """Convenience: a whole generation as one Arrow table (for small counts and tests)."""
    workers = kwargs.pop("workers", 1)
    plan = plan_generation(template, count=count, **kwargs)
    return pa.Table.from_batches(list(iter_blocks(plan, workers=workers)), schema=plan.schema)


def preview_rows(template: Template, *, seed: int | str | None = None, version: int = 1,
                 overrides: Mapping[str, Any] | None = None, resolver: Any = None,
                 rows: int = PREVIEW_ROWS) -> tuple[int, list[dict[str, Any]]]:
    """The first rows of the generation with this seed, as JSON-ready dicts."""
    from .formats.jsonfmt import json_ready

    plan = plan_generation(template, count=rows, seed=seed, version=version, overrides=overrides,
                           resolver=resolver)
    table = pa.Table.from_batches(list(iter_blocks(plan)), schema=plan.schema)
    return plan.seed, [{k: json_ready(v) for k, v in row.items()} for row in table.to_pylist()]
