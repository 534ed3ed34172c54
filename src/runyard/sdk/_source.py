"""A function's source, wherever it was defined, with the module-level names it uses.

``tools.deploy(fn)`` ships source, never pickles: the server stores, shows and hashes the
text. This module finds that text and completes it:

- **where the function was defined** — a file (``inspect.getsource``), an IPython or
  Jupyter cell (registered in ``linecache``; the cell history ``_ih``), ``python -c``
  (``sys.orig_argv``), the plain REPL (``readline``'s history), ``exec`` of a string (a
  ``linecache`` entry its caller registered, else a string still held by a caller's frame).
  Text recovered from anywhere but a real file is accepted only when it compiles to the
  very bytecode of the live function, so an edited or stale copy is never shipped.
- **what it needs from its module** — the globals its code reads: imports (modules, and
  objects importable from another module) become import statements; literal constants
  become assignments; functions and classes of the same module are shipped as source,
  recursively. Anything else (an arbitrary object, a lambda assigned at runtime, a
  closure) raises :class:`SourceError` naming each such name.

The output is deterministic (imports, then constants, then definitions in dependency
order, ties by name), so an unchanged function always produces the same text and a
redeploy makes no new version.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import dis
import heapq
import inspect
import linecache
import math
import os
import re
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SourceError", "function_source"]

_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
_ANNOTATIONS_FLAG: int = __future__.annotations.compiler_flag

# Opcodes that read or write a module-level name (class bodies read through *_NAME).
_GLOBAL_OPS = {"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}
_LOCAL_STORE_OPS = {"STORE_NAME", "DELETE_NAME"}
_MAX_TEXT = 4 * 1024 * 1024  # a string larger than this is not a function's source
_MAX_CHUNK_LINES = 5000

_ADVICE = ("Define them inside the function, pass them in as inputs, or deploy a .py file or a "
           "package directory that creates them (client.tools.deploy(path)).")


class SourceError(ValueError):
    """The function cannot be deployed as source. ``names`` lists the names that could
    not be shipped (module-level names, closure variables, or the function itself when
    its source cannot be found)."""

    def __init__(self, message: str, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names: list[str] = list(names)


def function_source(fn: Callable[..., Any]) -> tuple[str, str]:
    """``(source, name)`` for deploying ``fn``: the function's own definition (its
    decorators dropped — they wrap it on this machine) preceded by the imports, constants,
    helper functions and classes of its module that it uses."""
    fn = inspect.unwrap(fn)
    name = getattr(fn, "__name__", "")
    if not inspect.isfunction(fn) or not name.isidentifier():
        raise SourceError(f"deploy needs a named function defined with def, got {fn!r}")
    if fn.__closure__:
        free = ", ".join(fn.__code__.co_freevars)
        raise SourceError(
            f"cannot deploy {name}: it is a closure over {free} (it is defined inside another "
            f"function). Move it to module level and pass {free} in as inputs or module-level "
            "constants.", fn.__code__.co_freevars,
        )
    code = _function_definition(fn)
    if code is None:
        where = fn.__code__.co_filename
        raise SourceError(
            f"cannot recover the source of {name} (defined in {where}): it is not in a file, in "
            "linecache, in the interpreter's history nor in a string a caller still holds. Deploy "
            "its source as a string (client.tools.deploy(code, name=...)) or from a .py file.", [name],
        )
    return _Bundle(fn).build(_strip_decorators(code)), name


# --- finding a definition's text -------------------------------------------------------------

def _trusted_file(filename: str | None) -> bool:
    """A real file on disk: what ``inspect`` reads from it is what was imported."""
    return bool(filename) and not filename.startswith("<") and os.path.isfile(filename)  # type: ignore[arg-type]


def _function_definition(fn: types.FunctionType) -> str | None:
    """The text of ``def fn`` (with its decorators), dedented."""
    filename = fn.__code__.co_filename
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        text = None
    if text is not None and (_trusted_file(filename) or _verify(text, fn)):
        return _ensure_newline(text)
    for candidate in _candidate_texts(filename, fn.__globals__, fn.__name__, "def"):
        for segment in reversed(_find_definitions(candidate, fn.__name__, "def")):
            if _verify(segment, fn):
                return segment
    return None


def _class_definition(cls: type, globals_: dict[str, Any]) -> str | None:
    """The text of ``class cls`` (with its decorators), dedented."""
    module = sys.modules.get(cls.__module__)
    trusted = (module is not None and getattr(module, "__dict__", None) is globals_
               and _trusted_file(getattr(module, "__file__", None)))
    try:
        text = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        text = None
    if text is not None and (trusted or _verify_class(text, cls)):
        return _ensure_newline(text)
    filename = next((f.__code__.co_filename for f in _class_functions(cls)), None)
    for candidate in _candidate_texts(filename, globals_, cls.__name__, "class"):
        for segment in reversed(_find_definitions(candidate, cls.__name__, "class")):
            if _verify_class(segment, cls):
                return segment
    return None


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _candidate_texts(filename: str | None, globals_: dict[str, Any], name: str, kind: str) -> Iterator[str]:
    """Texts that may hold the definition, most reliable first; each is verified."""
    needle = re.compile(rf"\b{kind}\s+{re.escape(name)}\b")
    seen: set[int] = set()

    def fresh(text: object) -> bool:
        if not isinstance(text, str) or len(text) > _MAX_TEXT or id(text) in seen:
            return False
        seen.add(id(text))
        return needle.search(text) is not None

    # The file the code says it came from, as linecache has it (IPython/Jupyter cells,
    # exec'd code whose caller registered it).
    if filename:
        lines = linecache.getlines(filename, globals_)
        if lines and fresh(text := "".join(lines)):
            yield text
    # IPython's input history, newest cell first.
    history = globals_.get("_ih")
    if isinstance(history, list):
        for cell in reversed(history):
            if fresh(cell):
                yield cell
    # python -c "...".
    for arg in getattr(sys, "orig_argv", sys.argv):
        if fresh(arg):
            yield arg
    # The plain REPL: readline keeps what was typed (only when the session loaded it).
    readline = sys.modules.get("readline")
    if readline is not None:
        try:
            count = readline.get_current_history_length()
            items = [readline.get_history_item(i) for i in range(1, count + 1)]
        except Exception:  # an editline build or a stub module: no history to read
            items = []
        if fresh(text := "\n".join(item for item in items if item is not None)):
            yield text
    # Other pseudo-files in linecache (newest first), e.g. Python 3.13's <python-input-N>.
    for key in reversed(list(linecache.cache)):
        if key.startswith("<"):
            entry = linecache.cache.get(key)
            if entry and len(entry) >= 3 and fresh(text := "".join(entry[2])):
                yield text
    # exec(source) with nothing registered: the string may still be held by a caller.
    frame = sys._getframe(1)
    while frame is not None:
        for namespace in (frame.f_locals, frame.f_globals):
            for value in list(namespace.values()):
                if fresh(value):
                    yield value
        frame = frame.f_back  # type: ignore[assignment]
    for value in list(globals_.values()):
        if fresh(value):
            yield value


def _find_definitions(text: str, name: str, kind: str) -> list[str]:
    """Every ``def name``/``class name`` statement in ``text``, dedented, in text order."""
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return _chunk_definitions(lines, name, kind)
    wanted = (ast.ClassDef,) if kind == "class" else (ast.FunctionDef, ast.AsyncFunctionDef)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, wanted) and node.name == name and node.end_lineno is not None:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            segment = textwrap.dedent("\n".join(lines[start - 1:node.end_lineno]))
            found.append((start, _ensure_newline(segment)))
    return [segment for _, segment in sorted(found)]


def _chunk_definitions(lines: list[str], name: str, kind: str) -> list[str]:
    """Definitions in text that does not parse as a whole (a REPL history with typos in
    it): from each ``def``/``class`` line, the longest run of lines parsing as exactly
    that one statement."""
    keyword = r"class" if kind == "class" else r"(?:async\s+)?def"
    head = re.compile(rf"^(\s*){keyword}\s+{re.escape(name)}\b")
    found: list[str] = []
    for i, line in enumerate(lines):
        match = head.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        start = i
        while start > 0 and lines[start - 1].strip().startswith("@") and _indent(lines[start - 1]) == indent:
            start -= 1
        best: str | None = None
        for j in range(i + 1, min(len(lines), i + _MAX_CHUNK_LINES) + 1):
            if j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
                continue  # a statement ends only before a line at its own indentation or less
            chunk = textwrap.dedent("\n".join(lines[start:j])) + "\n"
            try:
                body = ast.parse(chunk).body
            except SyntaxError:
                continue
            if len(body) != 1:
                break
            best = chunk
        if best is not None:
            found.append(best)
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _verify(text: str, fn: types.FunctionType) -> bool:
    """Does ``text`` define a function compiling to ``fn``'s bytecode?"""
    code = _compile(text, fn.__code__.co_flags & _FUTURE_FLAGS)
    if code is None:
        return False
    return any(isinstance(c, types.CodeType) and c.co_name == fn.__name__ and _same_code(c, fn.__code__)
               for c in code.co_consts)


