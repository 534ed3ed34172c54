"""Model steps of ingestion pipelines (extract, classify, normalize, validate) over HTTP,
against a real server whose default provider is the scripted model server: batching and
concurrency, rows the model answers badly for (rejected, the rest stored), a provider that
fails (500, timeout, malformed), the trace and the metered tokens, previews, and the checks
made before anything is saved (invalid steps, no provider configured)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.support.api import error_code
from tests.support.fake_llm import computed, json_answer, malformed, slow, status

NOTES = [{"id": i, "notes": f"  {name} lives in {city}  "} for i, (name, city) in enumerate(
    [("Ann", "Oslo"), ("Bob", "Rome"), ("Cy", "Lima"), ("Di", "Kyiv"), ("Ed", "Bern")])]


def rows_shown(body: Any) -> dict[str, Any]:
    """The rows a model step's prompt showed, keyed by their index in the batch."""
    user = body["messages"][1]["content"]
    return json.loads(user.strip().splitlines()[-1])


def extract_city(body: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for k, shown in rows_shown(body).items():
        match = re.search(r"lives in (\w+)", shown["notes"])
        found[k] = {"city": match.group(1) if match else None}
    return {"rows": found}


def _ns(api: httpx.Client, unique: str, prefix: str) -> str:
    ns = f"{prefix}-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code in (200, 201)
    return ns


def _rows(api: httpx.Client, ns: str, ds: str) -> list[dict[str, Any]]:
    r = api.post("/query", json={"query": f'SELECT * FROM "{ns}"."{ds}" ORDER BY id'})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def test_extract_in_batches_between_deterministic_steps(admin, provider, fake, unique):
    ns = _ns(admin, unique, "extract")
    fake.script(*[computed(extract_city, usage={"prompt_tokens": 30, "completion_tokens": 5})] * 3)
    before = admin.get("/usage", params={"metric": "llm_tokens"}).json()
    pipeline = [{"trim": ["notes"]},
                {"extract": {"from": ["notes"], "fields": {"city": "the city the person lives in"},
                             "instructions": "Cities in English.", "batch_size": 2}},
                {"normalize": {"columns": ["city"], "case": "upper"}}]
    r = admin.post(f"/namespaces/{ns}/datasets/people/rows", params={"create": True},
                   json={"rows": NOTES, "pipeline": pipeline})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ingested"] == 5 and body["failed"] == []
    assert body["model_calls"]["total_calls"] == 3 and body["model_calls"]["failed_calls"] == 0
    assert body["model_calls"]["total_tokens"] == 3 * 35
    assert len(fake.requests) == 3  # 5 rows, 2 per call
    assert sorted(len(rows_shown(req.body)) for req in fake.requests) == [1, 2, 2]
    prompt = fake.requests[0].prompt
    assert "the city the person lives in" in prompt and "Cities in English." in prompt
    assert '"notes": "Ann lives in Oslo"' in "\n".join(r.prompt for r in fake.requests)  # trimmed first
    assert [r["city"] for r in _rows(admin, ns, "people")] == ["OSLO", "ROME", "LIMA", "KYIV", "BERN"]
    # The trace: every call's messages, answer, tokens and time, on the ingestion.
    ingestion = admin.get(f"/ingestions/{body['ingestion_id']}").json()
    trace = ingestion["attributes"]["trace"]
    assert trace["total_calls"] == 3 and trace["calls_omitted"] == 0 and len(trace["calls"]) == 3
    first = trace["calls"][0]
    assert first["step"] == 1 and first["kind"] == "extract" and first["first_row"] == 0 and first["rows"] == 2
    assert first["provider"] == "scripted" and first["usage"]["total_tokens"] == 35 and first["ms"] >= 0
    assert first["messages"][0]["role"] == "system" and "Ann lives in Oslo" in first["messages"][1]["content"]
    assert json.loads(first["response"])["rows"]["0"] == {"city": "Oslo"}
    after = admin.get("/usage", params={"metric": "llm_tokens"}).json()
    assert after != before  # tokens metered


def test_classify_a_row_answered_badly_is_rejected_the_rest_stored(admin, provider, fake, unique):
    ns = _ns(admin, unique, "classify")
    texts = [{"id": 1, "text": "my invoice is wrong"}, {"id": 2, "text": "the app crashes"},
             {"id": 3, "text": "hello"}, {"id": 4, "text": "refund please"}]
    fake.script(json_answer({"rows": {"0": "billing", "1": "support", "2": "weather", "3": "billing"}}))
    r = admin.post(f"/namespaces/{ns}/datasets/tickets/rows", params={"create": True}, json={
        "rows": texts, "pipeline": [{"classify": {"column": "text", "into": "topic", "labels": ["billing", "support"]}}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ingested"] == 3
    [bad] = body["failed"]
    assert bad["index"] == 2 and bad["row"] == texts[2]
    assert bad["errors"]["pipeline"].startswith("step 0 (classify): the model's label 'weather' is not one of")
    assert [(x["id"], x["topic"]) for x in _rows(admin, ns, "tickets")] == [(1, "billing"), (2, "support"),
                                                                            (4, "billing")]
    assert '["billing", "support"]' in fake.requests[0].prompt


def test_normalize_and_validate(admin, provider, fake, unique):
    ns = _ns(admin, unique, "normalize")
    rows = [{"id": 1, "country": "Deutschland"}, {"id": 2, "country": "FR"}, {"id": 3, "country": "Atlantis"},
            {"id": 4, "country": None}]
    fake.script(json_answer({"rows": {"0": {"country": "Germany"}, "1": {"country": "France"},
                                      "2": {"country": "Atlantis"}, "3": {}}}),
                json_answer({"rows": {"0": {"valid": True}, "1": {"valid": False, "reason": "not in the EU list"},
                                      "2": {"valid": True}}}))
    pipeline = [{"normalize": {"columns": ["country"], "target": {"Germany": "", "France": "", "Spain": ""}}},
                {"validate": {"columns": ["country"], "instructions": "Only Germany or Spain."}}]
    r = admin.post(f"/namespaces/{ns}/datasets/c/rows", params={"create": True}, json={"rows": rows,
                                                                                      "pipeline": pipeline})
    assert r.status_code == 201, r.text
    body = r.json()
    failed = {f["index"]: f["errors"]["pipeline"] for f in body["failed"]}
    assert failed == {2: "step 0 (normalize): the model's value 'Atlantis' for column 'country' is not one of the "
                         "canonical values",
                      1: "step 1 (validate): invalid: not in the EU list"}
    assert [(x["id"], x["country"]) for x in _rows(admin, ns, "c")] == [(1, "Germany"), (4, None)]
    assert "Only Germany or Spain." in fake.requests[1].prompt and "- Spain" in fake.requests[0].prompt


def test_a_row_missing_from_the_answer_and_a_batch_answered_badly(admin, provider, fake, unique):
    ns = _ns(admin, unique, "partial")

    def answer_of(body: Any) -> dict[str, Any]:
        shown = rows_shown(body)
        if any("Cy" in s["notes"] for s in shown.values()):
            return {"nothing": "here"}  # the whole batch's answer is unusable
        found = extract_city(body)
        found["rows"].pop("1", None)  # the second row of each batch goes unanswered
        return found

    fake.script(*[computed(answer_of)] * 3)
    r = admin.post(f"/namespaces/{ns}/datasets/p/rows", params={"create": True}, json={
        "rows": NOTES, "pipeline": [{"extract": {"from": ["notes"], "fields": ["city"], "batch_size": 2}}]})
    assert r.status_code == 201, r.text
    body = r.json()
    failed = {f["index"]: f["errors"]["pipeline"] for f in body["failed"]}
    assert failed[1] == "step 0 (extract): the model gave no answer for this row"
    assert failed[2].startswith('step 0 (extract): the model call failed: the model\'s answer (pipeline_extract) has '
                                'no "rows" object')
    assert set(failed) == {1, 2, 3} and body["ingested"] == 2
    assert [r["city"] for r in _rows(admin, ns, "p")] == ["Oslo", "Bern"]
    assert body["model_calls"]["failed_calls"] == 1


@pytest.mark.parametrize("replies, code, http", [
    ([status(500), status(500)], "llm_error", 502),
    ([slow(3.0), slow(3.0)], "llm_timeout", 504),
    ([malformed(), malformed()], "llm_invalid_response", 502),
])
def test_a_provider_failing_every_call_fails_the_ingestion_nothing_stored(admin, provider, fake, unique, replies,
                                                                          code, http):
    ns = _ns(admin, unique, f"fail{http}")
    fake.script(*replies)
    r = admin.post(f"/namespaces/{ns}/datasets/f/rows", params={"create": True}, json={
        "rows": NOTES, "pipeline": [{"extract": {"from": ["notes"], "fields": ["city"], "batch_size": 100}}]})
    assert r.status_code == http and error_code(r) == code, r.text
    assert "every model call failed, nothing was stored" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["step"] == 0
    assert admin.get(f"/namespaces/{ns}/datasets/f").json()["rows"] == 0
    [ingestion] = admin.get(f"/namespaces/{ns}/datasets/f/ingestions").json()["items"]
    assert ingestion["status"] == "failed"
    call = ingestion["attributes"]["trace"]["calls"][0]
    assert call["error"]["code"] == code and call["messages"][1]["content"]


def test_preview_runs_model_steps_on_the_preview_rows_nothing_saved(admin, provider, fake, unique):
    ns = _ns(admin, unique, "preview")
    fake.script(computed(extract_city))
    r = admin.post("/ingest/preview", json={"rows": NOTES, "limit": 3, "options": {"pipeline": [
        {"trim": ["notes"]}, {"extract": {"from": ["notes"], "fields": {"city": "where"}}}, {"drop": ["notes"]}]}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == [{"id": 0, "city": "Oslo"}, {"id": 1, "city": "Rome"}, {"id": 2, "city": "Lima"}]
    assert {c["name"]: c["type"] for c in body["columns"]} == {"id": "int", "city": "string"}
    assert body["trace"]["total_calls"] == 1 and len(rows_shown(fake.requests[0].body)) == 3
    assert admin.get(f"/namespaces/{ns}/datasets").json()["items"] == []


def test_extract_fields_default_to_the_datasets_field_definitions(admin, provider, fake, unique):
    ns = _ns(admin, unique, "fielddefs")
    made = admin.post(f"/namespaces/{ns}/datasets", json={"name": "d", "description": "People and their homes",
                                                          "field_definitions": {"city": "home city"}})
    assert made.status_code in (200, 201), made.text
    fake.script(computed(extract_city))
    r = admin.post(f"/namespaces/{ns}/datasets/d/rows", json={
        "rows": NOTES[:2], "pipeline": [{"extract": {"from": ["notes"]}}]})
    assert r.status_code == 201, r.text
    assert "- city: home city" in fake.requests[0].prompt and "People and their homes" in fake.requests[0].prompt
    assert [x["city"] for x in _rows(admin, ns, "d")] == ["Oslo", "Rome"]
    # With neither fields nor saved definitions the model names the fields; a name that is not
    # a column name rejects its row.
    fake.script(json_answer({"rows": {"0": {"person": "Ann", "home_city": "Oslo"}, "1": {"": "Rome"}}}))
    r = admin.post(f"/namespaces/{ns}/datasets/open/rows", params={"create": True}, json={
        "rows": NOTES[:2], "pipeline": [{"extract": {"from": ["notes"]}}]})
    assert r.status_code == 201, r.text
    assert "choose the fields the text holds yourself" in fake.requests[0].prompt
    [bad] = r.json()["failed"]
    assert bad["index"] == 1 and "the model's field ''" in bad["errors"]["pipeline"]
    [row] = _rows(admin, ns, "open")
    assert (row["person"], row["home_city"]) == ("Ann", "Oslo")


@pytest.mark.parametrize("step, message", [
    ({"extract": {"from": "notes"}}, "extract's from must be a non-empty list"),
    ({"extract": {"from": ["notes"], "batch_size": 500}}, "batch_size"),
    ({"classify": {"column": "t", "into": "x", "labels": ["only"]}}, "labels are 2-"),
    ({"normalize": {"columns": ["c"], "target": {"A": ""}, "case": "lower"}}, "is a model step"),
    ({"validate": {"columns": ["c"]}}, "validate needs instructions"),
    ({"extract": {"from": ["notes"], "prompt": "x"}}, "has no option 'prompt'"),
])
def test_invalid_model_steps_are_refused_naming_the_step(admin, provider, fake, unique, step, message):
    ns = _ns(admin, unique, "invalid")
    fake.script()
    r = admin.post(f"/namespaces/{ns}/datasets/x/rows", params={"create": True},
                   json={"rows": NOTES, "pipeline": [{"trim": ["notes"]}, step]})
    assert r.status_code == 400 and error_code(r) == "invalid_pipeline", r.text
    assert r.json()["error"]["details"]["step"] == 1 and message in r.json()["error"]["message"]
    assert fake.requests == [] and admin.get(f"/namespaces/{ns}/datasets/x").status_code == 404


def test_a_provider_named_that_does_not_exist(admin, provider, fake, unique):
    ns = _ns(admin, unique, "noprov")
    r = admin.post(f"/namespaces/{ns}/datasets/x/rows", params={"create": True}, json={
        "rows": NOTES, "pipeline": [{"extract": {"from": ["notes"], "fields": ["city"], "provider": "nope"}}]})
    assert r.status_code == 404 and error_code(r) == "llm_provider_not_found", r.text
    assert admin.get(f"/namespaces/{ns}/datasets/x").status_code == 404


def test_no_provider_configured_answers_409_before_anything_is_saved(api, unique):
    ns = f"nollm-steps-{unique}"
    api.post("/namespaces", json={"name": ns})
    pipeline = [{"classify": {"column": "notes", "into": "t", "labels": ["a", "b"]}}]
    r = api.post(f"/namespaces/{ns}/datasets/x/rows", params={"create": True},
                 json={"rows": NOTES, "pipeline": pipeline})
    assert r.status_code == 409 and error_code(r) == "llm_not_configured", r.text
    assert api.get(f"/namespaces/{ns}/datasets/x").status_code == 404
    p = api.post("/ingest/preview", json={"rows": NOTES, "options": {"pipeline": pipeline}})
    assert p.status_code == 409 and error_code(p) == "llm_not_configured", p.text


def _wait(api: httpx.Client, ingestion_id: str) -> dict[str, Any]:
    for _ in range(120):
        view = api.get(f"/ingestions/{ingestion_id}").json()
        if view["status"] in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.25)
    raise AssertionError(f"ingestion {ingestion_id} did not finish")


def test_a_file_goes_through_model_steps_in_the_worker(admin, provider, fake, unique):
    ns = _ns(admin, unique, "file")
    lines = ["id,notes"] + [f'{i},"  {n} lives in {c}  "' for i, (n, c) in enumerate(
        [("Ann", "Oslo"), ("Bob", "Rome"), ("Cy", "Lima"), ("Di", "Kyiv"), ("Ed", "Bern")])] + ["x,oops"]

    def answer_of(body: Any) -> dict[str, Any]:
        found = extract_city(body)
        for k, row in rows_shown(body).items():
            if "Kyiv" in row["notes"]:
                found["rows"].pop(k)  # unanswered: that row is rejected
        return found

    fake.script(*[computed(answer_of)] * 3)
    options = {"pipeline": [{"trim": ["notes"]}, {"cast": {"id": "int"}},
                            {"extract": {"from": ["notes"], "fields": {"city": "the city"}, "batch_size": 2}},
                            {"normalize": {"columns": ["city"], "case": "upper"}}]}
    r = admin.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("people.csv", "\n".join(lines))},
                   data={"options": json.dumps(options)})
    assert r.status_code == 202, r.text
    done = _wait(admin, r.json()["id"])
    assert done["status"] == "succeeded", done["status_message"]
    assert done["processed_rows"] == 4 and done["failed_rows"] == 2
    assert [x["city"] for x in _rows(admin, ns, "people")] == ["OSLO", "ROME", "LIMA", "BERN"]
    assert done["attributes"]["trace"]["total_calls"] == 3 and len(fake.requests) == 3
    rejects = {x["line"]: x["reason"] for x in admin.get(f"/ingestions/{done['id']}/rejects").json()["items"]}
    assert rejects[4] == "pipeline: step 2 (extract): the model gave no answer for this row"
    assert "step 1 (cast)" in rejects[6]  # the sandboxed step before the model step; row numbers kept


def test_a_file_with_model_steps_and_no_provider_is_refused_at_submit(api, unique):
    ns = f"nollm-file-{unique}"
    api.post("/namespaces", json={"name": ns})
    options = {"pipeline": [{"classify": {"column": "notes", "into": "t", "labels": ["a", "b"]}}]}
    r = api.post(f"/namespaces/{ns}/datasets/x/files", files={"file": ("p.csv", "notes\nhello\n")},
                 data={"options": json.dumps(options)})
    assert r.status_code == 409 and error_code(r) == "llm_not_configured", r.text
    assert api.get(f"/namespaces/{ns}/datasets/x").status_code == 404


def test_long_texts_are_cut_and_batches_kept_small(admin, provider, fake, unique):
    ns = _ns(admin, unique, "long")
    rows = [{"id": i, "notes": f"{n} lives in {c}. " + "x" * 30_000} for i, (n, c) in enumerate(
        [("Ann", "Oslo"), ("Bob", "Rome"), ("Cy", "Lima"), ("Di", "Kyiv"), ("Ed", "Bern"), ("Flo", "Graz")])]
    fake.script(*[computed(extract_city)] * 2)
    r = admin.post(f"/namespaces/{ns}/datasets/long/rows", params={"create": True}, json={
        "rows": rows, "pipeline": [{"extract": {"from": ["notes"], "fields": ["city"], "batch_size": 10}}]})
    assert r.status_code == 201, r.text
    assert r.json()["ingested"] == 6
    # Each value shown is cut at 20,000 characters; a call shows at most about 100,000.
    assert sorted(len(rows_shown(req.body)) for req in fake.requests) == [2, 4]
    assert all(len(v["notes"]) <= 20_001 for req in fake.requests for v in rows_shown(req.body).values())
    trace = admin.get(f"/ingestions/{r.json()['ingestion_id']}").json()["attributes"]["trace"]
    assert all(len(call["messages"][1]["content"]) < 10_100 for call in trace["calls"])  # the trace keeps less


def test_an_upload_previewed_and_completed_through_model_steps(admin, provider, fake, unique):
    ns = _ns(admin, unique, "upload")
    data = ("id,notes\n" + "".join(f'{i},"{n} lives in {c}"\n' for i, (n, c) in enumerate(
        [("Ann", "Oslo"), ("Bob", "Rome"), ("Cy", "Lima")]))).encode()
    upload = admin.post("/uploads", json={"filename": "p.csv", "size": len(data)}).json()
    with httpx.Client(timeout=30) as anonymous:
        put = anonymous.put(upload["parts"][0]["url"], content=data)
        assert put.status_code == 200
    pipeline = [{"drop": ["id"]}, {"classify": {"column": "notes", "into": "warm", "labels": ["yes", "no"]}}]
    fake.script(computed(lambda body: {"rows": {k: "yes" if "Lima" in v or "Rome" in v else "no"
                                                for k, v in rows_shown(body).items()}}))
    preview = admin.post("/ingest/preview", json={"upload_id": upload["id"], "key": upload["key"], "limit": 2,
                                                  "options": {"pipeline": pipeline}})
    assert preview.status_code == 200, preview.text
    assert preview.json()["rows"] == [{"notes": "Ann lives in Oslo", "warm": "no"},
                                      {"notes": "Bob lives in Rome", "warm": "yes"}]
    assert preview.json()["trace"]["total_calls"] == 1 and len(rows_shown(fake.requests[0].body)) == 2
    fake.script(computed(lambda body: {"rows": {k: "yes" if "Lima" in v or "Rome" in v else "no"
                                                for k, v in rows_shown(body).items()}}))
    done = admin.post(f"/uploads/{upload['id']}/complete", json={
        "key": upload["key"], "namespace": ns, "dataset": "warm", "create": True,
        "parts": [{"part_number": 1, "etag": put.headers.get("ETag", "").strip('"')}],
        "options": {"pipeline": pipeline}})
    assert done.status_code == 202, done.text
    finished = _wait(admin, done.json()["id"])
    assert finished["status"] == "succeeded", finished["status_message"]
    assert sorted((r["notes"][:3], r["warm"]) for r in admin.post("/query", json={
        "query": f'SELECT * FROM "{ns}"."warm"'}).json()["rows"]) == [("Ann", "no"), ("Bob", "yes"), ("Cy ", "yes")]
