"""Upload previews and kinds, expiry of unfinished uploads, and signed URLs kept out of the access log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from runyard.api.accesslog import redact_query
from runyard.config import Settings
from runyard.services.access import Principal
from runyard.wiring import Platform

CSV = b"email,site,amount,day\na@x.org,https://x.org,1.5,2024-01-02\nb@y.com,http://y.com/p,2,2024-02-03\n"


def test_a_preview_of_an_upload_parses_and_infers_without_saving(api, unique):
    upload = api.post("/uploads", json={"filename": "p.csv", "size": len(CSV)}).json()
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.put(upload["parts"][0]["url"], content=CSV).status_code == 200
    preview = api.post("/ingest/preview", json={"upload_id": upload["id"], "key": upload["key"]})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert [r["email"] for r in body["rows"]] == ["a@x.org", "b@y.com"]
    inferred = api.post("/infer-schema", json={"upload_id": upload["id"], "key": upload["key"]}).json()
    by_name = {c["name"]: c for c in inferred["columns"]}
    assert by_name["amount"]["type"] == "float" and by_name["day"]["type"] == "date"
    assert by_name["email"]["kinds"][0]["kind"] == "email" and by_name["site"]["kinds"][0]["kind"] == "url"
    wrong = api.post("/ingest/preview", json={"upload_id": upload["id"], "key": "upk_wrong"})
    assert wrong.status_code == 403
    assert api.get("/datasets", params={"limit": 1000}).json()["items"] is not None  # nothing was made


def test_signed_urls_never_reach_the_access_log(api, server):
    assert redact_query("expires=1&signature=abc&x=1") == "expires=1&signature=REDACTED&x=1"
    upload = api.post("/uploads", json={"filename": "p.csv", "size": 4}).json()
    url = upload["parts"][0]["url"]
    signature = url.partition("signature=")[2]
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.put(url, content=b"a\n1\n").status_code == 200
    logged = server.logs()
    assert f"/uploads/{upload['id']}/parts/1?" in logged  # the request is in the access log...
    assert signature not in logged  # ...without what would let someone replay it


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Platform, Principal]]:
    platform = Platform(Settings(data_dir=tmp_path / "data"))
    key, _ = platform.bootstrap_admin_key()
    try:
        yield platform, platform.tokens.authenticate(key)
    finally:
        platform.close()


def test_unfinished_uploads_expire_and_their_bytes_go(node: tuple[Platform, Principal]) -> None:
    platform, admin = node
    made = platform.uploads.create(admin, filename="x.csv", size=10, base_url="http://127.0.0.1")
    data = platform.blobs.path(f"uploads/{made['id']}/data")
    assert data.exists() and platform.uploads.expire() == 0
    later = platform.uploads.clock() + timedelta(days=2)
    platform.uploads.clock = lambda: later
    assert platform.uploads.expire() == 1
    assert not data.exists() and platform.uploads.get(admin, made["id"])["status"] == "expired"