def _verify_class(text: str, cls: type) -> bool:
    """Does ``text`` define a class named like ``cls`` whose methods compile to its
    methods' bytecode?"""
    functions = _class_functions(cls)
    flags = functions[0].__code__.co_flags & _FUTURE_FLAGS if functions else 0
    code = _compile(text, flags)
    if code is None:
        return False
    bodies = [c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == cls.__name__]
    if not bodies:
        return False
    body = bodies[0]
    nested = [c for c in body.co_consts if isinstance(c, types.CodeType)]
    return all(any(_same_code(c, f.__code__) for c in nested if c.co_name == f.__code__.co_name)
               for f in functions)


def _class_functions(cls: type) -> list[types.FunctionType]:
    """The plain functions defined in a class body (methods, static and class methods,
    property accessors)."""
    found: list[types.FunctionType] = []
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            found.extend(f for f in (value.fget, value.fset, value.fdel) if inspect.isfunction(f))
        elif inspect.isfunction(value) and value.__qualname__.startswith(cls.__qualname__ + "."):
            found.append(value)
    return found


def _compile(text: str, flags: int) -> types.CodeType | None:
    try:
        return compile(text, "<runyard-deploy>", "exec", flags=flags, dont_inherit=True)
    except (SyntaxError, ValueError):
        return None


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """The same function body. The bytecode is compared up to what the compiler decides
    from the module around it (a method call on an imported module compiles to
    ``LOAD_ATTR`` instead of ``LOAD_METHOD``), which the recovered text does not have."""
    if (a.co_names != b.co_names or a.co_varnames != b.co_varnames or a.co_freevars != b.co_freevars
            or a.co_cellvars != b.co_cellvars or len(a.co_consts) != len(b.co_consts)):
        return False
    if a.co_code != b.co_code and _shape(a) != _shape(b):
        return False
    for x, y in zip(a.co_consts, b.co_consts, strict=True):
        if isinstance(x, types.CodeType) or isinstance(y, types.CodeType):
            if not (isinstance(x, types.CodeType) and isinstance(y, types.CodeType) and _same_code(x, y)):
                return False
        elif type(x) is not type(y) or repr(x) != repr(y):
            return False
    return True


