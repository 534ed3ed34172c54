"""Building Arrow string arrays from NumPy byte matrices without a per-value Python call."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
UPPER = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def fixed_width(matrix: np.ndarray) -> pa.StringArray:
    """Rows of an (n, w) uint8 matrix of UTF-8 bytes as a string array."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32) if n else np.zeros(1, np.int32)
    data = np.ascontiguousarray(matrix, dtype=np.uint8)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def ragged(matrix: np.ndarray, lengths: np.ndarray) -> pa.StringArray:
    """The first ``lengths[i]`` bytes of each row of an (n, w) uint8 matrix."""
    n, width = matrix.shape
    keep = np.arange(width)[None, :] < lengths[:, None]
    data = np.ascontiguousarray(matrix[keep], dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


class PatternSet:
    """Text patterns whose '#' become random digits and '?' random capital letters.

    Patterns of different lengths are padded into one matrix so a block is filled with
    a gather and two ``where``s, whatever the number of patterns.
    """

    def __init__(self, patterns: list[str]) -> None:
        encoded = [p.encode() for p in patterns]
        self.count = len(encoded)
        self.width = max(len(p) for p in encoded)
        self.lengths = np.array([len(p) for p in encoded], dtype=np.int64)
        self.matrix = np.zeros((self.count, self.width), dtype=np.uint8)
        for i, p in enumerate(encoded):
            self.matrix[i, : len(p)] = np.frombuffer(p, dtype=np.uint8)
        self.fixed = len(set(self.lengths.tolist())) == 1
        digit_slots = self.matrix == ord("#")
        letter_slots = self.matrix == ord("?")
        self.digit_slots = digit_slots
        self.letter_slots = letter_slots
        # Patterns sharing the same slots have value spaces we can count (for unique).
        self.slot_counts = [(int(d.sum()), int(letter.sum())) for d, letter in zip(digit_slots, letter_slots, strict=True)]

    def fill(self, pattern_index: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill patterns from a uniform (n, width) matrix of draws in [0, 1)."""
        mat = self.matrix[pattern_index]
        digits = DIGITS[(draws * 10).astype(np.int64)]
        letters = UPPER[(draws * 26).astype(np.int64)]
        mat = np.where(self.digit_slots[pattern_index], digits, mat)
        mat = np.where(self.letter_slots[pattern_index], letters, mat)
        return mat, self.lengths[pattern_index]

    def build(self, pattern_index: np.ndarray, draws: np.ndarray) -> pa.StringArray:
        mat, lengths = self.fill(pattern_index, draws)
        return fixed_width(mat) if self.fixed else ragged(mat, lengths)


def concat_bytes(array: pa.Array) -> bytes:
    """All values of a null-free string array, concatenated, straight from its data buffer."""
    if isinstance(array, pa.ChunkedArray):
        return b"".join(concat_bytes(chunk) for chunk in array.chunks)
    if len(array) == 0:
        return b""
    offsets_buf, data_buf = array.buffers()[1], array.buffers()[2]
    dtype = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=dtype)
    start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
    return data_buf.slice(start, end - start).to_pybytes() if data_buf is not None else b""


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    return pc.binary_join_element_wise(*parts, "")


def as_text(values: np.ndarray) -> pa.Array:
    """Integers as decimal strings."""
    return pc.cast(pa.array(values), pa.string())
