"""Bad or huge input never breaks the server: bodies limited while they stream (and
refused before they are read when the key is missing), a JSON depth limit, strings that
cannot be encoded refused at input and escaped when a tool returns them, names that
look like ids refused as names."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.ids import PREFIXES, looks_like_id
from tests.support.api import deploy, error_code, run
from tests.support.servers import Server

MB = 1024 * 1024
HUGE = 400 * MB
SRC = Path(__file__).resolve().parents[2] / "src" / "runyard"


class Body:
    """A body of ``total`` bytes made as it is sent; ``sent`` counts what the client got out."""

    def __init__(self, total: int, head: bytes = b"", fill: bytes = b"x") -> None:
        self.total, self.head, self.sent = total, head, 0
        self.block = fill * (256 * 1024)

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        while self.sent < self.total:
            self.sent += len(self.block)
            yield self.block


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssWatch:
    """Samples the server's RSS while a request is under way; ``growth`` is the peak over the start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.start


def send(server: Server, method: str, path: str, body: Body, *, key: str | None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    with httpx.Client(base_url=server.api, timeout=60) as client:
        return client.request(method, path, content=iter(body), headers=all_headers)


def multipart_head(boundary: str, field: str, filename: str) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()


ROUTES = [("PUT", "/secrets/BIG"), ("POST", "/tokens"), ("POST", "/tools"), ("POST", "/runs"),
          ("PATCH", "/tools/some-tool"), ("POST", "/templates"), ("POST", "/runs/run_x/confirm")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_body_without_a_key_is_refused_before_it_is_read(server: Server, method: str, path: str) -> None:
    assert server.proc is not None
    body = Body(HUGE)
    with RssWatch(server.proc.pid) as watch:
        response = send(server, method, path, body, key=None)
    assert response.status_code == 401, response.text
    assert error_code(response) == "missing_api_key"
    assert body.sent < 64 * MB, f"the client got {body.sent} bytes out: the server read the body"
    assert watch.growth < 50 * MB, f"server RSS grew by {watch.growth / MB:.0f} MB"
    # A wrong key is refused the same way.
    body = Body(HUGE)
    response = send(server, method, path, body, key="ry_not_a_key")
    assert response.status_code == 401 and body.sent < 64 * MB


@pytest.mark.parametrize(("method", "path"), ROUTES[:4])
def test_a_huge_multipart_body_without_a_key_is_refused_before_it_is_read(server: Server, method: str,
                                                                          path: str) -> None:
    assert server.proc is not None
    boundary = "runyardtestboundary"
    body = Body(HUGE, head=multipart_head(boundary, "file", "big.bin"))
    with RssWatch(server.proc.pid) as watch:
        response = send(server, method, path, body, key=None,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 401, response.text
    assert body.sent < 64 * MB
    assert watch.growth < 50 * MB


@pytest.mark.parametrize(("method", "path"), [("PUT", "/secrets/BIG"), ("POST", "/tokens"), ("POST", "/tools"),
                                              ("POST", "/runs"), ("POST", "/templates")])
def test_a_huge_json_body_with_a_key_gets_413_while_it_streams(server: Server, method: str, path: str) -> None:
    assert server.proc is not None
    body = Body(HUGE)
    with RssWatch(server.proc.pid) as watch:
        response = send(server, method, path, body, key=server.admin_key)
    assert response.status_code == 413, response.text
    assert error_code(response) == "payload_too_large"
    assert response.json()["error"]["details"]["limit"] < 64 * MB
    assert body.sent < 100 * MB, f"the client got {body.sent} bytes out: the server read past the limit"
    assert watch.growth < 50 * MB, f"server RSS grew by {watch.growth / MB:.0f} MB"


@pytest.mark.parametrize("path", ["/tools", "/runs"])
def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read(server: Server, path: str) -> None:
    body = Body(HUGE)
    response = send(server, "POST", path, body, key=server.admin_key, headers={"Content-Length": str(HUGE)})
    assert response.status_code == 413, response.text
    assert error_code(response) == "payload_too_large"
    assert body.sent < 64 * MB


def test_a_huge_tool_upload_with_a_key_gets_413_and_streams_to_disk(server: Server) -> None:
    assert server.proc is not None
    boundary = "runyardtestboundary"
    body = Body(HUGE, head=multipart_head(boundary, "file", "main.py"), fill=b"#")
    with RssWatch(server.proc.pid) as watch:
        response = send(server, "POST", "/tools", body, key=server.admin_key,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413, response.text
    assert error_code(response) == "payload_too_large"
    assert body.sent < 128 * MB
    assert watch.growth < 50 * MB, f"server RSS grew by {watch.growth / MB:.0f} MB"


def test_the_server_answers_normally_after_refusing_huge_bodies(api: httpx.Client, unique: str) -> None:
    # Multipart uploads (with their larger limit) still stream through to the routes.
    files = {"file": ("main.py", b"def main(x: int = 1):\n    return x * 2\n" + b"#" * (2 * MB))}
    response = api.post("/tools", files=files, data={"config": f'{{"name": "up-{unique}"}}'})
    assert response.status_code == 201, response.text
    assert run(api, f"up-{unique}", {"x": 21})["output"] == 42


# -- depth -----------------------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("field", ["default_inputs", "input_schema", "output_schema"])
def test_json_nested_500_deep_in_a_tool_is_too_deep(api: httpx.Client, unique: str, field: str) -> None:
    raw = f'{{"name": "deep-{unique}", "code": "def main():\\n    return 1\\n", "{field}": {{"a": {nested(500)}}}}}'
    response = api.post("/tools", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert error_code(response) == "too_deep"
    assert api.get(f"/tools/deep-{unique}").status_code == 404


def test_json_too_deep_everywhere(api: httpx.Client, unique: str) -> None:
    deploy(api, f"echo-{unique}", "def main(x=None):\n    return x\n")
    cases = [
        ("POST", "/runs", f'{{"tool": "echo-{unique}", "inputs": {{"x": {nested(500)}}}}}', {}),  # the fast lane
        ("POST", "/runs", f'{{"tool": "echo-{unique}", "inputs": {{"x": {nested(100000)}}}}}', {}),
        ("PUT", "/secrets/DEEP", f'{{"value": {nested(500)}}}', {}),
        ("POST", "/tokens", f'{{"name": {nested(500)}}}', {}),
        ("POST", "/templates", f'{{"name": "t", "fields": {nested(500)}}}', {}),
        ("POST", "/sets", f'{{"name": "s", "rows": {nested(500)}}}', {}),
    ]
    for method, path, raw, headers in cases:
        response = api.request(method, path, content=raw, headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 400, (path, response.text)
        assert error_code(response) == "too_deep", path
    # Multipart: the JSON field of a run and a tool's config.
    response = api.post("/runs", data={"payload": f'{{"tool": "echo-{unique}", "inputs": {{"x": {nested(500)}}}}}'},
                        files={"f": ("f.txt", b"x")})
    assert response.status_code == 400 and error_code(response) == "too_deep", response.text
    response = api.post("/tools", data={"config": f'{{"name": "deep-{unique}", "default_inputs": {nested(500)}}}'},
                        files={"file": ("main.py", b"def main():\n    return 1\n")})
    assert response.status_code == 400 and error_code(response) == "too_deep", response.text


def test_json_as_deep_as_the_limit_is_accepted(api: httpx.Client, unique: str) -> None:
    deploy(api, f"echo-{unique}", "def main(x=None):\n    return x\n",
           default_inputs={"x": {"a": [[[[[[[[[[1]]]]]]]]]]}})
    value = 1
    for _ in range(60):  # 63 levels with the body, inputs and a list/object of its own
        value = [value]
    done = run(api, f"echo-{unique}", {"x": {"v": value}})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"v": value}


# -- strings that cannot be encoded ----------------------------------------------------------
def test_lone_surrogates_are_refused_at_input(api: httpx.Client, unique: str) -> None:
    deploy(api, f"echo-{unique}", "def main(x=None):\n    return x\n")
    cases = [
        ("POST", "/runs", f'{{"tool": "echo-{unique}", "inputs": {{"x": "a\\ud800"}}}}'),
        ("POST", "/runs", f'{{"tool": "echo-{unique}", "tags": {{"session": "\\udfff"}}}}'),
        ("POST", "/runs", f'{{"tool": "echo-{unique}", "inputs": {{"\\ud800": 1}}}}'),
        ("POST", "/tools", f'{{"name": "sur-{unique}", "code": "def main():\\n    return \\"\\ud800\\"\\n"}}'),
        ("POST", "/tools", f'{{"name": "sur-{unique}", "code": "def main():\\n    return 1\\n", '
                           f'"description": "\\udc00"}}'),
        ("PUT", "/secrets/SURROGATE", '{"value": "\\ud800"}'),
        ("POST", "/tokens", '{"name": "\\ud800"}'),
    ]
    for method, path, raw in cases:
        response = api.request(method, path, content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        assert error_code(response) == "invalid_unicode", raw
    # Raw (invalid UTF-8) surrogate bytes too.
    response = api.post("/runs", content=b'{"tool": "echo-%s", "inputs": {"x": "\xed\xa0\x80"}}' % unique.encode(),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_code(response) in ("invalid_unicode", "invalid_json")
    # A proper pair is a character like any other.
    assert run(api, f"echo-{unique}", {"x": "\U0001F600"})["output"] == "\U0001F600"
    assert api.get("/runs", params={"tool": f"echo-{unique}"}).status_code == 200


def test_a_tool_returning_lone_surrogates_never_breaks_a_read(api: httpx.Client, unique: str) -> None:
    name = f"surrogate-{unique}"
    deploy(api, name, '''
        from runyard import context

        def main(mode: str = "output"):
            context.progress(0.5, "half \\ud800 way")
            if mode == "error":
                raise ValueError("bad \\udfff value")
            return {"text": "a\\ud800b", "\\udc00key": ["\\udfff"], "fine": "\\U0001F600"}
    ''')
    done = run(api, name)
    assert done["status"] == "succeeded", done
    assert done["output"] == {"text": "a\\ud800b", "\\udc00key": ["\\udfff"], "fine": "\U0001F600"}
    assert done["progress"]["message"] == "half \\ud800 way"
    failed = run(api, name, {"mode": "error"})
    assert failed["status"] == "failed"
    assert "bad \\udfff value" in failed["error"]["message"]
    for params in ({}, {"status": "succeeded"}, {"status": "failed"}, {"tool": name}):
        response = api.get("/runs", params=params)
        assert response.status_code == 200, (params, response.text)
    ids = {r["id"] for r in api.get("/runs", params={"tool": name}).json()["items"]}
    assert {done["id"], failed["id"]} <= ids
    for run_id in (done["id"], failed["id"]):
        response = api.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
    assert api.get(f"/runs/{done['id']}/trace").status_code == 200


def test_an_artifact_named_with_bytes_that_are_not_utf8_is_listed(api: httpx.Client, unique: str) -> None:
    name = f"badname-{unique}"
    deploy(api, name, '''
        import os
        from runyard import context

        def main():
            with open(os.path.join(bytes(context.output_dir()), b"caf\\xe9.txt"), "w") as fh:
                fh.write("hello")
            return 1
    ''')
    done = run(api, name)
    assert done["status"] == "succeeded", done
    response = api.get(f"/runs/{done['id']}/artifacts")
    assert response.status_code == 200, response.text
    assert [a["path"] for a in response.json()["items"]] == ["caf\\udce9.txt"]
    assert api.get(f"/runs/{done['id']}").status_code == 200


# -- names that look like ids ----------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["tool", "run", "tv", "tok"])
def test_a_name_that_looks_like_an_id_is_refused(api: httpx.Client, unique: str, prefix: str) -> None:
    response = api.post("/tools", json={"name": f"{prefix}_{unique}", "code": "def main():\n    return 1\n"})
    assert response.status_code == 400, response.text
    assert error_code(response) == "invalid_tool_name"
    assert "id" in response.json()["error"]["message"]
    # Names with those letters elsewhere stay fine.
    deploy(api, f"{prefix}-{unique}", "def main():\n    return 1\n")
    assert api.get(f"/tools/{prefix}-{unique}").status_code == 200


def test_every_id_prefix_is_known_to_looks_like_id() -> None:
    used = set()
    for path in SRC.rglob("*.py"):
        used.update(re.findall(r'new_id\(\s*"([a-z]+)"', path.read_text()))
    assert used, "no new_id calls found"
    assert used <= set(PREFIXES), f"prefixes missing from ids.PREFIXES: {sorted(used - set(PREFIXES))}"
    assert looks_like_id("tool_x") and looks_like_id("TV_1") and not looks_like_id("toolx")
    assert not looks_like_id("tools_x") and not looks_like_id("my_tool")


def test_a_tool_returning_deeply_nested_values_never_breaks_a_read(api: httpx.Client, unique: str) -> None:
    name = f"deepout-{unique}"
    deploy(api, name, '''
        from runyard import context

        def main(n: int):
            value = 1
            for _ in range(n):
                value = [value]
            context.trace("nested", value=value)
            return value
    ''')
    fine = run(api, name, {"n": 190})
    assert fine["status"] == "succeeded", fine
    # The API renders at most 255 levels (orjson) and a run's output sits 3 levels down in
    # a list: deeper output, which the child's conversion may let through, answered 500 to
    # every read of the list. The worker refuses output deeper than 200 levels.
    for n in (260, 280):
        deep = run(api, name, {"n": n})
        assert deep["status"] == "failed" and deep["error"]["type"] == "output_not_serializable", deep
        assert api.get("/runs", params={"tool": name}).status_code == 200
        assert api.get(f"/runs/{deep['id']}").status_code == 200
    done = run(api, name, {"n": 210})
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "output_not_serializable"
    assert "deeper than 200 levels" in done["error"]["message"]
    response = api.get(f"/runs/{done['id']}/trace")
    assert response.status_code == 200, response.text
    assert "deeper than 200 levels" in response.json()["items"][0]["attrs"]["runyard_error"]
    # Deeper still, the child's own conversion refuses it.
    assert run(api, name, {"n": 900})["status"] == "failed"
    assert api.get("/runs", params={"tool": name}).status_code == 200
    assert api.get(f"/runs/{fine['id']}").json()["output"] == fine["output"]
