"""The workflow expression language: ``${{ ... }}`` templates over JSON values.

A hand-written tokenizer and Pratt parser build a small AST that an interpreter walks.
Nothing here calls ``eval``/``exec`` or ``getattr``: member access is a dict-key lookup on
JSON values only, so ``x.__class__`` is just a missing key. Parsing and evaluation are
bounded (expression length, nesting depth, string and list sizes, node visits) so a hostile
definition or input cannot exhaust the stack or memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "DEFAULT_LIMITS", "FUNCTIONS", "ROOTS", "Binary", "Call", "EvaluationError", "Expr", "ExpressionError",
    "Index", "Limits", "Literal", "Member", "Name", "Reference", "Template", "UndefinedReferenceError", "Unary",
    "compile_value", "evaluate", "find_templates", "parse", "parse_template", "references_in", "render",
    "to_text", "truthy", "walk_templates",
]

# The names an expression may start with; anything else is an undefined reference.
ROOTS = ("inputs", "steps", "item")

MAX_EXPRESSION_LENGTH = 65_536
# Parentheses/calls/unary operators nest at most MAX_DEPTH deep; any AST (including long
# operator chains such as a + b + c …) at most MAX_AST_DEPTH, which keeps evaluation's
# recursion far below Python's limit.
MAX_DEPTH = 64
MAX_AST_DEPTH = 128


@dataclass(frozen=True)
class Limits:
    """Bounds on what one evaluation may produce or do."""

    max_string: int = 1_000_000
    max_items: int = 100_000
    max_nodes: int = 100_000
    max_int_bits: int = 64


DEFAULT_LIMITS = Limits()


class ExpressionError(ValueError):
    """A malformed expression, or one that failed while evaluated.

    ``column`` is 1-based within the text handed to :func:`parse` (or the template string).
    """

    code = "invalid_expression"

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.reason = message
        self.column = column


class EvaluationError(ExpressionError):
    code = "evaluation_error"


class UndefinedReferenceError(EvaluationError):
    code = "undefined_reference"


# --- tokens -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # num, str, ident, op, end
    value: Any
    pos: int  # 0-based offset in the text


_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]",
              ".", ",")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "/": "/"}


def _is_ident_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_ident_char(ch: str, after_dot: bool) -> bool:
    # After a dot, hyphens belong to the name (``steps.my-step.output``) as in GitHub Actions;
    # elsewhere ``a-b`` is subtraction.
    return ch.isascii() and (ch.isalnum() or ch == "_" or (after_dot and ch == "-"))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        start = i
        if ch.isdigit():
            while i < n and text[i].isdigit():
                i += 1
            is_float = False
            if i + 1 < n and text[i] == "." and text[i + 1].isdigit():
                is_float = True
                i += 1
                while i < n and text[i].isdigit():
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and text[j].isdigit():
                    is_float = True
                    i = j
                    while i < n and text[i].isdigit():
                        i += 1
            if i < n and _is_ident_start(text[i]):
                raise ExpressionError(f"malformed number {text[start:i + 1]!r}", start + 1)
            literal = text[start:i]
            if len(literal) > 40:
                raise ExpressionError("number literal too long", start + 1)
            value: Any = float(literal) if is_float else int(literal)
            if isinstance(value, float) and not math.isfinite(value):
                raise ExpressionError("number out of range", start + 1)
            tokens.append(_Token("num", value, start))
            continue
        if ch in "'\"":
            quote, i, chars = ch, i + 1, []
            while True:
                if i >= n:
                    raise ExpressionError("unterminated string", start + 1)
                c = text[i]
                if c == quote:
                    i += 1
                    break
                if c == "\\":
                    if i + 1 >= n:
                        raise ExpressionError("unterminated string", start + 1)
                    esc = text[i + 1]
                    if esc not in _ESCAPES:
                        raise ExpressionError(f"unknown escape \\{esc}", i + 1)
                    chars.append(_ESCAPES[esc])
                    i += 2
                    continue
                chars.append(c)
                i += 1
            tokens.append(_Token("str", "".join(chars), start))
            continue
        if _is_ident_start(ch):
            after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
            while i < n and _is_ident_char(text[i], after_dot):
                i += 1
            tokens.append(_Token("ident", text[start:i], start))
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", op, start))
                i += len(op)
                break
        else:
            raise ExpressionError(f"unexpected character {ch!r}", start + 1)
    tokens.append(_Token("end", None, n))
    return tokens


# --- AST ----------------------------------------------------------------------------------------

PathKey = str | int
Reference = tuple[str, tuple[PathKey, ...]]


class Expr:
    """A parsed expression. ``pos`` is its 0-based offset in the source text."""

    pos: int
    depth: int

    def children(self) -> tuple[Expr, ...]:
        return ()

    def references(self) -> set[Reference]:
        """Every ``(root, path)`` the expression reads, e.g. ``("steps", ("a", "output", "n"))``.

        A path stops at the first index that is not a literal (its own references are included).
        """
        found: set[Reference] = set()
        _collect_references(self, found)
        return found


def _depth(*children: Expr) -> int:
    return 1 + max((c.depth for c in children), default=0)


@dataclass(frozen=True, eq=False)
class Literal(Expr):
    value: Any
    pos: int = 0
    depth: int = 1


@dataclass(frozen=True, eq=False)
class Name(Expr):
    name: str
    pos: int = 0
    depth: int = 1


@dataclass(frozen=True, eq=False)
class Member(Expr):
    obj: Expr
    key: str
    pos: int = 0
    depth: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _depth(self.obj))

    def children(self) -> tuple[Expr, ...]:
        return (self.obj,)


@dataclass(frozen=True, eq=False)
class Index(Expr):
    obj: Expr
    index: Expr
    pos: int = 0
    depth: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _depth(self.obj, self.index))

    def children(self) -> tuple[Expr, ...]:
        return (self.obj, self.index)


@dataclass(frozen=True, eq=False)
class Unary(Expr):
    op: str
    operand: Expr
    pos: int = 0
    depth: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _depth(self.operand))

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


@dataclass(frozen=True, eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr
    pos: int = 0
    depth: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _depth(self.left, self.right))

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, eq=False)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]
    pos: int = 0
    depth: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _depth(*self.args))

    def children(self) -> tuple[Expr, ...]:
        return self.args


def _static_path(expr: Expr) -> tuple[str, tuple[PathKey, ...]] | None:
    """``inputs.a[0]['b']`` -> ("inputs", ("a", 0, "b")); None when not a plain reference chain."""
    keys: list[PathKey] = []
    node = expr
    while True:
        if isinstance(node, Member):
            keys.append(node.key)
            node = node.obj
        elif isinstance(node, Index) and isinstance(node.index, Literal) and isinstance(node.index.value, str | int) \
                and not isinstance(node.index.value, bool):
            keys.append(node.index.value)
            node = node.obj
        elif isinstance(node, Name):
            return node.name, tuple(reversed(keys))
        else:
            return None


def _collect_references(expr: Expr, found: set[Reference]) -> None:
    # Iterative on purpose: depth is bounded anyway, but this never needs the call stack.
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name | Member | Index):
            static = _static_path(node)
            if static is not None:
                found.add(static)
                continue
            # A dynamic index: the longest static prefix is read, and the index expression too.
            obj = node
            while isinstance(obj, Member | Index):
                if isinstance(obj, Index):
                    stack.append(obj.index)
                obj = obj.obj
                static = _static_path(obj)
                if static is not None:
                    found.add(static)
                    break
            else:
                stack.append(obj)
            continue
        stack.extend(node.children())


# --- functions ----------------------------------------------------------------------------------

# name -> (min args, max args or None)
_FUNCTION_ARITY: dict[str, tuple[int, int | None]] = {
    "len": (1, 1),
    "join": (1, 2),
    "contains": (2, 2),
    "startsWith": (2, 2),
    "endsWith": (2, 2),
    "format": (1, None),
    "toJSON": (1, 1),
    "fromJSON": (1, 1),
    "default": (2, 2),
}
FUNCTIONS = tuple(_FUNCTION_ARITY)


# --- parser -------------------------------------------------------------------------------------

_BINARY_PRECEDENCE = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3,
    "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5,
    "*": 6, "/": 6, "%": 6,
}
_UNARY_PRECEDENCE = 7
_KEYWORDS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.nesting = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> _Token:
        tok = self.peek()
        if tok.kind != "op" or tok.value != op:
            raise ExpressionError(f"expected {op!r}, found {_describe(tok)}", tok.pos + 1)
        return self.advance()

    def check_depth(self, node: Expr) -> Expr:
        if node.depth > MAX_AST_DEPTH:
            raise ExpressionError(f"expression too deeply nested or too long a chain of operators "
                                  f"(over {MAX_AST_DEPTH} levels)", node.pos + 1)
        return node

    def parse(self) -> Expr:
        tok = self.peek()
        if tok.kind == "end":
            raise ExpressionError("empty expression", 1)
        expr = self.expression(0)
        tok = self.peek()
        if tok.kind != "end":
            raise ExpressionError(f"unexpected {_describe(tok)}", tok.pos + 1)
        return expr

    def expression(self, min_precedence: int) -> Expr:
        # Recursion depth follows the nesting of parentheses/unary operators/calls; bound it
        # before Python's own limit can turn into a RecursionError.
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", self.peek().pos + 1)
        try:
            left = self.prefix()
            while True:
                tok = self.peek()
                if tok.kind != "op":
                    break
                precedence = _BINARY_PRECEDENCE.get(tok.value)
                if precedence is None or precedence <= min_precedence:
                    break
                self.advance()
                right = self.expression(precedence)
                left = self.check_depth(Binary(tok.value, left, right, pos=tok.pos))
            return left
        finally:
            self.nesting -= 1

    def prefix(self) -> Expr:
        tok = self.advance()
        if tok.kind == "num" or tok.kind == "str":
            node: Expr = Literal(tok.value, pos=tok.pos)
        elif tok.kind == "op" and tok.value in ("!", "-"):
            operand = self.expression(_UNARY_PRECEDENCE - 1)
            node = self.check_depth(Unary(tok.value, operand, pos=tok.pos))
        elif tok.kind == "op" and tok.value == "(":
            node = self.expression(0)
            self.expect(")")
        elif tok.kind == "ident":
            if tok.value in _KEYWORDS:
                node = Literal(_KEYWORDS[tok.value], pos=tok.pos)
            elif self.peek().kind == "op" and self.peek().value == "(":
                node = self.call(tok)
            else:
                node = Name(tok.value, pos=tok.pos)
        else:
            raise ExpressionError(f"unexpected {_describe(tok)}", tok.pos + 1)
        return self.postfix(node)

    def call(self, name: _Token) -> Expr:
        if name.value not in _FUNCTION_ARITY:
            raise ExpressionError(f"unknown function {name.value!r} (known: {', '.join(FUNCTIONS)})", name.pos + 1)
        self.expect("(")
        args: list[Expr] = []
        if not (self.peek().kind == "op" and self.peek().value == ")"):
            while True:
                args.append(self.expression(0))
                if self.peek().kind == "op" and self.peek().value == ",":
                    self.advance()
                    continue
                break
        self.expect(")")
        low, high = _FUNCTION_ARITY[name.value]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = str(low) if low == high else (f"{low}+" if high is None else f"{low}-{high}")
            raise ExpressionError(f"{name.value}() takes {wanted} arguments, got {len(args)}", name.pos + 1)
        return self.check_depth(Call(name.value, tuple(args), pos=name.pos))

    def postfix(self, node: Expr) -> Expr:
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value == ".":
                self.advance()
                key = self.advance()
                if key.kind != "ident":
                    raise ExpressionError(f"expected a name after '.', found {_describe(key)}", key.pos + 1)
                node = self.check_depth(Member(node, key.value, pos=tok.pos))
            elif tok.kind == "op" and tok.value == "[":
                self.advance()
                index = self.expression(0)
                self.expect("]")
                node = self.check_depth(Index(node, index, pos=tok.pos))
            else:
                return node


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "end of expression"
    if tok.kind == "str":
        return "a string"
    return repr(str(tok.value))


@lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse one expression (the text between ``${{`` and ``}}``); raises :class:`ExpressionError`."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 1)
    return _Parser(text).parse()


# --- evaluation ---------------------------------------------------------------------------------

_MISSING = object()


def truthy(value: Any) -> bool:
    """null, false, 0 and "" are false; everything else (including [] and {}) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return "unsupported value"


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, 1 == 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def to_text(value: Any) -> str:
    """How a value reads when interpolated into a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Evaluator:
    def __init__(self, context: Mapping[str, Any], limits: Limits) -> None:
        self.context = context
        self.limits = limits
        self.nodes = 0

    def fail(self, node: Expr, message: str) -> EvaluationError:
        return EvaluationError(message, node.pos + 1)

    def text(self, node: Expr, value: str) -> str:
        if len(value) > self.limits.max_string:
            raise self.fail(node, f"string result longer than {self.limits.max_string} characters")
        return value

    def number(self, node: Expr, value: int | float) -> int | float:
        if isinstance(value, int) and value.bit_length() > self.limits.max_int_bits:
            raise self.fail(node, "number out of range")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, "number out of range")
        return value

    def eval(self, node: Expr) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(node, "expression does too much work")
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name | Member | Index):
            return self.reference(node)
        if isinstance(node, Unary):
            value = self.eval(node.operand)
            if node.op == "!":
                return not truthy(value)
            if not _is_number(value):
                raise self.fail(node, f"cannot negate a {_type_name(value)}")
            return self.number(node, -value)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        raise self.fail(node, "unknown expression")  # pragma: no cover - the parser makes no other nodes

    def reference(self, node: Expr) -> Any:
        if isinstance(node, Name):
            if node.name not in ROOTS:
                raise UndefinedReferenceError(f"unknown name {node.name!r} (expressions start with "
                                              f"{', '.join(ROOTS)})", node.pos + 1)
            value = self.context.get(node.name, _MISSING)
            if value is _MISSING:
                raise UndefinedReferenceError(f"{node.name} is not defined here", node.pos + 1)
            return value
        assert isinstance(node, Member | Index)
        obj = self.eval(node.obj)
        key: Any = node.key if isinstance(node, Member) else self.eval(node.index)
        if isinstance(obj, Mapping):
            if not isinstance(key, str):
                raise self.fail(node, f"object keys are strings, not {_type_name(key)}")
            if key not in obj:
                hint = ""
                if "-" in key and key.split("-", 1)[0] in obj:
                    hint = " (after a dot, '-' is part of the name: write a - b with spaces to subtract)"
                raise UndefinedReferenceError(f"{_render_path(node)} is not defined{hint}", node.pos + 1)
            return obj[key]
        if isinstance(obj, list | tuple):
            if not isinstance(key, int) or isinstance(key, bool):
                raise self.fail(node, f"list indexes are integers, not {_type_name(key)}"
                                + (f" ({key!r})" if isinstance(key, str) else ""))
            if not -len(obj) <= key < len(obj):
                raise UndefinedReferenceError(f"{_render_path(node)}: index {key} out of range "
                                              f"(length {len(obj)})", node.pos + 1)
            return obj[key]
        # Only JSON containers have members: never Python attributes.
        raise self.fail(node, f"{_render_path(node)}: a {_type_name(obj)} has no fields or items")

    def binary(self, node: Binary) -> Any:
        op = node.op
        left = self.eval(node.left)
        if op == "&&":
            return self.eval(node.right) if truthy(left) else left
        if op == "||":
            return left if truthy(left) else self.eval(node.right)
        right = self.eval(node.right)
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op in ("<", "<=", ">", ">="):
            if not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
                raise self.fail(node, f"cannot compare {_type_name(left)} {op} {_type_name(right)}")
            if op == "<":
                return left < right
            if op == "<=":
                return left <= right
            if op == ">":
                return left > right
            return left >= right
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > self.limits.max_string:
                raise self.fail(node, f"string result longer than {self.limits.max_string} characters")
            return left + right
        if not (_is_number(left) and _is_number(right)):
            hint = " (use format() or join() to build text from numbers)" if op == "+" else ""
            raise self.fail(node, f"cannot apply {op} to {_type_name(left)} and {_type_name(right)}{hint}")
        if op == "+":
            return self.number(node, left + right)
        if op == "-":
            return self.number(node, left - right)
        if op == "*":
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > self.limits.max_int_bits + 1:
                raise self.fail(node, "number out of range")
            return self.number(node, left * right)
        if right == 0:
            raise self.fail(node, "division by zero")
        if op == "/":
            if isinstance(left, int) and isinstance(right, int) and left % right == 0:
                return left // right
            return self.number(node, left / right)
        return self.number(node, left % right)

    def call(self, node: Call) -> Any:
        name = node.name
        if name == "default":
            # default(x, y): y when x is undefined or null, so optional values need no guard.
            try:
                value = self.eval(node.args[0])
            except UndefinedReferenceError:
                value = None
            return self.eval(node.args[1]) if value is None else value
        args = [self.eval(arg) for arg in node.args]
        if name == "len":
            value = args[0]
            if isinstance(value, str | list | tuple | Mapping):
                return len(value)
            raise self.fail(node, f"len() of a {_type_name(value)}")
        if name == "join":
            items = args[0]
            sep = args[1] if len(args) > 1 else ","
            if not isinstance(sep, str):
                raise self.fail(node, "join() separator must be a string")
            if isinstance(items, str):
                return items
            if not isinstance(items, list | tuple):
                raise self.fail(node, f"join() of a {_type_name(items)}")
            total, parts = 0, []
            for item in items:
                part = to_text(item)
                total += len(part) + len(sep)
                if total > self.limits.max_string + len(sep):
                    raise self.fail(node, f"string result longer than {self.limits.max_string} characters")
                parts.append(part)
            return sep.join(parts)
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, str):
                if not isinstance(needle, str):
                    raise self.fail(node, "contains() on a string looks for a string")
                return needle in haystack
            if isinstance(haystack, list | tuple):
                return any(_equal(item, needle) for item in haystack)
            if isinstance(haystack, Mapping):
                return isinstance(needle, str) and needle in haystack
            raise self.fail(node, f"contains() on a {_type_name(haystack)}")
        if name in ("startsWith", "endsWith"):
            text, affix = args
            if not (isinstance(text, str) and isinstance(affix, str)):
                raise self.fail(node, f"{name}() takes two strings")
            return text.startswith(affix) if name == "startsWith" else text.endswith(affix)
        if name == "format":
            return self.format(node, args[0], args[1:])
        if name == "toJSON":
            try:
                out = json.dumps(args[0], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                raise self.fail(node, f"toJSON(): {exc}") from None
            return self.text(node, out)
        if name == "fromJSON":
            source = args[0]
            if not isinstance(source, str):
                raise self.fail(node, f"fromJSON() takes a string, not a {_type_name(source)}")
            try:
                value = json.loads(source, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                raise self.fail(node, f"fromJSON(): invalid JSON ({type(exc).__name__}: {str(exc)[:100]})") from None
            if _json_depth_exceeds(value, MAX_DEPTH * 4):
                raise self.fail(node, "fromJSON(): value nested too deeply")
            return value
        raise self.fail(node, f"unknown function {name!r}")  # pragma: no cover - rejected by the parser

    def format(self, node: Call, template: Any, args: list[Any]) -> str:
        # Our own {N} substitution: str.format would allow "{0.__class__}" attribute access.
        if not isinstance(template, str):
            raise self.fail(node, "format() takes a string template")
        out: list[str] = []
        total, i, n = 0, 0, len(template)
        while i < n:
            ch = template[i]
            if ch == "{" and template.startswith("{{", i):
                piece, i = "{", i + 2
            elif ch == "}" and template.startswith("}}", i):
                piece, i = "}", i + 2
            elif ch == "{":
                end = template.find("}", i)
                index_text = template[i + 1:end] if end != -1 else ""
                if end == -1 or not index_text.isdigit() or len(index_text) > 4:
                    raise self.fail(node, f"format(): bad placeholder at offset {i} (use {{0}}, {{1}}, …)")
                index = int(index_text)
                if index >= len(args):
                    raise self.fail(node, f"format(): no argument {{{index}}} ({len(args)} given)")
                piece, i = to_text(args[index]), end + 1
            elif ch == "}":
                raise self.fail(node, f"format(): unmatched '}}' at offset {i}")
            else:
                end = min((p for p in (template.find("{", i), template.find("}", i)) if p != -1), default=n)
                piece, i = template[i:end], end
            total += len(piece)
            if total > self.limits.max_string:
                raise self.fail(node, f"string result longer than {self.limits.max_string} characters")
            out.append(piece)
        return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, list):
            stack.extend((x, depth + 1) for x in item)
        elif isinstance(item, dict):
            stack.extend((x, depth + 1) for x in item.values())
    return False


def _render_path(node: Expr) -> str:
    static = _static_path(node)
    if static is None:
        return "value"
    root, keys = static
    out = root
    for key in keys:
        is_name = isinstance(key, str) and key.replace("-", "_").isidentifier()
        out += f".{key}" if is_name else f"[{json.dumps(key)}]"
    return out


def evaluate(expr: Expr | str, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Any:
    """Evaluate an expression against ``{"inputs": …, "steps": {id: {"output", "status"}}, "item": …}``."""
    node = parse(expr) if isinstance(expr, str) else expr
    value = _Evaluator(context, limits).eval(node)
    if isinstance(value, list | tuple) and len(value) > limits.max_items:
        raise EvaluationError(f"list result longer than {limits.max_items} items", node.pos + 1)
    return value


# --- templates ----------------------------------------------------------------------------------

_OPEN, _CLOSE = "${{", "}}"


def find_templates(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, inner)`` for each ``${{ … }}`` (offsets 0-based, ``end`` exclusive).

    The closing ``}}`` is searched outside quoted strings, so ``format('{{x}}')`` works.
    """
    i = 0
    while True:
        start = text.find(_OPEN, i)
        if start == -1:
            return
        j, n, quote = start + len(_OPEN), len(text), ""
        while True:
            if j >= n:
                raise ExpressionError("'${{' without a closing '}}'", start + 1)
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 2
                    continue
                if ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif text.startswith(_CLOSE, j):
                break
            j += 1
        yield start, j + len(_CLOSE), text[start + len(_OPEN):j]
        i = j + len(_CLOSE)


