"""Signing in to the web UI over plain HTTP (httpx), for the security tests and to seed a browser."""

from __future__ import annotations

import re

import httpx

from tests.support.servers import Server

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF_RE.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def browser_client(server: Server) -> httpx.Client:
    """A client like a browser: keeps cookies, does not follow redirects (tests look at them)."""
    return httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30)


def sign_in(server: Server, key: str | None = None, *, client: httpx.Client | None = None,
            username: str | None = None, password: str | None = None, next_path: str = "/ui") -> httpx.Client:
    """A client holding a session signed in with ``key`` (or a username and password)."""
    client = client or browser_client(server)
    form = client.get("/ui/sign-in")
    data = {"csrf_token": csrf_of(form.text), "next": next_path}
    if username is not None:
        data.update(method="password", username=username, password=password or "")
    else:
        data.update(method="key", api_key=key or server.admin_key)
    response = client.post("/ui/sign-in", data=data)
    assert response.status_code == 303, response.text[:500]
    return client


def page_csrf(client: httpx.Client, path: str = "/ui") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    return csrf_of(page.text)


NEXT_PAGE_RE = re.compile(r'<a href="([^"]+)">Next page</a>')


def pages_text(client: httpx.Client, path: str, *, limit: int = 50) -> str:
    """The text of a listing page and every page after it (the suite's shared server holds
    many more items than one page)."""
    texts: list[str] = []
    url: str | None = path
    while url and len(texts) < limit:
        response = client.get(url)
        assert response.status_code == 200, response.text[:500]
        texts.append(response.text)
        found = NEXT_PAGE_RE.search(response.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    return "\n".join(texts)