_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
_SAME_OP = {"LOAD_METHOD": "LOAD_ATTR"}


def _shape(co: types.CodeType) -> list[tuple[str, str]]:
    """Instructions as (operation, argument), jump targets as instruction indexes."""
    instructions = list(dis.get_instructions(co))
    index = {i.offset: n for n, i in enumerate(instructions)}
    shape: list[tuple[str, str]] = []
    for i in instructions:
        if i.opcode in _JUMPS:
            arg = str(index.get(i.argval, i.argval))
        elif isinstance(i.argval, types.CodeType):
            arg = i.argval.co_name
        else:
            arg = repr(i.argval)
        shape.append((_SAME_OP.get(i.opname, i.opname), arg))
    return shape


def _strip_decorators(code: str) -> str:
    """The deployed function's own decorators wrap it on this machine and would not exist
    (or mean the same) on the server: its text starts at ``def``."""
    node = ast.parse(code).body[0]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list:
        return "\n".join(code.splitlines()[node.lineno - 1:]) + "\n"
    return code


# --- what a definition uses ------------------------------------------------------------------

@dataclass
class _Uses:
    """Module-level names a definition reads: at definition time (decorators, bases,
    defaults, annotations, class bodies) and when called; names only in annotations;
    dotted module paths it reaches through attributes."""

    deftime: set[str] = field(default_factory=set)
    runtime: set[str] = field(default_factory=set)
    annotations: set[str] = field(default_factory=set)
    dotted: set[str] = field(default_factory=set)


