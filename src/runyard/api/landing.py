"""``/``: a short page for whoever opens the server's address, pointing at the API docs and the CLI.

A browser (``Accept: text/html``) gets HTML; anything else gets the same as JSON.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from runyard.api.responses import JSON

router = APIRouter(tags=["health"])

API_PREFIX = "/api/v1"


def _links(base: str) -> dict[str, str]:
    return {"docs": f"{base}/docs", "openapi": f"{base}{API_PREFIX}/openapi.json", "api": f"{base}{API_PREFIX}",
            "health": f"{base}/healthz"}


@router.get("/", include_in_schema=False, response_model=None)
async def landing(request: Request) -> JSON | HTMLResponse | RedirectResponse:
    base = str(request.base_url).rstrip("/")
    links = _links(base)
    cli = [f"runyard login --base-url {base}   # the admin key is in <data-dir>/admin-key",
           "runyard deploy add.py", "runyard run add -i a=40"]
    if "text/html" in request.headers.get("accept", "") and request.query_params.get("page") != "about":
        return RedirectResponse("/ui", status_code=307)  # a browser: the web UI (?page=about: this page)
    if "text/html" in request.headers.get("accept", ""):
        items = "".join(f'<li><a href="{escape(url)}">{escape(name)}</a> — <code>{escape(url)}</code></li>'
                        for name, url in links.items())
        commands = escape("\n".join(cli))
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>runyard</title></head>"
            "<body style='font-family: sans-serif; max-width: 44rem; margin: 3rem auto'>"
            "<h1>runyard</h1><p>Python functions as versioned tools with an HTTP API; every call a durable run. "
            f"This server speaks the API under <code>{API_PREFIX}</code> "
            "(<code>Authorization: Bearer &lt;key&gt;</code>).</p>"
            f"<ul>{items}</ul><h2>From a terminal</h2><pre>{commands}</pre></body></html>")
    return JSON({"name": "runyard", "api": links["api"], "docs": links["docs"], "openapi": links["openapi"],
                 "health": links["health"], "cli": cli})
