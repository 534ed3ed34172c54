"""Script-mode tools: code without an entry function whose inputs become module globals
and whose output is the globals ``output_vars`` names (the DataGen way of deploying)."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile

import httpx

from tests.support.api import deploy, error_code, run

SCRIPT = """
import math
from runyard import context

print(f"scaling {len(values)} values by {factor}")
context.trace("scaled", n=len(values))
scaled = [v * factor for v in values]
total = math.fsum(scaled)
label = f"{prefix}:{total:g}"
"""


def test_a_script_runs_top_to_bottom_with_its_inputs_as_globals(api: httpx.Client, unique: str) -> None:
    name = f"script-{unique}"
    tool = deploy(api, name, SCRIPT, mode="script", output_vars=["scaled", "total", "label"],
                  default_inputs={"factor": 2, "prefix": "sum", "values": []})
    assert tool["mode"] == "script" and tool["output_vars"] == ["scaled", "total", "label"], tool
    # no schema declared: one inferred from the defaults, every input optional, others allowed
    assert tool["input_schema"] == {"type": "object", "additionalProperties": True, "properties": {
        "factor": {"type": "integer"}, "prefix": {"type": "string"}, "values": {"type": "array"}}}, tool
    done = run(api, name, {"values": [1, 2, 3.5]})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"scaled": [2, 4, 7.0], "total": 13.0, "label": "sum:13"}, done
    log = api.get(f"/runs/{done['id']}/logs").text
    assert "scaling 3 values by 2" in log, log
    # the run's inputs merge the defaults under what the caller gave
    assert api.get(f"/runs/{done['id']}", params={"expand": "inputs"}).json()["inputs"] == {
        "factor": 2, "prefix": "sum", "values": [1, 2, 3.5]}
    # inferred types are checked before a run is queued
    wrong = api.post("/runs", json={"tool": name, "inputs": {"factor": "two"}})
    assert wrong.status_code == 400 and error_code(wrong) == "invalid_inputs", wrong.text


def test_a_declared_input_schema_wins_over_the_inferred_one(api: httpx.Client, unique: str) -> None:
    name = f"script-schema-{unique}"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    deploy(api, name, "square = n * n\n", mode="script", output_vars=["square"], input_schema=schema)
    missing = api.post("/runs", json={"tool": name, "inputs": {}})
    assert missing.status_code == 400 and error_code(missing) == "invalid_inputs", missing.text
    extra = api.post("/runs", json={"tool": name, "inputs": {"n": 2, "m": 1}})
    assert extra.status_code == 400 and error_code(extra) == "invalid_inputs", extra.text
    assert run(api, name, {"n": 7})["output"] == {"square": 49}


def test_a_missing_output_global_fails_the_run_with_a_clear_code(api: httpx.Client, unique: str) -> None:
    name = f"script-missing-{unique}"
    deploy(api, name, "if flag:\n    found = 1\n", mode="script", output_vars=["found", "other"],
           default_inputs={"flag": True})
    done = run(api, name)
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "output_var_missing", done
    assert "'other'" in done["error"]["message"] and "'found'" not in done["error"]["message"], done
    assert run(api, name, {"flag": False})["error"]["type"] == "output_var_missing"


def test_a_non_json_output_global_fails_the_run_with_a_clear_code(api: httpx.Client, unique: str) -> None:
    name = f"script-nonjson-{unique}"
    deploy(api, name, "import threading\nlock = threading.Lock()\n", mode="script", output_vars=["lock"])
    done = run(api, name)
    assert done["status"] == "failed" and done["error"]["type"] == "output_not_serializable", done


def test_an_exception_or_exit_in_a_script_fails_the_run(api: httpx.Client, unique: str) -> None:
    name = f"script-raise-{unique}"
    deploy(api, name, "x = 1\nraise ValueError('bad row 7')\n", mode="script", output_vars=["x"])
    done = run(api, name)
    assert done["status"] == "failed" and done["error"]["type"] == "ValueError", done
    assert "bad row 7" in done["error"]["message"], done
    name = f"script-exit-{unique}"
    deploy(api, name, "import sys\nx = 1\nsys.exit(0)\n", mode="script", output_vars=["x"])
    assert run(api, name)["output"] == {"x": 1}  # exit 0 ends the script early, successfully
    deploy(api, name, "import sys\nsys.exit(3)\n", mode="script", output_vars=[])
    assert run(api, name)["error"]["type"] == "exit_code"


def test_a_script_without_output_vars_outputs_an_empty_object(api: httpx.Client, unique: str) -> None:
    name = f"script-quiet-{unique}"
    deploy(api, name, "print('side effects only')\n", mode="script")
    done = run(api, name)
    assert done["status"] == "succeeded" and done["output"] == {}, done


def test_a_script_uploaded_as_a_file_or_in_a_zip(api: httpx.Client, unique: str) -> None:
    name = f"script-file-{unique}"
    made = api.post("/tools", files={"file": ("job.py", b"result = a + b\n")},
                    data={"config": json.dumps({"name": name, "mode": "script", "output_vars": ["result"],
                                                "default_inputs": {"a": 1, "b": 2}})})
    assert made.status_code == 201, made.text
    assert made.json()["entrypoint"] == "job", made.json()
    assert run(api, name, {"b": 40})["output"] == {"result": 41}

    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/helpers.py", "def double(v):\n    return 2 * v\n")
        zf.writestr("pkg/job.py", "from pkg.helpers import double\nresult = double(n)\n")
    name = f"script-zip-{unique}"
    made = api.post("/tools", files={"file": ("source.zip", package.getvalue())},
                    data={"config": json.dumps({"name": name, "mode": "script", "entrypoint": "pkg.job",
                                                "output_vars": ["result"], "default_inputs": {"n": 0}})})
    assert made.status_code == 201, made.text
    assert run(api, name, {"n": 21})["output"] == {"result": 42}


def test_switching_a_tool_between_function_and_script_mode(api: httpx.Client, unique: str) -> None:
    name = f"switch-{unique}"
    code = textwrap.dedent("""
        def main(x: int = 1):
            return x + 1
        y = 10
    """)
    deploy(api, name, code)
    assert run(api, name, {"x": 1})["output"] == 2
    switched = api.patch(f"/tools/{name}", json={"mode": "script", "output_vars": ["y"]})
    assert switched.status_code == 200, switched.text
    assert switched.json()["mode"] == "script" and switched.json()["version"] == 2, switched.json()
    assert run(api, name)["output"] == {"y": 10}
    back = api.patch(f"/tools/{name}", json={"mode": "function"})
    assert back.status_code == 200, back.text
    assert back.json()["output_vars"] is None and back.json()["entrypoint"] == "main", back.json()
    assert run(api, name, {"x": 4})["output"] == 5
    # pinned versions keep their own mode
    pinned = api.post("/runs", params={"wait": 30}, json={"tool": name, "version": 2}).json()
    assert pinned["output"] == {"y": 10}, pinned


def test_bad_script_tools_are_refused_and_change_nothing(api: httpx.Client, unique: str) -> None:
    name = f"script-bad-{unique}"
    cases = [
        ({"code": "x = (\n", "mode": "script"}, "invalid_source"),
        ({"code": "x = 1\n", "mode": "script", "output_vars": ["not valid"]}, "invalid_output_vars"),
        ({"code": "x = 1\n", "mode": "script", "output_vars": ["__builtins__"]}, "invalid_output_vars"),
        ({"code": "def main():\n    return 1\n", "output_vars": ["x"]}, "invalid_output_vars"),
        ({"code": "x = 1\n", "mode": "script", "default_inputs": {"no-dash": 1}}, "invalid_inputs"),
        ({"code": "x = 1\n", "mode": "script", "entrypoint": "other"}, "invalid_entrypoint"),
        ({"code": "x = 1\n", "mode": "script", "output_vars": [f"v{i}" for i in range(101)]}, "invalid_output_vars"),
    ]
    for body, code in cases:
        refused = api.post("/tools", json={"name": name, **body})
        assert refused.status_code == 400 and error_code(refused) == code, (body, refused.text)
    wrong_mode = api.post("/tools", json={"name": name, "code": "x = 1\n", "mode": "batch"})
    assert wrong_mode.status_code == 400, wrong_mode.text
    assert api.get(f"/tools/{name}").status_code == 404
    # inputs a script cannot take as globals are refused before a run is queued
    deploy(api, name, "y = 1\n", mode="script", output_vars=["y"])
    for inputs in ({"__name__": "x"}, {"a b": 1}):
        refused = api.post("/runs", json={"tool": name, "inputs": inputs})
        assert refused.status_code == 400 and error_code(refused) == "invalid_inputs", refused.text
    assert api.get("/runs", params={"tool": name}).json()["items"] == []


def test_new_code_for_a_script_tool_keeps_it_a_script(api: httpx.Client, unique: str) -> None:
    name = f"script-upd-{unique}"
    deploy(api, name, "doubled = x * 2\n", mode="script", output_vars=["doubled"], default_inputs={"x": 1})
    updated = api.patch(f"/tools/{name}", json={"code": "doubled = x * 3\n"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["mode"] == "script" and updated.json()["version"] == 2, updated.text
    done = run(api, name, {"x": 5})
    assert done["status"] == "succeeded" and done["output"] == {"doubled": 15}, done
