"""A tool's source: a code string, one ``.py`` file or a ``.zip`` package.

Checked in the server with ``compile``/``ast`` only — user code is never imported here.
"""

from __future__ import annotations

import ast
import compileall
import io
import os
import re
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runyard.engine.introspect import SourceError, validate_source
from runyard.services.errors import ValidationFailed

MAX_SOURCE_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FUNC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ToolSource:
    kind: str          # code | py | zip
    filename: str      # name the source is stored and imported under
    data: bytes
    module: str
    entrypoint: str


def split_entrypoint(entrypoint: str, default_module: str) -> tuple[str, str]:
    """``func`` or ``package.module:func`` → (module, func)."""
    module, _, func = entrypoint.rpartition(":")
    module = module or default_module
    if not _MODULE_RE.match(module) or not _FUNC_RE.match(func):
        raise ValidationFailed(f"entrypoint {entrypoint!r} must be 'function' or 'module:function'",
                               code="invalid_entrypoint", details={"field": "entrypoint"})
    return module, func


def check_python(code: str, func: str, filename: str) -> None:
    """Compile (reporting the line of a syntax error) and find a top-level ``def func``."""
    try:
        validate_source(code, func)
    except SourceError as exc:
        if exc.line is not None:
            raise ValidationFailed(
                f"{filename}:{exc.line}: {exc.message}", code="invalid_source",
                details={"field": "code", "file": filename, "line": exc.line},
            ) from exc
        if exc.message.startswith("no top-level function"):
            found = _public_functions(code)
            hint = (f"; it defines {', '.join(found)}: set entrypoint to one of them "
                    f"(CLI: --entrypoint {found[0]})" if found else "")
            raise ValidationFailed(f"{filename} has no top-level function {func!r}{hint}",
                                   code="entrypoint_not_found",
                                   details={"field": "entrypoint", "file": filename, "entrypoint": func,
                                            "functions": found}) from exc
        raise ValidationFailed(f"{filename}: {exc.message}", code="invalid_source",
                               details={"field": "code", "file": filename}) from exc


def _public_functions(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")]


def from_code(code: str, entrypoint: str) -> ToolSource:
    if not isinstance(code, str) or not code.strip():
        raise ValidationFailed("code must be a non-empty string", details={"field": "code"})
    data = code.encode()
    if len(data) > MAX_SOURCE_BYTES:
        raise ValidationFailed("code is too large", code="source_too_large", details={"field": "code"})
    module, func = split_entrypoint(entrypoint, "main")
    if module != "main":
        raise ValidationFailed("a code string is module 'main'; use entrypoint 'function'",
                               code="invalid_entrypoint", details={"field": "entrypoint"})
    check_python(code, func, "main.py")
    return ToolSource("code", "main.py", data, "main", func)


def from_upload(filename: str, data: bytes, entrypoint: str) -> ToolSource:
    if len(data) > MAX_SOURCE_BYTES:
        raise ValidationFailed("upload is too large", code="source_too_large", details={"field": "file"})
    name = PurePosixPath(filename or "").name
    if name.endswith(".py"):
        stem = name[:-3]
        default_module = stem if _MODULE_RE.match(stem) and "." not in stem else "main"
        module, func = split_entrypoint(entrypoint, default_module)
        if module != default_module:
            raise ValidationFailed(f"a single file is module {default_module!r}", code="invalid_entrypoint",
                                   details={"field": "entrypoint"})
        try:
            code = data.decode()
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"{name} is not UTF-8 text", code="invalid_source",
                                   details={"field": "file"}) from exc
        check_python(code, func, f"{default_module}.py")
        return ToolSource("py", f"{default_module}.py", data, default_module, func)
    if name.endswith(".zip"):
        module, func = split_entrypoint(entrypoint, "main")
        code = _zip_module_source(data, module)
        check_python(code, func, module.replace(".", "/") + ".py")
        return ToolSource("zip", "source.zip", data, module, func)
    raise ValidationFailed("upload a .py file or a .zip package", code="unsupported_source",
                           details={"field": "file"})


