"""/ui/static/{name}: the stylesheet and scripts shipped in the package (a fixed list: no path
from the request ever reaches the file system)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from runyard.services.errors import NotFound
from runyard.ui.core import HERE, UiRoute

router = APIRouter(route_class=UiRoute, include_in_schema=False)
ASSETS = {"ui.css": "text/css; charset=utf-8", "code.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8",
          "data.js": "text/javascript; charset=utf-8",
          "htmx.min.js": "text/javascript; charset=utf-8"}
_cache: dict[str, bytes] = {}


@router.get("/static/{name}")
async def static_asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no asset {name!r}", code="not_found")
    if name not in _cache:
        if name == "code.css":  # the highlighter's classes, from the installed Pygments
            from runyard.ui.tools import code_css
            _cache[name] = code_css().encode()
        else:
            _cache[name] = (HERE / "static" / name).read_bytes()
    return Response(_cache[name], media_type=ASSETS[name], headers={"cache-control": "public, max-age=3600"})
