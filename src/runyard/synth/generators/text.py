"""text.words, text.sentence and text.paragraph from the locale's word pool."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..locales import LocalePools, load_pools
from ..options import Options
from .base import BlockContext, FieldGenerator

MAX_WORDS = 200
MAX_SENTENCES = 50


def _lists(counts: np.ndarray, width: int, index: np.ndarray, values: pa.Array) -> pa.ListArray:
    """Per-row lists holding the first ``counts[i]`` picks of row i of an (n, width) index matrix."""
    keep = np.arange(width)[None, :] < counts[:, None]
    flat = values.take(pa.array(index[keep]))
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


class _Text(FieldGenerator):
    pools: LocalePools

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def load(self) -> None:
        self.pools = load_pools(self.locale)
        # One pool: plain words then the same words capitalised (for sentence starts).
        self.vocabulary = pa.concat_arrays([self.pools.words, self.pools.words_capitalized])

    def range_options(self, opts: Options, unit: str, lo: int, hi: int, limit: int) -> tuple[int, int]:
        exact = opts.int(unit, None, min=1, max=limit)
        low = opts.int(f"min_{unit}", exact if exact is not None else lo, min=1, max=limit)
        high = opts.int(f"max_{unit}", exact if exact is not None else max(hi, low), min=1, max=limit)
        if low > high:
            raise opts.error(f"min_{unit}", f"must be <= max_{unit}")
        return low, high

    def sentences(self, ctx: BlockContext, purpose: str, rows: int, lo: int, hi: int) -> pa.Array:
        """``rows`` sentences with lo..hi words each: capitalised, space-joined, terminated."""
        counts = ctx.rng(self.field, purpose + "count").integers(lo, hi + 1, rows, dtype=np.int64)
        size = len(self.pools.words)
        index = ctx.rng(self.field, purpose + "words").integers(0, size, (rows, hi), dtype=np.int64)
        index[:, 0] += size
        joined = pc.binary_join(_lists(counts, hi, index, self.vocabulary), self.pools.word_separator)
        return pc.binary_join_element_wise(joined, self.pools.sentence_end, "")


class Words(_Text):
    name = "text.words"

    def configure(self, opts: Options) -> None:
        self.load()
        self.lo, self.hi = self.range_options(opts, "words", 3, 3, MAX_WORDS)

    def generate(self, ctx: BlockContext) -> pa.Array:
        counts = ctx.rng(self.field, "count").integers(self.lo, self.hi + 1, ctx.n, dtype=np.int64)
        index = ctx.rng(self.field, "words").integers(0, len(self.pools.words), (ctx.n, self.hi), dtype=np.int64)
        return pc.binary_join(_lists(counts, self.hi, index, self.pools.words), self.pools.word_separator)


class Sentence(_Text):
    name = "text.sentence"

    def configure(self, opts: Options) -> None:
        self.load()
        self.lo, self.hi = self.range_options(opts, "words", 6, 12, MAX_WORDS)

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.sentences(ctx, "", ctx.n, self.lo, self.hi)


class Paragraph(_Text):
    name = "text.paragraph"

    def configure(self, opts: Options) -> None:
        self.load()
        self.lo, self.hi = self.range_options(opts, "sentences", 3, 6, MAX_SENTENCES)
        self.words_lo, self.words_hi = self.range_options(opts, "words", 6, 12, MAX_WORDS)

    def generate(self, ctx: BlockContext) -> pa.Array:
        # Every row draws hi sentences (row-major), so a row's text never depends on
        # how many rows the block holds; rows then keep their first `count`.
        n = ctx.n
        counts = ctx.rng(self.field, "count").integers(self.lo, self.hi + 1, n, dtype=np.int64)
        sentences = self.sentences(ctx, "s:", n * self.hi, self.words_lo, self.words_hi)
        index = np.arange(n * self.hi, dtype=np.int64).reshape(n, self.hi)
        sep = "" if self.pools.word_separator == "" else " "
        return pc.binary_join(_lists(counts, self.hi, index, sentences), sep)