def check_script(code: str, filename: str) -> None:
    """A script-mode tool's source: it must compile (no entry function is looked for)."""
    try:
        compile(ast.parse(code, filename=filename), filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ValidationFailed(f"{filename}:{exc.lineno}: {exc.msg}", code="invalid_source",
                               details={"field": "code", "file": filename, "line": exc.lineno}) from exc
    except ValueError as exc:  # e.g. a null byte
        raise ValidationFailed(f"{filename}: {exc}", code="invalid_source",
                               details={"field": "code", "file": filename}) from exc


def script_from_code(code: str, module: str = "main") -> ToolSource:
    """A script given as a string: module ``main``, run top to bottom (no entry function)."""
    if not isinstance(code, str) or not code.strip():
        raise ValidationFailed("code must be a non-empty string", details={"field": "code"})
    data = code.encode()
    if len(data) > MAX_SOURCE_BYTES:
        raise ValidationFailed("code is too large", code="source_too_large", details={"field": "code"})
    if module != "main":
        raise ValidationFailed("a code string is module 'main'; a script tool's entrypoint names its module",
                               code="invalid_entrypoint", details={"field": "entrypoint"})
    check_script(code, "main.py")
    return ToolSource("code", "main.py", data, "main", "")


def script_from_upload(filename: str, data: bytes, module: str = "main") -> ToolSource:
    """A script uploaded as a ``.py`` file (its own module) or in a ``.zip`` (``module``,
    dotted, names the ``.py`` file that runs)."""
    if len(data) > MAX_SOURCE_BYTES:
        raise ValidationFailed("upload is too large", code="source_too_large", details={"field": "file"})
    name = PurePosixPath(filename or "").name
    if name.endswith(".py"):
        stem = name[:-3]
        own = stem if _MODULE_RE.match(stem) and "." not in stem else "main"
        if module not in ("main", own):
            raise ValidationFailed(f"a single file is module {own!r}", code="invalid_entrypoint",
                                   details={"field": "entrypoint"})
        try:
            code = data.decode()
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"{name} is not UTF-8 text", code="invalid_source",
                                   details={"field": "file"}) from exc
        check_script(code, f"{own}.py")
        return ToolSource("py", f"{own}.py", data, own, "")
    if name.endswith(".zip"):
        if not _MODULE_RE.match(module):
            raise ValidationFailed(f"entrypoint {module!r} must name the script's module (e.g. pkg.job)",
                                   code="invalid_entrypoint", details={"field": "entrypoint"})
        code = _zip_module_source(data, module, package_init=False)
        check_script(code, module.replace(".", "/") + ".py")
        return ToolSource("zip", "source.zip", data, module, "")
    raise ValidationFailed("upload a .py file or a .zip package", code="unsupported_source",
                           details={"field": "file"})


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    total = 0
    members = []
    for info in zf.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise ValidationFailed(f"zip entry {info.filename!r} escapes the package", code="invalid_source",
                                   details={"field": "file"})
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise ValidationFailed("zip expands beyond the size limit", code="source_too_large",
                                   details={"field": "file"})
        members.append(info)
    return members


def _zip_module_source(data: bytes, module: str, *, package_init: bool = True) -> str:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValidationFailed("file is not a valid zip archive", code="invalid_source",
                               details={"field": "file"}) from exc
    with zf:
        names = {m.filename for m in _safe_members(zf)}
        base = module.replace(".", "/")
        for candidate in (f"{base}.py", f"{base}/__init__.py")[:2 if package_init else 1]:
            if candidate in names:
                try:
                    return zf.read(candidate).decode()
                except UnicodeDecodeError as exc:
                    raise ValidationFailed(f"{candidate} is not UTF-8 text", code="invalid_source",
                                           details={"field": "file"}) from exc
    raise ValidationFailed(f"zip has no module {module!r} ({base}.py or {base}/__init__.py)",
                           code="entrypoint_not_found", details={"field": "entrypoint", "module": module})


def materialise(kind: str, filename: str, data: bytes, target: Path) -> None:
    """Lay the source out as an importable directory at ``target`` (atomically)."""
    if target.exists():
        return
    # A name of its own: other threads and nodes sharing the data dir may lay it out too.
    tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex}")
    tmp.mkdir(parents=True)
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp, members=_safe_members(zf))
    else:
        (tmp / filename).write_bytes(data)
    # Byte-compile once here, so runs (which never write bytecode) load it instead of
    # compiling the source every time; the loader points tracebacks at the real path.
    compileall.compile_dir(tmp, quiet=2, workers=1)
    try:
        os.replace(tmp, target)
    except OSError:  # another worker won the race: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
