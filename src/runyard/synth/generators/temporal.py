"""date, datetime and time within a range, uniform or weighted towards recent values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from ..options import Options
from .base import BlockContext, FieldGenerator

EPOCH = dt.date(1970, 1, 1)
EPOCH_DT = dt.datetime(1970, 1, 1)
SKEWS = ("uniform", "recent")


class _Ranged(FieldGenerator):
    """Integers in [lo, hi] (days or seconds), uniform or with density rising towards hi."""

    lo: int
    hi: int

    def configure_skew(self, opts: Options) -> None:
        self.distribution = opts.str("distribution", "uniform", choices=SKEWS)
        if self.lo > self.hi:
            raise opts.error("min", "must not be after max")

    def ticks(self, ctx: BlockContext) -> np.ndarray:
        span = self.hi - self.lo + 1
        u = ctx.rng(self.field, "value").random(ctx.n)
        if self.distribution == "recent":
            # sqrt of a uniform has density 2x on [0, 1): later values are more likely.
            u = np.sqrt(u)
        return self.lo + np.minimum((u * span).astype(np.int64), span - 1)

    def value_space(self) -> int | None:
        return self.hi - self.lo + 1


class Date(_Ranged):
    name = "date"

    def configure(self, opts: Options) -> None:
        self.min = opts.date("min", dt.date(1970, 1, 1))
        self.max = opts.date("max", dt.date(2030, 12, 31))
        self.lo, self.hi = (self.min - EPOCH).days, (self.max - EPOCH).days
        self.configure_skew(opts)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.date32()

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(self.ticks(ctx).astype(np.int32), pa.int32()).cast(pa.date32())

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return pa.array((self.lo + index).astype(np.int32), pa.int32()).cast(pa.date32())


class DateTime(_Ranged):
    name = "datetime"

    def configure(self, opts: Options) -> None:
        self.min = opts.datetime("min", dt.datetime(2000, 1, 1))
        self.max = opts.datetime("max", dt.datetime(2030, 12, 31, 23, 59, 59))
        self.lo = int((self.min - EPOCH_DT).total_seconds())
        self.hi = int((self.max - EPOCH_DT).total_seconds())
        self.configure_skew(opts)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.timestamp("s")

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(self.ticks(ctx), pa.int64()).cast(pa.timestamp("s"))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return pa.array(self.lo + index, pa.int64()).cast(pa.timestamp("s"))


class Time(_Ranged):
    name = "time"

    def configure(self, opts: Options) -> None:
        self.min = opts.time("min", dt.time(0, 0, 0))
        self.max = opts.time("max", dt.time(23, 59, 59))
        self.lo = self.min.hour * 3600 + self.min.minute * 60 + self.min.second
        self.hi = self.max.hour * 3600 + self.max.minute * 60 + self.max.second
        self.configure_skew(opts)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.time32("s")

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(self.ticks(ctx).astype(np.int32), pa.int32()).cast(pa.time32("s"))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return pa.array((self.lo + index).astype(np.int32), pa.int32()).cast(pa.time32("s"))
