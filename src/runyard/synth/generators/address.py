"""address.*: street address, country, and coordinates consistent within a row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..locales import LocalePools, load_pools
from ..options import Options
from .base import BlockContext, FieldGenerator, mixed_radix
from .strings import as_text, join

MAX_BUILDING_NUMBER = 999
# Half-width of the box (degrees) around a known place that coordinates are spread over.
JITTER_DEGREES = 0.05


class StreetAddress(FieldGenerator):
    name = "address.street_address"

    def configure(self, opts: Options) -> None:
        self.pools: LocalePools = load_pools(self.locale)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def build(self, street_idx: np.ndarray, number: np.ndarray) -> pa.Array:
        street = self.pools.streets.take(pa.array(street_idx))
        num = as_text(number)
        return join(num, " ", street) if self.pools.number_before_street else join(street, " ", num)

    def generate(self, ctx: BlockContext) -> pa.Array:
        street = ctx.rng(self.field, "street").integers(0, len(self.pools.streets), ctx.n, dtype=np.int64)
        number = ctx.rng(self.field, "number").integers(1, MAX_BUILDING_NUMBER + 1, ctx.n, dtype=np.int64)
        return self.build(street, number)

    def value_space(self) -> int | None:
        return len(self.pools.streets) * MAX_BUILDING_NUMBER

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        street, number = mixed_radix(index, [len(self.pools.streets), MAX_BUILDING_NUMBER])
        return self.build(street, number + 1)


class _LocaleConstant(FieldGenerator):
    """The locale's own country: addresses of a locale are addresses in its country."""

    def configure(self, opts: Options) -> None:
        self.value = self.pick(load_pools(self.locale))

    def pick(self, pools: LocalePools) -> str:
        raise NotImplementedError

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.repeat(pa.scalar(self.value, pa.string()), ctx.n)

    def value_space(self) -> int | None:
        return 1


class Country(_LocaleConstant):
    name = "address.country"

    def pick(self, pools: LocalePools) -> str:
        return pools.country


class CountryCode(_LocaleConstant):
    name = "address.country_code"

    def pick(self, pools: LocalePools) -> str:
        return pools.country_code


class _Coordinate(FieldGenerator):
    """Points near real places of the locale's country; latitude and longitude of a row
    come from the same point (streams keyed by the ``address`` group)."""

    axis: int

    def configure(self, opts: Options) -> None:
        self.group = opts.str("address", "default")
        self.coords = load_pools(self.locale).coords
        if len(self.coords) == 0:
            raise opts.error(None, f"locale {self.locale} has no coordinates in the snapshot")

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.float64()

    def points(self, ctx: BlockContext) -> np.ndarray:
        cache_key = ("coords", self.group, self.locale)
        if cache_key not in ctx.cache:
            key = f"address:{self.group}"
            pick = ctx.rng(key, "place").integers(0, len(self.coords), ctx.n, dtype=np.int64)
            jitter = (ctx.rng(key, "jitter").random((ctx.n, 2)) - 0.5) * (2 * JITTER_DEGREES)
            points = self.coords[pick] + jitter
            points[:, 0] = np.clip(points[:, 0], -90, 90)
            points[:, 1] = (points[:, 1] + 180) % 360 - 180
            ctx.cache[cache_key] = np.round(points, 6)
        return ctx.cache[cache_key]

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(self.points(ctx)[:, self.axis], pa.float64())


class Latitude(_Coordinate):
    name = "address.latitude"
    axis = 0


class Longitude(_Coordinate):
    name = "address.longitude"
    axis = 1
