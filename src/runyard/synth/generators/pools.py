"""Generators that pick from one locale pool: city, street, region, postcode, company, job."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..locales import load_pools
from ..options import Options
from .base import BlockContext, FieldGenerator


class _PoolPick(FieldGenerator):
    pool_name: str

    def configure(self, opts: Options) -> None:
        self.pool: pa.Array = getattr(load_pools(self.locale), self.pool_name)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def generate(self, ctx: BlockContext) -> pa.Array:
        pick = ctx.rng(self.field, "value").integers(0, len(self.pool), ctx.n, dtype=np.int64)
        return self.pool.take(pa.array(pick))

    def value_space(self) -> int | None:
        return len(self.pool)

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return self.pool.take(pa.array(index))


class City(_PoolPick):
    name = "address.city"
    pool_name = "cities"


class Street(_PoolPick):
    name = "address.street"
    pool_name = "streets"


class Region(_PoolPick):
    name = "address.region"
    pool_name = "regions"


class Postcode(_PoolPick):
    name = "address.postcode"
    pool_name = "postcodes"


class Company(_PoolPick):
    name = "company.name"
    pool_name = "companies"


class JobTitle(_PoolPick):
    name = "company.job_title"
    pool_name = "jobs"
