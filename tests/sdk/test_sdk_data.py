"""The data workspace through the SDK (users, namespaces, grants, datasets, ingestion,
uploads, queries, usage), against the real server on loopback; faults come from the
real fault proxy in front of it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from runyard.sdk.models import Dataset, Ingestion, IngestionResult, Namespace, QueryResult, Token, UsageDay
from runyard.sdk.resources.datasets import upload_state_dir
from runyard.sdk.resources.tokens import parse_grant
from tests.support.sdk import Fault, FaultProxy

MB = 1024 * 1024
PART = 5 * MB  # the smallest part size the server takes


@pytest.fixture(autouse=True)
def _upload_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Resume state goes to the test's own directory, never the real ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path / "cache"


@pytest.fixture
def ns(client: Client, unique: str) -> str:
    return client.namespaces.create(f"ns-{unique}", description="tests").name


def _csv(path: Path, rows: int, *, start: int = 0) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "city", "amount", "note"])
        for i in range(start, start + rows):
            w.writerow([i, f"city{i % 7}", f"{i * 1.5:.2f}", f"a note of some length for row {i}"])
    return path


# ---------------------------------------------------------------------------- no server needed


def test_grants_are_read_from_text_mappings_and_models() -> None:
    assert parse_grant("sales") == {"namespace": "sales", "access": "read"}
    assert parse_grant("sales/orders:write") == {"namespace": "sales", "dataset": "orders", "access": "write"}
    assert parse_grant({"namespace": "a", "dataset": "b"}) == {"namespace": "a", "dataset": "b", "access": "read"}
    with pytest.raises(ValueError):
        parse_grant("sales:admin")
    with pytest.raises(ValueError):
        parse_grant("/orders")


def test_rows_are_batched_lazily_with_json_safe_values() -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from runyard.sdk.resources.datasets import _batches

    plain = {"a": 1, "b": [1, {"c": None}]}
    batches = list(_batches(iter([plain, {"when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
                                          "day": date(2024, 1, 2), "n": Decimal("1.5")}, {"x": 1}]), 2))
    assert batches[0][0] is plain  # plain rows pass untouched
    assert batches[0][1] == {"when": "2024-01-02T03:04:00+00:00", "day": "2024-01-02", "n": 1.5}
    assert batches[1] == [{"x": 1}]


def test_upload_state_lives_under_the_cache_dir(_upload_cache: Path) -> None:
    assert upload_state_dir() == _upload_cache / "runyard" / "uploads"


def test_query_arrow_without_pyarrow_says_how_to_get_it() -> None:
    from tests.support.cli import run_blocked

    proc = run_blocked(
        "from runyard import Client\n"
        "c = Client(api_key='x', base_url='http://127.0.0.1:9')\n"
        "try:\n    c.datasets.query_arrow('select 1')\n"
        "except ImportError as e:\n    print('IMPORT', e)\n"
    )
    assert "IMPORT query_arrow needs pyarrow" in proc.stdout, proc.stderr


# ---------------------------------------------------------------------------- users and access


def test_users_me_login_and_a_key_narrowed_by_grants(client: Client, server: Any, unique: str) -> None:
    me = client.users.me()
    assert me.username == "admin" and me.token_role == "admin" and me.restricted is False
    name = f"u-{unique}"
    user = client.users.create(name, role="member", password="correct horse battery", display_name="U")
    assert user.username == name and user.has_password and user.role == "member"
    assert client.users.get(name).display_name == "U"
    assert name in [u.username for u in client.users.list()]
    assert client.users.update(name, email=f"{name}@example.com").email == f"{name}@example.com"

    session = client.users.login(name, "correct horse battery")
    assert isinstance(session, Token) and session.key and session.expires_at is not None
    with pytest.raises(AuthenticationError):
        client.users.login(name, "wrong password!!")
    with Client(api_key=session.key, base_url=server.base_url) as as_user:
        assert as_user.users.me().username == name

    # Shared read access to a namespace, then a key of that user narrowed to one dataset.
    ns = client.namespaces.create(f"share-{unique}").name
    member = client.namespaces.add_member(ns, name, access="read")
    assert (member.username, member.access) == (name, "read")
    assert [(m.username, m.access) for m in client.namespaces.members(ns)] == [(name, "read")]
    token = client.tokens.create(f"narrow-{unique}", role="member", user=name, grants=[f"{ns}:read"])
    assert token.user_id == user.id
    assert token.restrictions is not None and token.restrictions.grants is not None
    assert [(g.namespace, g.access) for g in token.restrictions.grants] == [(ns, "read")]
    perms = client.tokens.permissions(token.id)
    assert perms.user == name and [(p.namespace, p.access) for p in perms.namespaces] == [(ns, "read")]
    client.namespaces.remove_member(ns, name)
    assert list(client.namespaces.members(ns)) == []

    client.users.delete(name)
    with pytest.raises(NotFoundError):
        client.users.get(name)
    with Client(api_key=session.key, base_url=server.base_url, max_retries=0) as gone, \
            pytest.raises(AuthenticationError):
        gone.users.me()


def test_namespaces_create_list_rename_delete(client: Client, unique: str) -> None:
    ns = client.namespaces.create(f"n-{unique}", private=False, description="d", field_definitions={"a": "an a"})
    assert isinstance(ns, Namespace) and ns.private is False and ns.owner == "admin" and ns.access == "owner"
    with pytest.raises(ConflictError) as dup:
        client.namespaces.create(f"n-{unique}")
    assert dup.value.code == "namespace_exists"
    assert ns.name in [n.name for n in client.namespaces.list(owner="self")]
    renamed = client.namespaces.update(ns.name, name=f"m-{unique}", description="e")
    assert (renamed.name, renamed.description, renamed.id) == (f"m-{unique}", "e", ns.id)
    with pytest.raises(NotFoundError):
        client.namespaces.get(ns.name)
    client.datasets.create(renamed.name, "t")
    with pytest.raises(ConflictError):
        client.namespaces.delete(renamed.name)
    client.namespaces.delete(renamed.name, force=True)
    with pytest.raises(NotFoundError):
        client.namespaces.get(renamed.name)


# ---------------------------------------------------------------------------- datasets and rows


def test_dataset_catalog_and_row_ingestion(client: Client, ns: str) -> None:
    ds = client.datasets.create(ns, "people", description="folk", columns={"n": "int", "name": "string"})
    assert isinstance(ds, Dataset) and ds.ref == f"{ns}/people" and [c.name for c in ds.columns] == ["n", "name"]
    with pytest.raises(ConflictError):
        client.datasets.create(ns, "people")

    rows: list[dict[str, Any]] = [{"n": i, "name": f"p{i}"} for i in range(10)]
    rows[4] = {"n": "not a number", "name": "bad"}
    rows[8] = {"n": "also bad", "name": "bad"}
    result = client.datasets.ingest(ns, "people", iter(rows), batch_size=3)
    assert isinstance(result, IngestionResult)
    assert result.successful == 8 and [b.size for b in result.batches] == [3, 3, 3, 1]
    # Indexes count from the start of the whole input, not of each batch.
    assert [f.index for f in result.failed] == [4, 8]
    assert result.failed[0].row == {"n": "not a number", "name": "bad"} and "n" in result.failed[0].errors
    assert all(b.ingestion_id and b.attempts == 1 for b in result.batches)

    got = client.datasets.get(ns, "people")
    assert got.rows == 8 and got.last_ingestion is not None
    assert f"{ns}/people" in [d.ref for d in client.datasets.list(namespace=ns)]
    schema = client.datasets.schema(ns)
    assert [(d.name, [c.name for c in d.columns]) for d in schema.datasets] == [("people", ["n", "name"])]
    assert any(d.namespace == ns for d in client.datasets.schema().datasets)

    updated = client.datasets.update(ns, "people", description="folk 2", sort_order=["name", "n"])
    assert updated.description == "folk 2" and updated.sort_order == ["name", "n"]
    with pytest.raises(ValidationError):
        client.datasets.update(ns, "people", sort_order=["n"])
    renamed = client.datasets.update(ns, "people", name="persons")
    assert renamed.name == "persons" and renamed.rows == 8

    # on_error="abort": a bad row refuses its whole batch, reported row by row.
    aborted = client.datasets.ingest(ns, "persons", [{"n": 1}, {"n": "x"}, {"n": 3}, {"n": 4}], batch_size=2,
                                     on_error="abort")
    assert aborted.successful == 2 and [f.index for f in aborted.failed] == [1]
    assert aborted.batches[0].error and aborted.batches[1].error is None

    client.datasets.clear(ns, "persons")
    assert client.datasets.get(ns, "persons").rows == 0
    client.datasets.delete(ns, "persons")
    with pytest.raises(NotFoundError):
        client.datasets.get(ns, "persons")
    with pytest.raises(NotFoundError):  # no create=True: an unknown dataset raises at once
        client.datasets.ingest(ns, "nowhere", [{"a": 1}])
    made = client.datasets.ingest(ns, "auto", ({"a": i, "when": f"2024-01-0{i + 1}"} for i in range(3)), create=True)
    assert made.successful == 3 and not made.failed


def test_a_batch_whose_answer_is_lost_is_sent_again_and_lands_once(server: Any, proxy: FaultProxy,
                                                                   client: Client, ns: str) -> None:
    client.datasets.create(ns, "events")
    path = f"/api/v1/namespaces/{ns}/datasets/events/rows"
    # Batch 1: the server stores it but the answer never arrives. Batch 2: two 503s.
    proxy.add(Fault("POST", path, times=1, kind="drop_after_forward"))
    with Client(api_key=server.admin_key, base_url=proxy.url, timeout=30) as via_proxy:
        result = via_proxy.datasets.ingest(ns, "events", [{"i": i} for i in range(20)], batch_size=10)
        assert result.successful == 20 and not result.failed
        assert [b.attempts for b in result.batches] == [2, 1]
        proxy.fail("POST", path, times=2, status=503)
        second = via_proxy.datasets.ingest(ns, "events", [{"i": i} for i in range(20, 25)], max_attempts=3)
        assert second.successful == 5 and second.batches[0].attempts == 3
    keys = [s.headers.get("idempotency-key") for s in proxy.requests_to("POST", path)]
    assert len(keys) == 2 + 1 + 3 and keys[0] == keys[1] and keys[0] != keys[2] and len(set(keys[3:])) == 1
    assert client.datasets.get(ns, "events").rows == 25  # nothing twice


def test_a_batch_that_keeps_failing_is_reported_not_raised(server: Any, proxy: FaultProxy, client: Client,
                                                           ns: str) -> None:
    client.datasets.create(ns, "flaky")
    path = f"/api/v1/namespaces/{ns}/datasets/flaky/rows"
    proxy.fail("POST", path, times=2, status=502)  # both attempts of batch 1
    with Client(api_key=server.admin_key, base_url=proxy.url, timeout=30) as via_proxy:
        result = via_proxy.datasets.ingest(ns, "flaky", [{"i": i} for i in range(4)], batch_size=2,
                                           max_attempts=2)
    assert result.successful == 2 and [f.index for f in result.failed] == [0, 1]
    assert result.batches[0].error and "502" in result.batches[0].error and result.batches[1].error is None


# ---------------------------------------------------------------------------- files and ingestions


def test_file_ingestion_wait_rejects_and_records(client: Client, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "sales.csv"
    f.write_text("id,city,amount\n1,Lisbon,3.5\n2,Porto\n3,Faro,1.25\n4,Braga,2,extra,fields\n5,Evora,7\n")
    ing = client.datasets.ingest_file(f, ns, "sales")
    assert isinstance(ing, Ingestion) and ing.kind == "file" and ing.status in ("pending", "processing", "succeeded")
    done = client.datasets.wait(ing, timeout=60)
    assert done.status == "succeeded", done.status_message
    assert done.processed_rows is not None and done.processed_rows >= 3
    assert client.datasets.get(ns, "sales").rows == done.processed_rows
    rejects = list(client.datasets.rejects(done))
    assert [(r.line, r.text) for r in rejects] == [(3, "2,Porto"), (5, "4,Braga,2,extra,fields")]
    assert all(r.reason for r in rejects)

    listed = client.datasets.ingestions(ns, "sales", limit=5)
    assert listed[0].id == ing.id
    assert client.datasets.ingestion(ing.id).id == ing.id
    assert client.datasets.seen(ing.id).seen is True

    # Options override sniffing; wait=True waits within the call.
    g = tmp_path / "semi.txt"
    g.write_text("a;b\n1;x\n2;y\n")
    semi = client.datasets.ingest_file(g, ns, "semi", options={"format": "csv", "delimiter": ";"}, wait=True)
    assert semi.status == "succeeded" and semi.processed_rows == 2
    assert [c.name for c in client.datasets.get(ns, "semi").columns] == ["a", "b"]


def test_preview_and_schema_inference(client: Client) -> None:
    rows = [{"email": f"u{i}@example.com", "n": i, "when": "2024-05-01"} for i in range(20)]
    preview = client.datasets.preview(rows=rows, limit=5)
    assert len(preview.rows) == 5 and {c["name"] for c in preview.columns} >= {"email", "n", "when"}
    inferred = client.datasets.infer_schema(rows=rows)
    by_name = {c.name: c for c in inferred.columns}
    assert by_name["n"].type == "int" and by_name["when"].type == "date"
    assert "email" in [k.kind for k in by_name["email"].kinds]


# ---------------------------------------------------------------------------- multipart upload


def test_upload_in_parallel_parts_with_progress(client: Client, ns: str, tmp_path: Path) -> None:
    f = _csv(tmp_path / "big.csv", 400_000)
    size = f.stat().st_size
    assert size > 2 * PART
    seen: list[tuple[int, int]] = []
    ing = client.datasets.upload(f, ns, "big", part_size=PART, parallel=3, progress=lambda d, t: seen.append((d, t)),
                                 wait=True)
    assert ing.status == "succeeded", ing.status_message
    assert ing.processed_rows == 400_000 and client.datasets.get(ns, "big").rows == 400_000
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))  # never backwards
    assert list(upload_state_dir().glob("*.json")) == []  # done: no state left behind


class Crash(Exception):
    pass


def test_upload_resumes_after_a_crash_sending_only_the_missing_parts(client: Client, ns: str,
                                                                     tmp_path: Path) -> None:
    f = _csv(tmp_path / "resume.csv", 600_000)
    size = f.stat().st_size
    parts = -(-size // PART)
    assert parts >= 4

    def crash_in_part_three(done: int, total: int) -> None:
        if done > 2 * PART:
            raise Crash()

    with pytest.raises(Crash):
        client.datasets.upload(f, ns, "resumed", part_size=PART, parallel=1, progress=crash_in_part_three)
    [state_file] = upload_state_dir().glob("*.json")
    state = json.loads(state_file.read_text())
    assert sorted(state["etags"]) == ["1", "2"] and state["key"]
    assert state_file.stat().st_mode & 0o777 == 0o600  # it holds the upload's key
    upload = client.datasets.get_upload(state["upload_id"])
    assert upload.status == "open" and sorted(p.part_number for p in upload.uploaded) == [1, 2]

    seen: list[int] = []
    ing = client.datasets.upload(f, ns, "resumed", part_size=PART, parallel=2, progress=lambda d, t: seen.append(d),
                                 wait=True)
    # The re-run starts from the two parts that landed and sends only the rest.
    assert seen[0] == 2 * PART and seen[-1] == size
    assert ing.status == "succeeded", ing.status_message
    assert client.datasets.get(ns, "resumed").rows == 600_000
    finished = client.datasets.get_upload(state["upload_id"])
    assert finished.status == "completed" and finished.ingestion_id == ing.id
    assert not state_file.exists()


def test_upload_with_resume_off_starts_over_and_abort(client: Client, ns: str, tmp_path: Path) -> None:
    f = _csv(tmp_path / "again.csv", 1000)
    def crash_once_sending(done: int, total: int) -> None:
        if done:
            raise Crash()

    with pytest.raises(Crash):
        client.datasets.upload(f, ns, "again", progress=crash_once_sending)
    [state_file] = upload_state_dir().glob("*.json")
    first = json.loads(state_file.read_text())["upload_id"]
    ing = client.datasets.upload(f, ns, "again", resume=False, wait=60)
    assert ing.status == "succeeded" and ing.processed_rows == 1000
    client.datasets.abort_upload(first)
    assert client.datasets.get_upload(first).status == "aborted"


# ---------------------------------------------------------------------------- query


@pytest.fixture
def sales(client: Client, ns: str) -> str:
    rows = [{"id": i, "city": f"c{i % 3}", "amount": i * 2.0} for i in range(250)]
    assert client.datasets.ingest(ns, "sales", rows, create=True).successful == 250
    return ns


def test_query_pages_rows_and_explain(client: Client, sales: str) -> None:
    ns = sales
    result = client.datasets.query(f'SELECT city, count(*) AS n FROM "{ns}"."sales" GROUP BY city ORDER BY city')
    assert isinstance(result, QueryResult) and result.column_names == ["city", "n"]
    assert result.rows == [{"city": "c0", "n": 84}, {"city": "c1", "n": 83}, {"city": "c2", "n": 83}]
    star = client.datasets.query("*", namespace=ns, dataset="sales", limit=100, include_metadata=True)
    assert star.row_count == 100 and "_id" in star.rows[0] and star.next_cursor
    rest = client.datasets.query("*", namespace=ns, dataset="sales", limit=100, cursor=star.next_cursor)
    assert rest.rows[0]["id"] not in {r["id"] for r in star.rows}
    assert len(list(client.datasets.iter_rows("SELECT id FROM sales", namespace=ns, page_size=60))) == 250
    everything = client.datasets.query_all("*", namespace=ns, dataset="sales")
    assert everything.row_count == 250 and everything.next_cursor is None
    assert sorted(r["id"] for r in everything.rows) == list(range(250))
    explained = client.datasets.query("SELECT * FROM sales", namespace=ns, explain=True, limit=1)
    assert explained.explain and explained.explain.get("sql")


def test_query_to_files_and_arrow(client: Client, sales: str, tmp_path: Path) -> None:
    ns = sales
    sql = f'SELECT id, city, amount FROM "{ns}"."sales" ORDER BY id'
    written = client.datasets.query_to(sql, tmp_path / "out.csv", format="csv")
    text = (tmp_path / "out.csv").read_text()
    lines = list(csv.reader(text.splitlines()))
    assert written == len(text.encode()) and lines[0] == ["id", "city", "amount"] and len(lines) == 251
    assert lines[1] == ["0", "c0", "0"] or lines[1] == ["0", "c0", "0.0"]
    buf = io.BytesIO()
    client.datasets.query_to(sql, buf, format="ndjson", limit=5)
    assert [json.loads(line)["id"] for line in buf.getvalue().splitlines()] == [0, 1, 2, 3, 4]
    client.datasets.query_to(sql, tmp_path / "out.parquet", format="parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out.parquet").num_rows == 250
    table = client.datasets.query_arrow(sql)
    assert table.num_rows == 250 and table.column_names == ["id", "city", "amount"]
    assert table.column("id").to_pylist()[:3] == [0, 1, 2]


def test_a_query_timeout_is_not_retried(server: Any, proxy: FaultProxy, sales: str) -> None:
    with Client(api_key=server.admin_key, base_url=proxy.url, max_retries=3) as via_proxy:
        with pytest.raises(ValidationError) as slow:
            via_proxy.datasets.query("SELECT count(*) FROM range(100000000000) a", namespace=sales, timeout_s=1)
        assert slow.value.code == "query_timeout"
        proxy.fail("POST", "/api/v1/query", times=1, status=503)
        assert via_proxy.datasets.query("SELECT 1 AS one", namespace=sales).rows == [{"one": 1}]
    assert len(proxy.requests_to("POST", "/api/v1/query")) == 1 + 2  # the timeout once; the 503 retried


# ---------------------------------------------------------------------------- usage and async


def test_usage_events_and_daily(client: Client, ns: str) -> None:
    client.datasets.ingest(ns, "metered", [{"a": i} for i in range(7)], create=True)
    events = [e for e in client.usage.events(kind="ingested_rows")]
    assert any(e.quantity == 7 for e in events)
    daily = client.usage.daily(timezone="UTC")
    assert daily and all(isinstance(d, UsageDay) for d in daily)
    assert any(d.kind == "ingested_rows" and d.quantity >= 7 for d in daily)


def test_the_async_client_does_the_same(server: Any, ns: str, tmp_path: Path) -> None:
    f = _csv(tmp_path / "async.csv", 300_000)

    async def main() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url, timeout=30) as ac:
            assert (await ac.users.me()).username == "admin"
            assert ns in [n.name async for n in ac.namespaces.list()]
            result = await ac.datasets.ingest(ns, "arows", [{"x": i} for i in range(5)], create=True, batch_size=2)
            assert result.successful == 5 and len(result.batches) == 3
            seen: list[int] = []
            ing = await ac.datasets.upload(f, ns, "afile", part_size=PART, parallel=2,
                                           progress=lambda d, t: seen.append(d), wait=True)
            assert ing.status == "succeeded" and ing.processed_rows == 300_000 and seen[-1] == f.stat().st_size
            rows = await ac.datasets.query("SELECT count(*) AS n FROM afile", namespace=ns)
            assert rows.rows == [{"n": 300_000}]
            assert [r async for r in ac.datasets.iter_rows("SELECT x FROM arows ORDER BY x", namespace=ns)] == [
                {"x": i} for i in range(5)]

    asyncio.run(main())
