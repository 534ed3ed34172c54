"""The OpenAI-compatible client against the scripted server on loopback: retries with
backoff on 429/5xx honouring Retry-After, the per-call timeout, JSON mode, tool calls,
token usage; and prompts loaded from the package by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.llm import (
    ChatClient,
    LLMHTTPError,
    LLMInvalidResponse,
    LLMTimeout,
    LLMUnreachable,
    load_prompt,
    parse_json_answer,
    render_prompt,
)
from runyard.llm.client import retry_after_s
from tests.support.fake_llm import FakeLLM, answer, json_answer, malformed, slow, status, tool_call
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def client(fake: FakeLLM, sleeps: list[float] | None = None, **kwargs) -> ChatClient:
    kwargs.setdefault("max_retries", 2)
    return ChatClient(fake.base_url, api_key="sk-test-123", model="m1",
                      sleep=(sleeps.append if sleeps is not None else lambda s: None), **kwargs)


MESSAGES = [{"role": "user", "content": "hello"}]


def test_a_call_returns_text_usage_and_sends_the_key(fake):
    fake.script(answer("hi there", usage={"prompt_tokens": 5, "completion_tokens": 3}))
    result = client(fake).chat(MESSAGES, temperature=0)
    assert result.content == "hi there"
    assert result.usage.to_dict() == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert result.attempts == 1 and result.elapsed_ms >= 0
    [seen] = fake.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-test-123"
    assert seen.body["model"] == "m1" and seen.body["messages"] == MESSAGES and seen.body["temperature"] == 0


def test_model_per_call_overrides_the_default(fake):
    fake.script(answer("ok"))
    client(fake).chat(MESSAGES, model="other-model")
    assert fake.requests[0].body["model"] == "other-model"


def test_429_then_success_honours_retry_after(fake):
    sleeps: list[float] = []
    fake.script(status(429, retry_after="3"), answer("finally"))
    result = client(fake, sleeps).chat(MESSAGES)
    assert result.content == "finally" and result.attempts == 2
    assert sleeps == [3.0]
    assert len(fake.requests) == 2


def test_5xx_backs_off_exponentially_then_gives_up(fake):
    sleeps: list[float] = []
    fake.script(status(500), status(502), status(503))
    with pytest.raises(LLMHTTPError) as caught:
        client(fake, sleeps, backoff_s=0.5).chat(MESSAGES)
    assert caught.value.status == 503 and caught.value.attempts == 3
    assert "after 3 attempts" in caught.value.message and "scripted failure" in caught.value.message
    assert len(sleeps) == 2 and 0.375 <= sleeps[0] <= 0.625 and 0.75 <= sleeps[1] <= 1.25


def test_a_4xx_other_than_429_is_not_retried(fake):
    fake.script(status(401, message="bad key"), answer("never"))
    with pytest.raises(LLMHTTPError) as caught:
        client(fake).chat(MESSAGES)
    assert caught.value.status == 401 and "bad key" in caught.value.message
    assert len(fake.requests) == 1


def test_per_call_timeout(fake):
    fake.script(slow(2.0))
    with pytest.raises(LLMTimeout) as caught:
        client(fake, max_retries=0, timeout_s=0.3).chat(MESSAGES)
    assert caught.value.code == "llm_timeout"


def test_a_timeout_is_retried(fake):
    fake.script(slow(2.0), answer("second time"))
    result = client(fake, max_retries=1, timeout_s=0.5).chat(MESSAGES)
    assert result.content == "second time" and result.attempts == 2


def test_unreachable_provider():
    dead = ChatClient(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=1, sleep=lambda s: None)
    with pytest.raises(LLMUnreachable) as caught:
        dead.chat(MESSAGES)
    assert caught.value.attempts == 2 and caught.value.code == "llm_error"


def test_json_mode_parses_and_asks_for_json(fake):
    fake.script(json_answer({"sql": "SELECT 1"}))
    result = client(fake).chat_json(MESSAGES)
    assert result.parsed == {"sql": "SELECT 1"}
    assert fake.requests[0].body["response_format"] == {"type": "json_object"}


def test_json_mode_accepts_a_fenced_answer(fake):
    fake.script(answer('```json\n{"a": 1}\n```'))
    assert client(fake).chat_json(MESSAGES, json_mode=False).parsed == {"a": 1}
    assert "response_format" not in fake.requests[0].body


@pytest.mark.parametrize("text", ["not json at all", '{"a": ', "[1, 2]", ""])
def test_json_mode_refuses_a_malformed_answer(fake, text):
    fake.script(answer(text))
    with pytest.raises(LLMInvalidResponse) as caught:
        client(fake).chat_json(MESSAGES)
    assert caught.value.code == "llm_invalid_response"


def test_a_body_that_is_not_json_is_invalid(fake):
    fake.script(malformed())
    with pytest.raises(LLMInvalidResponse, match="not JSON"):
        client(fake).chat(MESSAGES)


def test_a_body_that_is_not_a_completion_is_invalid(fake):
    from tests.support.fake_llm import Reply
    fake.script(Reply(body={"hello": "world"}))
    with pytest.raises(LLMInvalidResponse, match="not a chat completion"):
        client(fake).chat(MESSAGES)


def test_tool_calls(fake):
    tools = [{"type": "function", "function": {"name": "run_sql", "description": "run a query",
                                               "parameters": {"type": "object",
                                                              "properties": {"sql": {"type": "string"}}}}}]
    fake.script(tool_call("run_sql", {"sql": "SELECT 2"}))
    result = client(fake).chat(MESSAGES, tools=tools, tool_choice="auto")
    assert result.content is None and result.finish_reason == "tool_calls"
    assert [c.to_dict() for c in result.tool_calls] == [{"id": "call_1", "name": "run_sql",
                                                          "arguments": {"sql": "SELECT 2"}}]
    assert fake.requests[0].body["tools"] == tools and fake.requests[0].body["tool_choice"] == "auto"


def test_retry_after_forms():
    assert retry_after_s("2.5") == 2.5
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480.0 - 10) == 10.0


def test_parse_json_answer():
    assert parse_json_answer(' {"x": [1]} ') == {"x": [1]}
    with pytest.raises(LLMInvalidResponse):
        parse_json_answer(None)


def test_prompts_are_package_files():
    assert "read-only" in load_prompt("nl_to_sql.system")
    text = render_prompt("nl_to_sql.user", schemas="- a", namespace="ns", question="how many?")
    assert "how many?" in text and "$" not in text
    with pytest.raises(FileNotFoundError):
        load_prompt("../secrets")
    with pytest.raises(FileNotFoundError):
        load_prompt("no_such_prompt")
