"""Where a run's files live: its log, trace, input files and artifacts.

One owner for their blob keys and local paths, asked by the worker (which writes them),
the API (which serves them) and the run service (which stores inputs and deletes a
run's files). Keys are relative to the blob store; ``path`` is where a node reads them.
"""

from __future__ import annotations

from pathlib import Path

from runyard.store.blobs import BlobStore


class RunFiles:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @staticmethod
    def prefix(run_id: str) -> str:
        """Every file of the run is under this key prefix."""
        return f"runs/{run_id}"

    @staticmethod
    def log_key(run_id: str) -> str:
        return f"runs/{run_id}/log.txt"

    @staticmethod
    def trace_key(run_id: str) -> str:
        return f"runs/{run_id}/trace.jsonl"

    @staticmethod
    def execution_key(run_id: str) -> str:
        """Where each attempt's start is recorded: worker, environment, sandbox, limits (JSON lines)."""
        return f"runs/{run_id}/execution.jsonl"

    @staticmethod
    def inputs_prefix(run_id: str) -> str:
        """The run's own input files are under this key prefix (a workflow step's may be its workflow run's)."""
        return f"runs/{run_id}/inputs/"

    @staticmethod
    def input_key(run_id: str, field: str, filename: str) -> str:
        return f"runs/{run_id}/inputs/{field}/{filename}"

    @staticmethod
    def artifact_key(run_id: str, rel: str) -> str:
        return f"runs/{run_id}/artifacts/{rel}"

    def log(self, run_id: str) -> Path:
        return self.blobs.path(self.log_key(run_id))

    def trace(self, run_id: str) -> Path:
        return self.blobs.path(self.trace_key(run_id))

    def artifact(self, run_id: str, rel: str) -> Path:
        return self.blobs.path(self.artifact_key(run_id, rel))

    def execution(self, run_id: str) -> Path:
        return self.blobs.path(self.execution_key(run_id))

    def blob(self, key: str) -> Path:
        """A stored file by its key (an input file's or an artifact's, as its row records it)."""
        return self.blobs.path(key)

    def delete(self, run_id: str) -> None:
        self.blobs.delete_prefix(self.prefix(run_id))

    def delete_inputs(self, run_id: str) -> None:
        self.blobs.delete_prefix(f"{self.prefix(run_id)}/inputs")