@dataclass(frozen=True)
class Template:
    """A string with embedded expressions. ``parts`` alternate literal text and expressions.

    A string that is exactly one ``${{ … }}`` (surrounding whitespace ignored) is *raw*: it
    evaluates to the expression's value, keeping its type (number, list, object…).
    """

    source: str
    parts: tuple[str | Expr, ...]

    @property
    def raw(self) -> Expr | None:
        exprs = [p for p in self.parts if isinstance(p, Expr)]
        texts = [p for p in self.parts if isinstance(p, str)]
        if len(exprs) == 1 and all(not t.strip() for t in texts):
            return exprs[0]
        return None

    def expressions(self) -> list[Expr]:
        return [p for p in self.parts if isinstance(p, Expr)]

    def references(self) -> set[Reference]:
        found: set[Reference] = set()
        for expr in self.expressions():
            found |= expr.references()
        return found

    def render(self, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Any:
        raw = self.raw
        if raw is not None:
            return evaluate(raw, context, limits)
        out: list[str] = []
        total = 0
        for part in self.parts:
            piece = part if isinstance(part, str) else to_text(evaluate(part, context, limits))
            total += len(piece)
            if total > limits.max_string:
                raise EvaluationError(f"string result longer than {limits.max_string} characters")
            out.append(piece)
        return "".join(out)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Split a string into literal text and parsed expressions; columns in errors are in ``text``."""
    parts: list[str | Expr] = []
    last = 0
    for start, end, inner in find_templates(text):
        if start > last:
            parts.append(text[last:start])
        try:
            parts.append(parse(inner))
        except ExpressionError as exc:
            inner_col = exc.column or 1
            raise ExpressionError(exc.reason, start + len(_OPEN) + inner_col) from None
        last = end
    if last < len(text):
        parts.append(text[last:])
    return Template(text, tuple(parts))


def compile_value(value: Any) -> Any:
    """Parse every string in a JSON value into a :class:`Template` (raising on the first bad one)."""
    if isinstance(value, str):
        template = parse_template(value)
        return template if template.expressions() else value
    if isinstance(value, Mapping):
        return {k: compile_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [compile_value(v) for v in value]
    return value


def render(value: Any, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Any:
    """Evaluate every template in a JSON value (e.g. a step's ``with``), returning plain JSON."""
    return _render(value, context, limits, 0)


def _render(value: Any, context: Mapping[str, Any], limits: Limits, depth: int) -> Any:
    if depth > 200:
        raise EvaluationError("value nested too deeply")
    if isinstance(value, Template):
        return value.render(context, limits)
    if isinstance(value, str):
        return parse_template(value).render(context, limits) if _OPEN in value else value
    if isinstance(value, Mapping):
        return {k: _render(v, context, limits, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render(v, context, limits, depth + 1) for v in value]
    return value


def references_in(value: Any) -> set[Reference]:
    """All references made by templates anywhere in a JSON value."""
    found: set[Reference] = set()
    for _, template in walk_templates(value):
        found |= template.references()
    return found


def walk_templates(value: Any, path: tuple[PathKey, ...] = ()) -> Iterator[tuple[tuple[PathKey, ...], Template]]:
    """Yield ``(path, template)`` for every string holding ``${{`` in a JSON value."""
    stack: list[tuple[tuple[PathKey, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, Template):
            yield where, item
        elif isinstance(item, str):
            if _OPEN in item:
                yield where, parse_template(item)
        elif isinstance(item, Mapping):
            stack.extend(((*where, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(item))))

