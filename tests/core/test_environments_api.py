"""Tools with requirements through the server: a cached uv environment per requirement set."""

from __future__ import annotations

from tests.support.api import deploy, run
from tests.support.engine import build_wheel


def test_requirements_env_and_failed_build(api, unique, tmp_path):
    wheel = build_wheel(tmp_path, name=f"ryw{unique}")
    code = f"""
import ryw{unique}
async def main(text: str) -> str:
    return ryw{unique}.shout(text)
"""
    deploy(api, f"envtool-{unique}", code, requirements=[str(wheel)])
    first = run(api, f"envtool-{unique}", {"text": "hi"}, wait=120)
    assert first["status"] == "succeeded", first["error"]
    assert first["output"] == "HI!"
    logs = api.get(f"/runs/{first['id']}/logs").text
    assert "environment ready" in logs
    second = run(api, f"envtool-{unique}", {"text": "again"}, wait=60)
    assert second["output"] == "AGAIN!"

    deploy(api, f"broken-env-{unique}", "def main():\n    return 1\n",
           requirements=[f"surely-not-a-package-{unique}==9.9.9"])
    failed = run(api, f"broken-env-{unique}", wait=120)
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "environment_build_failed"
    assert f"surely-not-a-package-{unique}" in failed["error"]["traceback"]
