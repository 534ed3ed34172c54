"""runyard.synth — deterministic, vectorised synthetic data from templates.

Usable in-process without a server::

    from runyard import synth

    template = synth.parse_template(document)           # dict, JSON or YAML text
    plan = synth.plan_generation(template, count=1_000_000, seed=42)
    for piece in synth.stream(plan, "csv", workers=2):  # bytes, in order
        out.write(piece)
"""

from __future__ import annotations

try:  # the engine's own dependencies come with the server extra, not the client install
    import duckdb  # noqa: F401
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as exc:
    missing = exc.name or "a dependency"
    raise ModuleNotFoundError(
        f"runyard.synth needs {missing}, which the client-only install (`pip install runyard`) leaves out: "
        "pip install 'runyard[server]' to generate in-process, or use a server through the client "
        "(client.templates.generate / `runyard generate`)", name=exc.name) from None

from .errors import GenerationError, SynthError, TemplateError
from .formats import ENCODERS, FORMATS, make_encoder, stream, write
from .generators import ALIASES, GENERATORS, ReferenceResolver
from .locales import SNAPSHOT_VERSION, SUPPORTED_LOCALES
from .pipeline import (
    PREVIEW_ROWS,
    Plan,
    apply_overrides,
    default_workers,
    generate_table,
    iter_batches,
    plan_generation,
    preview_rows,
)
from .seeding import BLOCK_ROWS, normalize_seed
from .template import Field, FieldSpec, Template, load_document, parse_template

__all__ = [
    "ALIASES", "BLOCK_ROWS", "ENCODERS", "FORMATS", "GENERATORS", "PREVIEW_ROWS", "SNAPSHOT_VERSION",
    "SUPPORTED_LOCALES", "Field", "FieldSpec", "GenerationError", "Plan", "ReferenceResolver", "SynthError",
    "Template", "TemplateError", "apply_overrides", "default_workers", "generate_table", "iter_batches",
    "load_document", "make_encoder", "normalize_seed", "parse_template", "plan_generation", "preview_rows",
    "stream", "write",
]
