"""The layers' import rules (docs/architecture.md): checked on the source, so a new import
that breaks one fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "runyard"

# package -> the runyard packages/modules it must never import
FORBIDDEN = {
    "engine": {"api", "schemas", "services", "store", "worker", "sdk", "cli", "synth", "wiring", "node", "config",
               "events", "ids", "timeutil"},
    "store": {"api", "services", "worker", "engine", "cli", "wiring", "node"},
    "services": {"api", "worker", "cli", "wiring", "node"},
    "worker": {"api", "cli", "node"},
    "sdk": {"api", "schemas", "services", "store", "worker", "engine", "wiring", "node", "config", "synth", "events"},
    "events": {"api", "services", "store", "worker", "engine", "cli", "wiring"},
    "synth": {"api", "schemas", "services", "store", "worker", "engine", "sdk", "cli", "wiring", "node", "events"},
    "data": {"api", "schemas", "services", "store", "worker", "engine", "sdk", "cli", "synth", "wiring", "node",
             "config", "events", "ids", "timeutil"},
    "api": {"cli", "node"},
    # the web UI: pages over the services (and api's shared HTTP helpers), never the store directly
    "ui": {"cli", "node", "store", "worker", "engine", "sdk"},
    "schemas": {"api", "worker", "engine", "store", "cli", "wiring", "node", "sdk"},
    "wiring": {"api", "cli", "node", "worker", "sdk"},
    "cli": {"api", "schemas", "services", "store", "worker", "events"},
    "triggers": {"api", "schemas", "services", "store", "worker", "engine", "sdk", "cli", "wiring", "node",
                 "events", "data", "synth"},
    "workflows": {"api", "schemas", "services", "store", "worker", "engine", "sdk", "cli", "wiring", "node", "events", "data", "synth"},
    # the language-model client and prompts: pure (services/llm.py holds providers, metering, traces)
    "llm": {"api", "schemas", "services", "store", "worker", "engine", "sdk", "cli", "wiring", "node", "config",
            "events", "data", "synth", "triggers", "workflows"},
    # the MCP protocol side: served in process by api/mcp.py and, through the SDK, by `runyard mcp`
    "mcp_server": {"api", "schemas", "services", "store", "worker", "engine", "cli", "wiring", "node", "config",
                   "events", "data", "synth"},
    # reference SDK surfaces: thin layers over the SDK, importable with the light client install
    "compat": {"api", "schemas", "services", "store", "worker", "engine", "cli", "wiring", "node", "config",
               "events", "data", "synth", "triggers", "workflows", "llm", "mcp_server", "ui"},
}


def _runyard_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "runyard" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules(package: str) -> list[Path]:
    target = SRC / package
    return sorted(target.rglob("*.py")) if target.is_dir() else [SRC / f"{package}.py"]


def test_each_layer_imports_only_what_it_may() -> None:
    broken = []
    for package, forbidden in FORBIDDEN.items():
        modules = _modules(package)
        assert modules, f"no modules for {package}"
        for module in modules:
            bad = (_runyard_imports(module) & forbidden) - {package}
            if bad:
                broken.append(f"{module.relative_to(SRC)} imports runyard.{', runyard.'.join(sorted(bad))}")
    assert not broken, "\n".join(broken)


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import runyard.services.runs\nfrom runyard.store import db\nfrom . import y\n")
    assert _runyard_imports(sample) == {"services", "store"}
