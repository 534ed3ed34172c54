"""The generator contract and the per-block context generators draw from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from ..errors import TemplateError
from ..options import Options
from ..seeding import CURRENT_SEEDING, KeyedPermutation, stream, stream_v2


@dataclass
class PlanContext:
    """What generators may look at (and prepare) once per generation, before any block."""

    seed: int
    version: int
    count: int
    resolver: Any = None
    # Values prepared at plan time and shared read-only by every block (and thread).
    shared: dict[Any, Any] = field(default_factory=dict)
    #: The seeding scheme (see :mod:`runyard.synth.seeding`) and, for scheme 2, each
    #: field's spec by field name.
    seeding: int = CURRENT_SEEDING
    specs: dict[str, str] = field(default_factory=dict)

    def stream(self, key: str, block: int, purpose: str, *, spec_of: str | None = None) -> np.random.Generator:
        """A stream for exactly one NumPy draw; ``spec_of`` names the field whose spec keys
        it when that is not ``key`` itself (group keys have none)."""
        if self.seeding == 1:
            return stream(self.seed, self.version, key, block, purpose)
        return stream_v2(self.seed, key, self.specs.get(spec_of or key, ""), block, purpose)


@dataclass
class BlockContext:
    """One block of rows: its position, its random streams and the columns made so far."""

    plan: PlanContext
    block: int
    row_start: int
    n: int
    columns: dict[str, pa.Array] = field(default_factory=dict)
    # Per-block memo for values several fields share (e.g. the person behind a row).
    cache: dict[Any, Any] = field(default_factory=dict)
    formula_runner: Callable[[str, dict[str, pa.Array], int], pa.Array] | None = None

    def rng(self, key: str, purpose: str) -> np.random.Generator:
        """A stream for exactly one NumPy draw (see :mod:`runyard.synth.seeding`)."""
        return self.plan.stream(key, self.block, purpose)

    def row_ids(self) -> np.ndarray:
        return np.arange(self.row_start, self.row_start + self.n, dtype=np.int64)


class FieldGenerator(ABC):
    """A vectorised value generator for one field.

    Subclasses read their options in ``configure`` (through :class:`Options`, so unknown
    options are rejected) and produce a whole block at once in ``generate``.
    """

    name: ClassVar[str]
    # True when values never repeat by construction (sequence, uuid).
    unique_by_construction: ClassVar[bool] = False

    def __init__(self, opts: Options, locale: str) -> None:
        self.field = opts.field
        self.locale = locale
        self.configure(opts)
        opts.finish()

    @abstractmethod
    def configure(self, opts: Options) -> None: ...

    @property
    @abstractmethod
    def arrow_type(self) -> pa.DataType: ...

    @abstractmethod
    def generate(self, ctx: BlockContext) -> pa.Array: ...

    def output_type(self, plan: PlanContext) -> pa.DataType:
        """The column type in a generation (some types are only known once references resolve)."""
        return plan.shared.get(("formula-type", self.field), self.arrow_type)

    def unique_space(self, plan: PlanContext) -> int | None:
        return self.value_space()

    def value_space(self) -> int | None:
        """Number of distinct values ``from_index`` can produce; None if unique is unsupported."""
        return None

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        """Map distinct integers in [0, value_space) to distinct values."""
        raise NotImplementedError

    def generate_unique(self, ctx: BlockContext, permutation: KeyedPermutation | None) -> pa.Array:
        if permutation is None:
            return self.generate(ctx)
        return self.from_index(permutation(ctx.row_ids()), ctx)

    def prepare(self, plan: PlanContext, unique: bool) -> None:  # noqa: B027 - optional hook
        """Plan-time hook: resolve references, register shared state, refuse early."""

    def check_unique_supported(self) -> None:
        if not self.unique_by_construction and self.value_space() is None:
            raise TemplateError(f"unique is not supported by generator '{self.name}'", field=self.field,
                                option="unique")

    def error(self, message: str, option: str | None = None) -> TemplateError:
        return TemplateError(message, field=self.field, option=option)


def mixed_radix(index: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Split integers into digits of the given radices (last radix varies fastest)."""
    digits: list[np.ndarray] = []
    rest = index.astype(np.int64)
    for size in reversed(sizes):
        digits.append(rest % size)
        rest = rest // size
    return digits[::-1]


class RandomBits128(FieldGenerator):
    """Text built from 128 seeded random bits per row (uuid, IPv6): no options, and unique
    by construction because repeats of 122+ random bits are negligible."""

    unique_by_construction = True

    def configure(self, opts: Options) -> None:
        pass

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.render(ctx.rng(self.field, "value").integers(0, 256, (ctx.n, 16), dtype=np.uint8))

    def generate_unique(self, ctx: BlockContext, permutation: Any) -> pa.Array:
        return self.generate(ctx)

    @abstractmethod
    def render(self, raw: np.ndarray) -> pa.Array:
        """Rows of 16 random bytes (uint8, shape (n, 16)) → the column."""
