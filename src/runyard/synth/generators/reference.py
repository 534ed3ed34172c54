"""reference: values drawn from another template's field or a saved set's column.

A template reference regenerates the referenced field for rows [0, count) with the same
seed (or the one given), so an ``orders.customer_id`` always points at ids that the
``customers`` generation with that seed and count really contains. The library does not
know where templates and sets live: the caller passes a :class:`ReferenceResolver`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import GenerationError
from ..options import Options
from .base import BlockContext, FieldGenerator, PlanContext

# A referenced population is materialised once per generation; this bounds its memory.
MAX_REFERENCED_ROWS = 5_000_000
MAX_DEPTH = 4


class ReferenceResolver(Protocol):
    def template(self, ref: str, version: int | None) -> tuple[Any, int]:
        """(parsed Template, its version number); raise KeyError when it does not exist."""
        ...

    def set_column(self, name: str, column: str, version: int | None) -> pa.Array:
        """The column of a saved set; raise KeyError when the set or column does not exist."""
        ...


class Reference(FieldGenerator):
    name = "reference"

    def configure(self, opts: Options) -> None:
        self.template_ref = opts.str("template", None)
        self.set_ref = opts.str("set", None)
        if (self.template_ref is None) == (self.set_ref is None):
            raise opts.error("template", "give exactly one of 'template' (with 'field') or 'set' (with 'column')")
        self.version = opts.int("version", None, min=1)
        if self.template_ref is not None:
            self.target = opts.str("field")
            self.count = opts.int("count", min=1, max=MAX_REFERENCED_ROWS)
            seed = opts.raw("seed", None)
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
                raise opts.error("seed", "must be an integer or a string")
            self.seed = seed
        else:
            self.target = opts.str("column")

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.null()  # known once resolved, see output_type

    def check_unique_supported(self) -> None:
        pass  # depends on the referenced values; checked at plan time

    def _key(self) -> tuple[str, str]:
        return ("reference", self.field)

    def prepare(self, plan: PlanContext, unique: bool) -> None:
        if plan.resolver is None:
            raise GenerationError(f"field '{self.field}': references need a template/set resolver",
                                  code="reference_unresolved", field=self.field)
        depth = plan.shared.get("reference-depth", 0)
        if depth >= MAX_DEPTH:
            raise GenerationError(f"field '{self.field}': references nest deeper than {MAX_DEPTH} levels",
                                  code="reference_unresolved", field=self.field)
        try:
            values = self._resolve(plan, depth)
        except KeyError as exc:
            what = f"template '{self.template_ref}'" if self.template_ref else f"set '{self.set_ref}'"
            raise GenerationError(f"field '{self.field}': {what} or its '{self.target}' not found ({exc})",
                                  code="reference_not_found", field=self.field) from None
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        values = values.filter(pc.is_valid(values)) if values.null_count else values
        if len(values) == 0:
            raise GenerationError(f"field '{self.field}': the referenced values are empty",
                                  code="reference_empty", field=self.field)
        if unique and pc.count_distinct(values).as_py() != len(values):
            raise GenerationError(f"field '{self.field}': unique needs distinct referenced values",
                                  code="unique_space_too_small", field=self.field)
        plan.shared[self._key()] = values

    def _resolve(self, plan: PlanContext, depth: int) -> pa.Array:
        if self.set_ref is not None:
            return plan.resolver.set_column(self.set_ref, self.target, self.version)
        from ..pipeline import plan_generation, read_column

        template, version = plan.resolver.template(self.template_ref, self.version)
        if self.target not in template.field_names:
            raise KeyError(self.target)
        nested = plan_generation(template, count=self.count, seed=plan.seed if self.seed is None else self.seed,
                                 version=version, resolver=plan.resolver, _depth=depth + 1)
        return read_column(nested, self.target)

    def output_type(self, plan: PlanContext) -> pa.DataType:
        return plan.shared[self._key()].type

    def unique_space(self, plan: PlanContext) -> int | None:
        return len(plan.shared[self._key()])

    def generate(self, ctx: BlockContext) -> pa.Array:
        values: pa.Array = ctx.plan.shared[self._key()]
        pick = ctx.rng(self.field, "pick").integers(0, len(values), ctx.n, dtype=np.int64)
        return values.take(pa.array(pick))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return ctx.plan.shared[self._key()].take(pa.array(index))