def _uses(text: str, flags: int) -> _Uses:
    uses = _Uses()
    code = _compile(text, flags)
    if code is None:
        return uses
    tree = ast.parse(text)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}

    def walk(co: types.CodeType, deftime: bool) -> None:
        is_function = bool(co.co_flags & inspect.CO_NEWLOCALS)
        names = _global_names(co)
        if not is_function:  # a class body: names it assigns are its own
            names -= {i.argval for i in dis.get_instructions(co) if i.opname in _LOCAL_STORE_OPS}
        (uses.deftime if deftime and not is_function else uses.runtime).update(names)
        for const in co.co_consts:
            if isinstance(const, types.CodeType):
                walk(const, deftime and not is_function)

    walk(code, True)
    uses.deftime -= defined
    uses.runtime -= defined
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    uses.annotations |= _loaded_names(arg.annotation)
            if node.returns is not None:
                uses.annotations |= _loaded_names(node.returns)
        elif isinstance(node, ast.AnnAssign):
            uses.annotations |= _loaded_names(node.annotation)
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted:
                uses.dotted.add(dotted)
    uses.annotations -= defined
    return uses


def _global_names(co: types.CodeType) -> set[str]:
    return {i.argval for i in dis.get_instructions(co) if i.opname in _GLOBAL_OPS and isinstance(i.argval, str)}


