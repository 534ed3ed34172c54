"""finance.iban and finance.credit_card, with valid check digits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..locales import iban_formats, load_pools
from ..options import Options
from .base import BlockContext, FieldGenerator
from .strings import DIGITS, PatternSet, fixed_width

CARD_BRANDS: dict[str, tuple[list[str], int]] = {
    "visa": (["4"], 16),
    "mastercard": (["51", "52", "53", "54", "55"], 16),
    "amex": (["34", "37"], 15),
}


def iban_check_digits(country: str, bban: np.ndarray) -> np.ndarray:
    """ISO 13616 check digits for an (n, w) uint8 matrix of BBAN characters."""
    rearranged = np.concatenate(
        [bban, np.tile(np.frombuffer((country + "00").encode(), dtype=np.uint8), (len(bban), 1))], axis=1
    )
    remainder = np.zeros(len(bban), dtype=np.int64)
    for column in rearranged.T:
        is_letter = column >= ord("A")
        value = np.where(is_letter, column.astype(np.int64) - ord("A") + 10, column.astype(np.int64) - ord("0"))
        # Letters stand for two decimal digits (A=10 … Z=35), digits for one.
        remainder = np.where(is_letter, remainder * 100 + value, remainder * 10 + value) % 97
    return 98 - remainder


def luhn_check_digit(digits: np.ndarray) -> np.ndarray:
    """Luhn check digit for an (n, w) matrix of digit values (0-9), appended at the right."""
    values = digits.astype(np.int64)[:, ::-1]
    doubled = values[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = doubled.sum(axis=1) + values[:, 1::2].sum(axis=1)
    return (10 - total % 10) % 10


class Iban(FieldGenerator):
    name = "finance.iban"

    def configure(self, opts: Options) -> None:
        formats = iban_formats()
        default = load_pools(self.locale).iban_country
        self.country = opts.str("country", default, choices=sorted(formats))
        self.patterns = PatternSet([formats[self.country]])

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def generate(self, ctx: BlockContext) -> pa.Array:
        n = ctx.n
        draws = ctx.rng(self.field, "bban").random((n, self.patterns.width))
        bban, _ = self.patterns.fill(np.zeros(n, dtype=np.int64), draws)
        check = iban_check_digits(self.country, bban)
        head = np.empty((n, 4), dtype=np.uint8)
        head[:, 0:2] = np.frombuffer(self.country.encode(), dtype=np.uint8)
        head[:, 2] = DIGITS[check // 10]
        head[:, 3] = DIGITS[check % 10]
        return fixed_width(np.concatenate([head, bban], axis=1))


class CreditCard(FieldGenerator):
    name = "finance.credit_card"

    def configure(self, opts: Options) -> None:
        self.brand = opts.str("brand", "visa", choices=sorted(CARD_BRANDS))
        prefixes, self.length = CARD_BRANDS[self.brand]
        self.prefixes = [np.frombuffer(p.encode(), dtype=np.uint8) - ord("0") for p in prefixes]

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def generate(self, ctx: BlockContext) -> pa.Array:
        n = ctx.n
        body = ctx.rng(self.field, "digits").integers(0, 10, (n, self.length - 1), dtype=np.int64)
        pick = ctx.rng(self.field, "prefix").integers(0, len(self.prefixes), n, dtype=np.int64)
        for i, prefix in enumerate(self.prefixes):
            rows = pick == i
            body[rows, : len(prefix)] = prefix
        check = luhn_check_digit(body)
        digits = np.concatenate([body, check[:, None]], axis=1)
        return fixed_width(DIGITS[digits])
