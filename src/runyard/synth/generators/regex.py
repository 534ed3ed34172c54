"""regex: strings matching a regular expression, generated column-wise.

The pattern is parsed with Python's own regex parser (so "malformed" means exactly what
``re`` rejects), then compiled into a small tree of character sets, sequences, repeats
and alternations. Fixed-shape ASCII patterns such as ``[A-Z]{3}-\\d{4}`` take a fast
path that fills a byte matrix in one draw and also supports ``unique``.
"""

from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..options import Options
from .base import BlockContext, FieldGenerator, mixed_radix
from .strings import fixed_width

PRINTABLE = "".join(chr(c) for c in range(32, 127))
DIGIT = "0123456789"
WORD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
SPACE = " "
# Open-ended repeats (*, +, {n,}) produce at most this many extra items.
OPEN_REPEAT_EXTRA = 8
MAX_REPEAT = 1000
MAX_CLASS = 65_536
_CATEGORIES = {
    sre.CATEGORY_DIGIT: DIGIT,
    sre.CATEGORY_WORD: WORD,
    sre.CATEGORY_SPACE: SPACE,
    sre.CATEGORY_NOT_DIGIT: "".join(c for c in PRINTABLE if c not in DIGIT),
    sre.CATEGORY_NOT_WORD: "".join(c for c in PRINTABLE if c not in WORD),
    sre.CATEGORY_NOT_SPACE: "".join(c for c in PRINTABLE if c != " "),
}


class RegexError(ValueError):
    pass


@dataclass(frozen=True)
class CharSet:
    chars: str


@dataclass(frozen=True)
class Seq:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Repeat:
    item: Any
    lo: int
    hi: int


@dataclass(frozen=True)
class Alt:
    options: tuple[Any, ...]


def _charset(items: list[tuple[Any, Any]]) -> CharSet:
    chars: dict[str, None] = {}
    negate = False
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            chars[chr(arg)] = None
        elif op is sre.RANGE:
            lo, hi = arg
            if hi - lo >= MAX_CLASS:
                raise RegexError("character range too large")
            chars.update(dict.fromkeys(chr(c) for c in range(lo, hi + 1)))
        elif op is sre.CATEGORY:
            if arg not in _CATEGORIES:
                raise RegexError(f"unsupported character category {arg}")
            chars.update(dict.fromkeys(_CATEGORIES[arg]))
        else:
            raise RegexError(f"unsupported construct {op} in a character class")
    if negate:
        return CharSet("".join(c for c in PRINTABLE if c not in chars))
    return CharSet("".join(chars))


def _compile(parsed: Any) -> Seq:
    items: list[Any] = []
    for op, arg in parsed:
        if op is sre.LITERAL:
            items.append(CharSet(chr(arg)))
        elif op is sre.NOT_LITERAL:
            items.append(CharSet("".join(c for c in PRINTABLE if c != chr(arg))))
        elif op is sre.ANY:
            items.append(CharSet(PRINTABLE))
        elif op is sre.IN:
            items.append(_charset(arg))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = arg
            hi = lo + OPEN_REPEAT_EXTRA if hi is sre.MAXREPEAT else hi
            if hi > MAX_REPEAT:
                raise RegexError(f"repeat count above {MAX_REPEAT}")
            items.append(Repeat(_compile(sub), lo, hi))
        elif op is sre.SUBPATTERN:
            items.append(_compile(arg[-1]))
        elif op is sre.BRANCH:
            items.append(Alt(tuple(_compile(option) for option in arg[1])))
        elif op is sre.AT:
            continue  # anchors add no characters
        else:
            raise RegexError(f"unsupported regex construct {str(op).lower()}")
    for item in items:
        if isinstance(item, CharSet) and not item.chars:
            raise RegexError("a character class matches nothing")
    return Seq(tuple(items))


def _positions(node: Any) -> list[str] | None:
    """The character sets of a fixed-shape pattern, one per output position, else None."""
    if isinstance(node, CharSet):
        return [node.chars]
    if isinstance(node, Seq):
        out: list[str] = []
        for item in node.items:
            sub = _positions(item)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(node, Repeat) and node.lo == node.hi:
        sub = _positions(node.item)
        return None if sub is None else sub * node.lo
    return None


def compile_pattern(pattern: str) -> Seq:
    try:
        re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise RegexError(f"malformed regex: {exc}") from None
    return _compile(parsed)


class Regex(FieldGenerator):
    name = "regex"

    def configure(self, opts: Options) -> None:
        self.pattern = opts.str("pattern")
        try:
            self.tree = compile_pattern(self.pattern)
        except RegexError as exc:
            raise opts.error("pattern", f"{exc}: {self.pattern!r}") from None
        positions = _positions(self.tree)
        self.positions = positions if positions and all(ord(c) < 128 for s in positions for c in s) else None
        if self.positions is not None:
            self.sizes = np.array([len(s) for s in self.positions], dtype=np.int64)
            table = np.zeros((len(self.positions), int(self.sizes.max())), dtype=np.uint8)
            for i, chars in enumerate(self.positions):
                table[i, : len(chars)] = np.frombuffer(chars.encode(), dtype=np.uint8)
            self.table = table

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def _matrix(self, index: np.ndarray) -> pa.Array:
        return fixed_width(self.table[np.arange(len(self.positions))[None, :], index])

    def generate(self, ctx: BlockContext) -> pa.Array:
        if self.positions is not None:
            u = ctx.rng(self.field, "chars").random((ctx.n, len(self.positions)))
            return self._matrix((u * self.sizes).astype(np.int64))
        return self._node(ctx, self.tree, "r")

    def _node(self, ctx: BlockContext, node: Any, path: str) -> pa.Array:
        n = ctx.n
        if isinstance(node, CharSet):
            pool = pa.array(list(node.chars), pa.string())
            return pool.take(pa.array(ctx.rng(self.field, path).integers(0, len(pool), n, dtype=np.int64)))
        if isinstance(node, Seq):
            if not node.items:
                return pa.repeat(pa.scalar("", pa.string()), n)
            parts = [self._node(ctx, item, f"{path}/{i}") for i, item in enumerate(node.items)]
            return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
        if isinstance(node, Repeat):
            if node.hi == 0:
                return pa.repeat(pa.scalar("", pa.string()), n)
            count = ctx.rng(self.field, path + "#count").integers(node.lo, node.hi + 1, n, dtype=np.int64)
            parts = []
            for j in range(node.hi):
                part = self._node(ctx, node.item, f"{path}*{j}")
                if j >= node.lo:
                    part = pc.if_else(pa.array(count > j), part, pa.scalar(""))
                parts.append(part)
            return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
        pick = ctx.rng(self.field, path + "#alt").integers(0, len(node.options), n, dtype=np.int8)
        options = [self._node(ctx, option, f"{path}|{k}") for k, option in enumerate(node.options)]
        return pc.choose(pa.array(pick), *options)

    def value_space(self) -> int | None:
        if self.positions is None:
            return None
        return int(np.prod([int(s) for s in self.sizes], dtype=object))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        digits = mixed_radix(index, [int(s) for s in self.sizes])
        return self._matrix(np.stack(digits, axis=1))