def _loaded_names(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for const in ast.walk(node):  # string annotations ("Foo", or all of them under PEP 563)
        if isinstance(const, ast.Constant) and isinstance(const.value, str):
            try:
                names |= {n.id for n in ast.walk(ast.parse(const.value, mode="eval")) if isinstance(n, ast.Name)}
            except SyntaxError:
                pass
    return names


def _dotted(node: ast.Attribute) -> str | None:
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    return ".".join(reversed(parts))


# --- turning names into source ---------------------------------------------------------------

def _literal(value: Any, depth: int = 0) -> str | None:
    """Source for a literal value (numbers, strings, bytes, None, and tuples, lists,
    dicts and sets of literals), or None. Sets are written sorted: their iteration order
    changes between processes."""
    if depth > 50:
        return None
    if value is None or isinstance(value, bool):
        return repr(value)
    kind = type(value)
    if kind in (int, str, bytes):
        return repr(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else f"float({repr(value)!r})"
    if kind is complex:
        return repr(value) if math.isfinite(value.real) and math.isfinite(value.imag) else None
    if kind in (tuple, list, set, frozenset):
        items = [_literal(v, depth + 1) for v in value]
        if any(item is None for item in items):
            return None
        parts: list[str] = items  # type: ignore[assignment]
        if kind is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if kind is list:
            return "[" + ", ".join(parts) + "]"
        inner = "{" + ", ".join(sorted(parts)) + "}" if parts else ""
        if kind is set:
            return inner or "set()"
        return f"frozenset({inner})"
    if kind is dict:
        pairs = [(_literal(k, depth + 1), _literal(v, depth + 1)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def _import_of(name: str, value: Any, own_module: str | None) -> str | None:
    """An import statement binding ``name`` to ``value`` on the server, when ``value`` is a
    module or can be found (by identity) in a module other than the function's own."""
    if isinstance(value, types.ModuleType):
        module = value.__name__
        if module == "__main__" or getattr(value, "__spec__", None) is None and module not in sys.builtin_module_names:
            return None
        if module == name:
            return f"import {module}"
        head, _, tail = module.rpartition(".")
        if not head:
            return f"import {module} as {name}"
        return f"from {head} import {tail}" if tail == name else f"from {head} import {tail} as {name}"
    module = getattr(value, "__module__", None)
    if not isinstance(module, str) or module in ("__main__", own_module) or module not in sys.modules:
        return None
    attrs = [a for a in (getattr(value, "__qualname__", None), getattr(value, "__name__", None), name)
             if isinstance(a, str) and a.isidentifier()]
    parts = module.split(".")
    # The shortest public path that has it: "from pandas import DataFrame", not pandas.core.frame.
    prefixes = [".".join(parts[:k]) for k in range(1, len(parts) + 1)]
    prefixes = [p for p in prefixes if p == module or not any(s.startswith("_") for s in p.split("."))]
    for prefix in prefixes:
        holder = sys.modules.get(prefix)
        for attr in attrs:
            if holder is not None and getattr(holder, attr, None) is value:
                return f"from {prefix} import {attr}" if attr == name else f"from {prefix} import {attr} as {name}"
    return None


@dataclass
class _Definition:
    name: str
    source: str
    deftime: set[str]


class _Bundle:
    """Resolves every module-level name a function needs, recursively, and writes the
    result as one module."""

    def __init__(self, fn: types.FunctionType) -> None:
        self.fn = fn
        self.globals: dict[str, Any] = fn.__globals__
        self.module: str | None = self.globals.get("__name__")
        self.flags = fn.__code__.co_flags & _FUTURE_FLAGS
        self.future_annotations = bool(self.flags & _ANNOTATIONS_FLAG)
        self.imports: set[str] = set()
        self.constants: dict[str, str] = {}
        self.definitions: dict[str, _Definition] = {}
        self.unresolved: dict[str, str] = {}
        self.seen: set[str] = set()
        self.need_future = False

    def build(self, main_source: str) -> str:
        main = self.fn.__name__
        self.seen.add(main)
        self._add_definition(main, main_source)
        if self.unresolved:
            names = sorted(self.unresolved)
            listed = "\n".join(f"  - {n}: {self.unresolved[n]}" for n in names)
            raise SourceError(
                f"cannot deploy {main}: it uses module-level names that cannot be shipped as "
                f"source: {', '.join(names)}\n{listed}\n{_ADVICE}", names,
            )
        if set(self.definitions) == {main} and not (self.imports or self.constants or self.need_future):
            return main_source
        blocks: list[str] = []
        # "import a.b.c" binds "a" and loads "a.b": "import a" and "import a.b" go.
        plain = {s.removeprefix("import ") for s in self.imports if s.startswith("import ") and " as " not in s}
        imports = {s for s in self.imports
                   if not (s.removeprefix("import ") in plain and any(p.startswith(s[7:] + ".") for p in plain))}
        head = ["from __future__ import annotations"] if self.need_future else []
        head += sorted(imports, key=lambda s: (s.startswith("from "), s))
        if head:
            blocks.append("\n".join(head) + "\n")
        if self.constants:
            blocks.append("".join(self.constants[n] for n in sorted(self.constants)))
        blocks.extend(d.source for d in self._ordered(main))
        return "\n\n".join(b.rstrip("\n") + "\n" for b in blocks)

    def _ordered(self, main: str) -> list[_Definition]:
        """Definitions so that whatever one needs when it is defined comes first; ties by
        name, the deployed function as late as possible."""
        waiting = {n: {d for d in self.definitions[n].deftime if d in self.definitions and d != n}
                   for n in self.definitions}
        ready = [(n == main, n) for n, deps in waiting.items() if not deps]
        heapq.heapify(ready)
        out: list[_Definition] = []
        while ready:
            _, name = heapq.heappop(ready)
            out.append(self.definitions[name])
            for other, deps in waiting.items():
                if name in deps:
                    deps.discard(name)
                    if not deps:
                        heapq.heappush(ready, (other == main, other))
        placed = {d.name for d in out}
        out.extend(self.definitions[n] for n in sorted(self.definitions) if n not in placed)  # a cycle
        return out

    def _add_definition(self, name: str, source: str) -> None:
        uses = _uses(source, self.flags)
        self.definitions[name] = _Definition(name, source, uses.deftime)
        for used in sorted(uses.deftime | uses.runtime):
            self._resolve(used, annotation_only=False)
        for used in sorted(uses.annotations - uses.deftime - uses.runtime):
            self._resolve(used, annotation_only=True)
        for dotted in sorted(uses.dotted):
            self._submodule(dotted)

    def _submodule(self, dotted: str) -> None:
        """``xml.etree.ElementTree.parse`` used through a global ``xml``: import the
        submodule too, or the attribute would be missing on the server."""
        root, _, rest = dotted.partition(".")
        value = self.globals.get(root)
        if not isinstance(value, types.ModuleType) or not rest:
            return
        parts = rest.split(".")
        for k in range(len(parts), 0, -1):
            full = value.__name__ + "." + ".".join(parts[:k])
            submodule = sys.modules.get(full)
            if isinstance(submodule, types.ModuleType):
                if submodule.__name__ == full:  # not an alias the parent sets itself (os.path)
                    self.imports.add(f"import {full}")
                return

    def _resolve(self, name: str, *, annotation_only: bool) -> None:
        if name in self.seen or (name.startswith("__") and name.endswith("__")):
            return
        self.seen.add(name)
        if name not in self.globals:
            if hasattr(builtins, name):
                return
            if annotation_only:
                self._unevaluated_annotation()
                return
            self.unresolved[name] = "not defined in the function's module"
            return
        reason = self._ship(name, self.globals[name])
        if reason is None:
            return
        if annotation_only:
            self._unevaluated_annotation()
            return
        self.unresolved[name] = reason

    def _unevaluated_annotation(self) -> None:
        """A name only an annotation mentions and that cannot be shipped: under PEP 563
        (``from __future__ import annotations``) it stays a string on the server too; without
        it the annotation was a string literal, never evaluated at definition time."""
        if self.future_annotations:
            self.need_future = True

    def _ship(self, name: str, value: Any) -> str | None:
        """Record how ``name`` is shipped; a reason when it cannot be."""
        if isinstance(value, types.ModuleType):
            statement = _import_of(name, value, self.module)
            if statement is None:
                return f"module {value.__name__} cannot be imported by name"
            self.imports.add(statement)
            return None
        target = inspect.unwrap(value) if callable(value) else value
        if inspect.isfunction(target) and target.__globals__ is self.globals:
            return self._ship_function(name, value, target)
        if inspect.isclass(value):
            statement = _import_of(name, value, self.module)
            if statement is not None:
                self.imports.add(statement)
                return None
            if value.__name__ != name:
                return f"class {value.__name__} is bound under another name; use its own name"
            source = _class_definition(value, self.globals)
            if source is None:
                return f"the source of class {value.__name__} cannot be recovered"
            self._add_definition(name, source)
            return None
        literal = _literal(value)
        if literal is not None:
            self.constants[name] = f"{name} = {literal}\n"
            return None
        statement = _import_of(name, value, self.module)
        if statement is not None:
            self.imports.add(statement)
            return None
        if inspect.isfunction(target):
            return "a function from a namespace that cannot be imported (define it in this module)"
        return f"a {type(value).__name__} object; only functions, classes, imports and literal constants can be shipped"

    def _ship_function(self, name: str, value: Any, fn: types.FunctionType) -> str | None:
        if fn.__name__ == "<lambda>":
            return "a lambda assigned at runtime; write it as a def"
        if fn.__closure__:
            return f"a closure over {', '.join(fn.__code__.co_freevars)}; define it at module level"
        own = fn.__name__
        if own != name:
            # ``alias = helper``: ship the helper under its own name, then the alias.
            if value is not fn:
                return f"a decorated function bound under another name ({own})"
            if self.globals.get(own, fn) is not fn:
                return f"an alias of {own}, a name that now means something else"
            if own not in self.definitions:
                self.seen.add(own)
                reason = self._ship_function(own, fn, fn)
                if reason is not None:
                    return reason
            self.definitions[name] = _Definition(name, f"{name} = {own}\n", {own})
            return None
        source = _function_definition(fn)
        if source is None:
            return f"the source of {own} cannot be recovered"
        self._add_definition(name, source)
        return None
