"""The web UI under /ui: server-rendered pages over the same services as the API.

One module per page group (``home``, ``tools``, ``runs``, ``settings``…), each with its own
template directory; ``core`` holds what they share (session, CSRF, headers, error pages).
docs/ui.md says how to add a page.
"""

from __future__ import annotations

from fastapi import APIRouter

from runyard.ui import (
    auth,
    data,
    data_query,
    data_uploads,
    evaluation,
    home,
    not_found,
    runs,
    settings,
    settings_more,
    static_files,
    synth,
    tools,
    workflows,
)
from runyard.ui.core import UI_PREFIX

router = APIRouter(include_in_schema=False)
for _module in (static_files, auth, home, tools, runs, workflows, evaluation, data_query, data_uploads, data, synth,
                settings, settings_more, not_found):  # not_found last
    router.include_router(_module.router, prefix=UI_PREFIX)

__all__ = ["router", "UI_PREFIX"]
