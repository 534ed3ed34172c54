"""Workers: claim runs, heartbeat, hand each run to the engine and record its end.

``supervisor.Worker`` does the work; ``logs`` keeps a run's log (capped, secrets
redacted). Database work goes through services (``RunService``, ``WorkerRegistry``);
execution through ``runyard.engine``.
"""
