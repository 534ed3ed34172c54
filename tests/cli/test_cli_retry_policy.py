"""``runyard deploy --retry-on/--retry-backoff-s``."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Invoke, as_json


def test_deploy_with_a_retry_policy(cli: Invoke, tmp_path: Path, unique: str) -> None:
    f = tmp_path / f"policy_{unique}.py"
    f.write_text("def main():\n    return 1\n")
    r = cli("deploy", str(f), "--retries", "2", "--retry-on", "error", "--retry-on", "timeout",
            "--retry-backoff-s", "1.5", "--json")
    assert r.exit_code == 0, r.output
    tool = as_json(r)
    assert (tool["retries"], tool["retry_on"], tool["retry_backoff_s"]) == (2, ["error", "timeout"], 1.5)
    r = cli("tools", "get", f"policy_{unique}")
    assert r.exit_code == 0, r.output
    assert "error, timeout" in r.stdout and "1.5" in r.stdout
    r = cli("deploy", str(f), "--retry-on", "sometimes")
    assert r.exit_code == 1 and "retry_on" in r.stderr

