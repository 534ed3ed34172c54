from .runs import Artifacts, AsyncArtifacts, AsyncRunFiles, AsyncRuns, RunFiles, Runs
from .secrets import AsyncSecrets, Secrets
from .tokens import AsyncTokens, Tokens
from .tools import AsyncTools, Tools

__all__ = [
    "Tools", "AsyncTools", "Runs", "AsyncRuns", "Artifacts", "AsyncArtifacts", "RunFiles", "AsyncRunFiles",
    "Secrets", "AsyncSecrets", "Tokens", "AsyncTokens",
]
