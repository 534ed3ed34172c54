"""Turning what users hand to ``tools.deploy`` and to run inputs into request bodies."""

from __future__ import annotations

import io
import json
import mimetypes
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._base import FilePart
from ._source import function_source

__all__ = ["CodeSource", "resolve_code", "split_file_inputs", "slugify"]

# Never worth shipping in a tool package: caches, VCS data and local environments.
_ZIP_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                  ".ruff_cache", "node_modules", ".runyard"}
_ZIP_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass
class CodeSource:
    """Either inline code (sent as JSON) or one file part (sent as multipart)."""

    code: str | None = None
    file: FilePart | None = None
    default_name: str | None = None
    default_entrypoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def slugify(name: str) -> str:
    """A tool-name-safe slug (lowercase letters, digits, ``-``, ``_``; ≤ 64) from a file,
    directory or function name."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64]
    return slug or "tool"


def _zip_directory(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            # Sorted walk: the same directory always zips to the same member order.
            dirnames[:] = sorted(d for d in dirnames if d not in _ZIP_SKIP_DIRS)
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                if full.suffix in _ZIP_SKIP_SUFFIXES or full.is_symlink() and not full.exists():
                    continue
                zf.write(full, full.relative_to(root).as_posix())
    return buf.getvalue()


def _looks_like_path(value: str) -> bool:
    # A code string always contains a newline or a "def"; a path never has a newline.
    return "\n" not in value and Path(value).expanduser().exists()


def resolve_code(source: str | os.PathLike[str] | Callable[..., Any]) -> CodeSource:
    """Accepts code as a string, a function object (its source is deployed), a path to a
    ``.py`` file, a ``.zip``, or a package directory (zipped in memory)."""
    if callable(source) and not isinstance(source, str | os.PathLike):
        code, fn_name = function_source(source)
        return CodeSource(code=code, default_name=slugify(fn_name), default_entrypoint=fn_name)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source).expanduser().resolve()
        if path.is_dir():
            data = _zip_directory(path)
            return CodeSource(
                file=FilePart("file", f"{path.name}.zip", data, "application/zip"), default_name=slugify(path.name)
            )
        if not path.is_file():
            raise FileNotFoundError(f"no such file or directory: {path}")
        if path.suffix == ".zip":
            return CodeSource(file=FilePart("file", path.name, path, "application/zip"), default_name=slugify(path.stem))
        if path.suffix != ".py":
            raise ValueError(f"deploy expects a .py file, a .zip or a directory, got {path.name}")
        return CodeSource(
            file=FilePart("file", path.name, path, "text/x-python"), default_name=slugify(path.stem)
        )
    if isinstance(source, str):
        return CodeSource(code=source)
    raise TypeError(f"cannot deploy a {type(source).__name__}")


def _is_file(value: Any) -> bool:
    """An open file or file-like object: ``open(p, "rb")``, ``io.BytesIO``…"""
    return isinstance(value, io.IOBase) or (callable(getattr(value, "read", None))
                                           and not isinstance(value, str | bytes | Mapping))


def split_file_inputs(inputs: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[FilePart]]:
    """Separate top-level ``pathlib.Path`` inputs and open binary files (uploaded as files,
    field name = input name) from the JSON inputs. An open file is read whole once (so a
    retry re-sends the same bytes); its name is its base name, else the input's name."""
    plain: dict[str, Any] = {}
    files: list[FilePart] = []
    for key, value in (inputs or {}).items():
        if isinstance(value, Path):
            path = value.expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"input {key!r}: no such file: {path}")
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files.append(FilePart(key, path.name, path, ctype))
        elif _is_file(value):
            data = value.read()
            if not isinstance(data, bytes | bytearray):
                raise TypeError(f"input {key!r}: open the file in binary mode ('rb')")
            raw_name = getattr(value, "name", None)
            filename = os.path.basename(raw_name) if isinstance(raw_name, str) and raw_name else key
            ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            files.append(FilePart(key, filename, bytes(data), ctype))
        else:
            plain[key] = value
    return plain, files


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
