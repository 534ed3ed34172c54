"""Workflows: definitions, the expression language, the step graph and nesting checks.

A pure library (no server imports); the runs engine drives it. See docs/workflows.md.
"""

from runyard.workflows.definition import (
    ERROR_CODES,
    Definition,
    Step,
    ToolSchemaLookup,
    Uses,
    WorkflowResolver,
    parse_definition,
    parse_uses,
    validate,
)
from runyard.workflows.expressions import (
    EvaluationError,
    Expr,
    ExpressionError,
    Limits,
    Template,
    UndefinedReferenceError,
    evaluate,
    parse,
    parse_template,
    render,
)
from runyard.workflows.graph import Graph, Ready, find_cycle, layers
from runyard.workflows.nesting import check_nesting
from runyard.workflows.source import Issue, WorkflowError

__all__ = [
    "ERROR_CODES", "Definition", "EvaluationError", "Expr", "ExpressionError", "Graph", "Issue", "Limits", "Ready",
    "Step", "Template", "ToolSchemaLookup", "UndefinedReferenceError", "Uses", "WorkflowError", "WorkflowResolver",
    "check_nesting", "evaluate", "find_cycle", "layers", "parse", "parse_definition", "parse_template", "parse_uses",
    "render", "validate",
]
