"""JSON responses rendered with orjson (fast, handles datetimes)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


def render_json(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return render_json(content)
