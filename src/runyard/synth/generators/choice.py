"""choice: one of a list of values, optionally weighted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..options import Options
from .base import BlockContext, FieldGenerator
from .numeric import constant_type


class Choice(FieldGenerator):
    name = "choice"

    def configure(self, opts: Options) -> None:
        values = opts.list("values", min_len=1)
        types = {constant_type(v) for v in values if v is not None}
        if any(isinstance(v, dict | list) for v in values):
            raise opts.error("values", "must hold strings, numbers or booleans")
        if types == {pa.int64(), pa.float64()}:
            types = {pa.float64()}
        if len(types) > 1:
            raise opts.error("values", "must all have the same type")
        self._type = types.pop() if types else pa.null()
        self.pool = pa.array(values, self._type)
        weights = opts.list("weights", None)
        self.cdf: np.ndarray | None = None
        if weights is not None:
            if len(weights) != len(values):
                raise opts.error("weights", f"must have one weight per value ({len(values)}), got {len(weights)}")
            if any(isinstance(w, bool) or not isinstance(w, int | float) or w < 0 for w in weights):
                raise opts.error("weights", "must be non-negative numbers")
            total = float(sum(weights))
            if total <= 0:
                raise opts.error("weights", "must not all be zero")
            self.cdf = np.cumsum(np.asarray(weights, dtype=np.float64)) / total

    @property
    def arrow_type(self) -> pa.DataType:
        return self._type

    def generate(self, ctx: BlockContext) -> pa.Array:
        u = ctx.rng(self.field, "value").random(ctx.n)
        if self.cdf is None:
            index = (u * len(self.pool)).astype(np.int64)
        else:
            index = np.minimum(np.searchsorted(self.cdf, u, side="right"), len(self.pool) - 1)
        return self.pool.take(pa.array(index))

    def value_space(self) -> int | None:
        return len(set(self.pool.to_pylist()))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        distinct = pa.array(list(dict.fromkeys(self.pool.to_pylist())), self._type)
        return distinct.take(pa.array(index))
