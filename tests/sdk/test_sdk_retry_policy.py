"""The SDK's ``retry_on`` and ``retry_backoff_s`` on deploy and update."""

from __future__ import annotations

from runyard.sdk import Client


def test_sdk_deploy_and_update_a_retry_policy(client: Client, unique: str) -> None:
    tool = client.tools.deploy("def main():\n    return 1\n", name=f"sdkpolicy-{unique}", retries=1,
                               retry_on="error", retry_backoff_s=2)
    assert (tool.retry_on, tool.retry_backoff_s) == (["error"], 2.0)
    tool = client.tools.update(tool.name, retry_on=["worker_lost", "error"])
    assert (tool.version, tool.retry_on, tool.retry_backoff_s) == (2, ["error", "worker_lost"], 2.0)
    assert client.tools.get_version(tool.name, 1).retry_on == ["error"]
