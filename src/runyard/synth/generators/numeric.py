"""sequence, integer, float, boolean, constant and uuid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..options import Options
from .base import BlockContext, FieldGenerator, RandomBits128
from .strings import HEX, fixed_width

DISTRIBUTIONS = ("uniform", "normal", "lognormal", "exponential", "poisson", "zipf")
INT64_MAX = (1 << 63) - 1


class Sequence(FieldGenerator):
    name = "sequence"
    unique_by_construction = True

    def configure(self, opts: Options) -> None:
        self.start = opts.int("start", 1)
        self.step = opts.int("step", 1)
        if self.step == 0:
            raise opts.error("step", "must not be 0")

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.int64()

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(self.start + ctx.row_ids() * self.step, pa.int64())

    def generate_unique(self, ctx: BlockContext, permutation: Any) -> pa.Array:
        return self.generate(ctx)


class _Distributed(FieldGenerator):
    """Shared option handling for integer and float: a distribution plus clipping."""

    default_min: float | None = None
    default_max: float | None = None

    def configure(self, opts: Options) -> None:
        self.distribution = opts.str("distribution", "uniform", choices=DISTRIBUTIONS)
        self.min = opts.float("min", None)
        self.max = opts.float("max", None)
        d = self.distribution
        if d == "uniform":
            self.min = 0.0 if self.min is None else self.min
            self.max = (self.default_max if self.max is None else self.max)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise opts.error("min", f"must be <= max ({self.max})")
        if d in ("normal", "lognormal"):
            self.mean = opts.float("mean", 0.0)
            self.sigma = opts.float("sigma", 1.0, positive=True)
        elif d == "exponential":
            self.scale = opts.float("scale", 1.0, positive=True)
        elif d == "poisson":
            self.lam = opts.float("lam", 1.0, positive=True)
        elif d == "zipf":
            self.a = opts.float("a", 2.0)
            if self.a <= 1:
                raise opts.error("a", "must be > 1")

    def draw(self, ctx: BlockContext) -> np.ndarray:
        rng = ctx.rng(self.field, "value")
        n = ctx.n
        d = self.distribution
        if d == "uniform":
            return self.draw_uniform(rng, n)
        if d == "normal":
            values = rng.normal(self.mean, self.sigma, n)
        elif d == "lognormal":
            values = rng.lognormal(self.mean, self.sigma, n)
        elif d == "exponential":
            values = rng.exponential(self.scale, n)
        elif d == "poisson":
            values = rng.poisson(self.lam, n).astype(np.float64)
        else:
            values = rng.zipf(self.a, n).astype(np.float64)
        if self.min is not None or self.max is not None:
            values = np.clip(values, self.min, self.max)
        return values

    def draw_uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class Integer(_Distributed):
    name = "integer"
    default_max = 1000.0

    def configure(self, opts: Options) -> None:
        super().configure(opts)
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and not float(value).is_integer():
                raise opts.error(bound, "must be an integer")

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.int64()

    def draw_uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(int(self.min), int(self.max), n, dtype=np.int64, endpoint=True)

    def generate(self, ctx: BlockContext) -> pa.Array:
        values = self.draw(ctx)
        if values.dtype != np.int64:
            values = np.rint(values).astype(np.int64)
        return pa.array(values, pa.int64())

    def value_space(self) -> int | None:
        if self.min is None or self.max is None:
            return None
        return int(self.max) - int(self.min) + 1

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return pa.array(int(self.min) + index, pa.int64())


class Float(_Distributed):
    name = "float"
    default_max = 1.0

    def configure(self, opts: Options) -> None:
        super().configure(opts)
        self.decimals = opts.int("decimals", None, min=0, max=12)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.float64()

    def draw_uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.min, self.max, n)

    def generate(self, ctx: BlockContext) -> pa.Array:
        values = self.draw(ctx)
        if self.decimals is not None:
            values = np.round(values, self.decimals)
        return pa.array(values, pa.float64())

    def value_space(self) -> int | None:
        # Distinct values exist only on a grid: with decimals and both bounds.
        if self.decimals is None or self.min is None or self.max is None:
            return None
        scale = 10**self.decimals
        return int(np.floor(self.max * scale) - np.ceil(self.min * scale)) + 1

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        scale = 10**self.decimals
        values = (np.ceil(self.min * scale) + index) / scale
        return pa.array(np.round(values, self.decimals), pa.float64())


class Boolean(FieldGenerator):
    name = "boolean"

    def configure(self, opts: Options) -> None:
        self.probability = opts.float("probability", 0.5, min=0.0, max=1.0)

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.bool_()

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.array(ctx.rng(self.field, "value").random(ctx.n) < self.probability, pa.bool_())

    def value_space(self) -> int | None:
        return 2

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return pa.array(index == 1, pa.bool_())


def constant_type(value: Any) -> pa.DataType:
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()


class Constant(FieldGenerator):
    name = "constant"

    def configure(self, opts: Options) -> None:
        value = opts.raw("value", None)
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise opts.error("value", "must be a string, number, boolean or null")
        self.value = value
        self._type = constant_type(value)

    @property
    def arrow_type(self) -> pa.DataType:
        return self._type

    def generate(self, ctx: BlockContext) -> pa.Array:
        return pa.repeat(pa.scalar(self.value, self._type), ctx.n)

    def value_space(self) -> int | None:
        return 1


class Uuid(RandomBits128):
    """Version-4 UUIDs from the seeded stream (122 random bits: collisions are negligible)."""

    name = "uuid"

    def render(self, raw: np.ndarray) -> pa.Array:
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
        hexed = np.empty((len(raw), 32), dtype=np.uint8)
        hexed[:, 0::2] = HEX[raw >> 4]
        hexed[:, 1::2] = HEX[raw & 0x0F]
        out = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
        for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
            out[:, dst : dst + width] = hexed[:, src : src + width]
        return fixed_width(out)
