"""person.*: names, gender, username, e-mail and phone, consistent within a row.

All person fields of a row describe the same person: the person's gender, first and
last name are drawn from streams keyed by the person *group* (option ``person``,
default ``"default"``), not by the field, so ``name`` and ``email`` agree whichever
fields exist. Give fields another group to describe a second person in the row.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..locales import LocalePools, load_pools
from ..options import Options
from ..seeding import KeyedPermutation
from .base import BlockContext, FieldGenerator, PlanContext
from .strings import PatternSet, as_text, join

# Unique e-mails and usernames end in a number drawn without repetition from this range;
# the name part holds no digits, so distinct numbers mean distinct values.
UNIQUE_SUFFIX_SPACE = 10**8
_SEPARATORS = pa.array([".", "_", "", "."], pa.string())
_INITIAL_STYLE = 3


@cache
def distinct_people(locale: str) -> np.ndarray:
    """Person ids (first index * len(last) + last index) with pairwise distinct full names.

    Some first names are in both gender lists and some locales write names without a
    separator, so distinct (first, last) pairs are not always distinct strings; unique
    names sample only from these first occurrences.
    """
    pools = load_pools(locale)
    n_first, n_last = len(pools.first_all), len(pools.last)
    ids = np.arange(n_first * n_last, dtype=np.int64)
    first = pools.first_all.take(pa.array(ids // n_last))
    last = pools.last.values.take(pa.array(ids % n_last))
    names = join(last, pools.name_separator, first) if pools.family_name_first else join(first, pools.name_separator, last)
    first_seen = pc.index_in(pc.unique(names), value_set=names)
    return np.sort(first_seen.to_numpy(zero_copy_only=False).astype(np.int64))


class _Person(FieldGenerator):
    pools: LocalePools

    def configure(self, opts: Options) -> None:
        self.group = opts.str("person", "default")
        self.pools = load_pools(self.locale)
        self.configure_more(opts)

    def configure_more(self, opts: Options) -> None:
        pass

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def person_space(self) -> int:
        return len(distinct_people(self.locale))

    def identity(self, ctx: BlockContext) -> tuple[np.ndarray, np.ndarray]:
        """(first-name index into ``first_all``, last-name index) for every row of the block."""
        cache_key = ("person", self.group, self.locale)
        if cache_key in ctx.cache:
            return ctx.cache[cache_key]
        pools = self.pools
        permutation: KeyedPermutation | None = ctx.plan.shared.get(("person-unique", self.group, self.locale))
        if permutation is not None:
            person = distinct_people(self.locale)[permutation(ctx.row_ids())]
            first, last = person // len(pools.last), person % len(pools.last)
        else:
            key = f"person:{self.group}"
            female = ctx.rng(key, "gender").random(ctx.n) < 0.5
            u_first = ctx.rng(key, "first").random(ctx.n)
            first = np.where(
                female,
                len(pools.first_male) + pools.first_female.indices(u_first),
                pools.first_male.indices(u_first),
            )
            last = pools.last.indices(ctx.rng(key, "last").random(ctx.n))
        ctx.cache[cache_key] = (first, last)
        return first, last

    def first_names(self, ctx: BlockContext) -> pa.Array:
        return self.pools.first_all.take(pa.array(self.identity(ctx)[0]))

    def last_names(self, ctx: BlockContext) -> pa.Array:
        return self.pools.last.values.take(pa.array(self.identity(ctx)[1]))


class FirstName(_Person):
    name = "person.first_name"

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.first_names(ctx)


class LastName(_Person):
    name = "person.last_name"

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.last_names(ctx)


class FullName(_Person):
    name = "person.full_name"

    def generate(self, ctx: BlockContext) -> pa.Array:
        first, last = self.first_names(ctx), self.last_names(ctx)
        sep = self.pools.name_separator
        return join(last, sep, first) if self.pools.family_name_first else join(first, sep, last)

    def value_space(self) -> int | None:
        return self.person_space()

    def prepare(self, plan: PlanContext, unique: bool) -> None:
        if unique:
            # Unique names make the whole person group unique, so the e-mail and the
            # other fields of the group keep describing the same (distinct) person.
            plan.shared[("person-unique", self.group, self.locale)] = KeyedPermutation(
                self.person_space(), plan.stream(f"person-unique:{self.group}:{self.locale}", 0, "unique-permutation")
            )

    def generate_unique(self, ctx: BlockContext, permutation: Any) -> pa.Array:
        return self.generate(ctx)


class Gender(_Person):
    name = "person.gender"

    def generate(self, ctx: BlockContext) -> pa.Array:
        female = self.identity(ctx)[0] >= len(self.pools.first_male)
        return pa.array(np.where(female, "female", "male"), pa.string())


class _Handle(_Person):
    """Shared shape of usernames and e-mail local parts: name parts, separator, digits."""

    def local_part(self, ctx: BlockContext, suffix_index: np.ndarray | None) -> pa.Array:
        first_idx, last_idx = self.identity(ctx)
        first = self.pools.first_all_ascii.take(pa.array(first_idx))
        last = self.pools.last_ascii.take(pa.array(last_idx))
        style = ctx.rng(self.field, "style").integers(0, 4, ctx.n, dtype=np.int64)
        initial = pc.utf8_slice_codeunits(first, 0, 1)
        left = pc.if_else(pa.array(style == _INITIAL_STYLE), initial, first)
        sep = _SEPARATORS.take(pa.array(style))
        if suffix_index is not None:
            suffix = as_text(suffix_index)
        else:
            with_digits = ctx.rng(self.field, "has-digits").random(ctx.n) < 0.4
            number = ctx.rng(self.field, "digits").integers(1, 100, ctx.n, dtype=np.int64)
            suffix = pc.if_else(pa.array(with_digits), as_text(number), pa.scalar(""))
        return join(left, sep, last, suffix)

    def value_space(self) -> int | None:
        return UNIQUE_SUFFIX_SPACE

    def generate(self, ctx: BlockContext) -> pa.Array:
        return self.finish(ctx, self.local_part(ctx, None))

    def from_index(self, index: np.ndarray, ctx: BlockContext) -> pa.Array:
        return self.finish(ctx, self.local_part(ctx, index))

    def finish(self, ctx: BlockContext, local: pa.Array) -> pa.Array:
        return local


class Username(_Handle):
    name = "person.username"


class Email(_Handle):
    name = "person.email"

    def configure_more(self, opts: Options) -> None:
        self.domain = opts.str("domain", None)
        if self.domain is not None and ("@" in self.domain or not self.domain.strip()):
            raise opts.error("domain", "must be a domain name such as example.com")

    def finish(self, ctx: BlockContext, local: pa.Array) -> pa.Array:
        if self.domain is not None:
            domain: pa.Array | str = self.domain
        else:
            pool = self.pools.email_domains
            pick = ctx.rng(self.field, "domain").integers(0, len(pool), ctx.n, dtype=np.int64)
            domain = pool.take(pa.array(pick))
        return join(local, "@", domain)


class Phone(_Person):
    name = "person.phone"

    def configure_more(self, opts: Options) -> None:
        self.patterns = PatternSet(self.pools.phone_patterns)

    def generate(self, ctx: BlockContext) -> pa.Array:
        pick = ctx.rng(self.field, "pattern").integers(0, self.patterns.count, ctx.n, dtype=np.int64)
        draws = ctx.rng(self.field, "digits").random((ctx.n, self.patterns.width))
        return self.patterns.build(pick, draws)
