"""The workflow driver of a worker node: moves workflow runs on when their steps end.

A step's end publishes ``workflow.advance`` with its workflow run's id (bridged to every
node on PostgreSQL); the driver advances that run on one of its threads, one advance per
run at a time on this node (pokes that arrive meanwhile make one more pass). A sweep every
``sweep_s`` advances every going workflow run and ends expired waits, so a node that died
between a step's end and its advance delays a workflow, never strands it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runyard.worker.poked_runs import SWEEP_S, PokedRunDriver

if TYPE_CHECKING:
    from runyard.wiring import Platform


class WorkflowDriver(PokedRunDriver):
    topic = "workflow.advance"
    name = "workflows"

    def __init__(self, platform: Platform, *, threads: int = 2, sweep_s: float = SWEEP_S) -> None:
        super().__init__(platform.hub, threads=threads, sweep_s=sweep_s)
        self.platform = platform

    def handle(self, run_id: str) -> None:
        self.platform.workflow_runs.advance(run_id)

    def sweep(self) -> None:
        self.platform.workflow_runs.sweep()
