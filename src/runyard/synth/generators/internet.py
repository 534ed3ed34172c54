"""internet.*: domain names, URLs, IPv4 and IPv6 addresses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..locales import load_pools
from ..options import Options
from .base import BlockContext, FieldGenerator, RandomBits128, mixed_radix
from .strings import HEX, fixed_width, join


class Domain(FieldGenerator):
    """``<name>.<tld>`` or ``<name>-<name>.<tld>`` from the locale's romanised family names."""

    name = "internet.domain"

    def configure(self, opts: Options) -> None:
        pools = load_pools(self.locale)
        names = [n for n in dict.fromkeys(pools.last_ascii.to_pylist()) if n]
        self.names = pa.array(names, pa.string())
        self.tlds = pools.tlds

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def build(self, first: np.ndarray, second: np.ndarray | None, tld: np.ndarray) -> pa.Array:
        head = self.names.take(pa.array(first))
        if second is not None:
            tail = self.names.take(pa.array(second))
            head = join(head, "-", tail)
        return join(head, ".", self.tlds.take(pa.array(tld)))

    def draw(self, ctx: BlockContext, purpose: str) -> pa.Array:
        n = ctx.n
        first = ctx.rng(self.field, purpose + "name").integers(0, len(self.names), n, dtype=np.int64)
        second = ctx.rng(self.field, purpose + "second").integers(0, len(self.names), n, dtype=np.int64)
        double = ctx.rng(self.field, purpose + "double").random(n) < 0.3
        tld = ctx.rng(self.field, purpose + "tld").integers(0, len(self.tlds), n, dtype=np.int64)
        single = self.build(first, None, tld)
        paired = self.build(first, second, tld)
        return pc.if_else(pa.array(double), paired, single)

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.draw(ctx, "")

    def value_space(self) -> int | None:
        return len(self.names) * len(self.names) * len(self.tlds)

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        first, second, tld = mixed_radix(index, [len(self.names), len(self.names), len(self.tlds)])
        return self.build(first, second, tld)


class Url(Domain):
    name = "internet.url"

    def configure(self, opts: Options) -> None:
        super().configure(opts)
        # Paths use the English word pool so URLs stay ASCII in every locale.
        self.paths = load_pools("en_US").words

    def with_path(self, ctx: BlockContext, domain: pa.Array) -> pa.Array:
        pick = ctx.rng(self.field, "path").integers(0, len(self.paths), ctx.n, dtype=np.int64)
        return join("https://www.", domain, "/", self.paths.take(pa.array(pick)))

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.with_path(ctx, self.draw(ctx, ""))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return self.with_path(ctx, super().from_index(index, ctx))


class Ipv4(FieldGenerator):
    name = "internet.ipv4"

    def configure(self, opts: Options) -> None:
        pass

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def build(self, octets: np.ndarray) -> pa.Array:
        parts = [pc.cast(pa.array(octets[:, i]), pa.string()) for i in range(4)]
        return pc.binary_join_element_wise(*parts, ".")

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.build(ctx.rng(self.field, "value").integers(0, 256, (ctx.n, 4), dtype=np.int64))

    def value_space(self) -> int | None:
        return 1 << 32

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return self.build(np.stack(mixed_radix(index, [256, 256, 256, 256]), axis=1))


class Ipv6(RandomBits128):
    """Full-form IPv6 from 128 seeded random bits (repeats are negligible)."""

    name = "internet.ipv6"

    def render(self, raw: np.ndarray) -> pa.Array:
        out = np.full((len(raw), 39), ord(":"), dtype=np.uint8)
        for group in range(8):
            base = group * 5
            out[:, base] = HEX[raw[:, 2 * group] >> 4]
            out[:, base + 1] = HEX[raw[:, 2 * group] & 0x0F]
            out[:, base + 2] = HEX[raw[:, 2 * group + 1] >> 4]
            out[:, base + 3] = HEX[raw[:, 2 * group + 1] & 0x0F]
        return fixed_width(out)
