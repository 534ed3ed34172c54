"""An OpenAI-compatible chat-completions client on httpx (OpenAI, Ollama, vLLM,
llama.cpp's server, LM Studio all speak it).

One call is ``POST {base_url}/chat/completions``. A 429 or 5xx answer, or a connection
that fails, is retried up to ``max_retries`` times with exponential backoff (honouring
``Retry-After`` when the provider sends one, capped); every attempt has the per-call
timeout. What comes back is a ``ChatResult``: the text, any tool calls, the token usage,
the attempts made and the time taken. ``chat_json`` asks for a JSON object and parses
it (a malformed answer is ``LLMInvalidResponse``, never a half-parsed value).
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.S)


class LLMError(Exception):
    """A model call that failed; ``code`` is stable (``llm_error``, ``llm_timeout``,
    ``llm_invalid_response``)."""

    code = "llm_error"

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts


class LLMHTTPError(LLMError):
    """The provider answered an error status (after the retries, for retryable ones)."""


class LLMUnreachable(LLMError):
    """The provider could not be reached (connection refused, DNS, TLS)."""


class LLMTimeout(LLMError):
    code = "llm_timeout"


class LLMInvalidResponse(LLMError):
    """An answer that is not a chat completion, or not the JSON that was asked for."""

    code = "llm_invalid_response"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class ChatResult:
    content: str | None
    model: str
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    attempts: int = 1
    elapsed_ms: float = 0.0
    parsed: Any = None  # chat_json: the parsed object


def parse_json_answer(text: str | None) -> Any:
    """The JSON object in a model's answer (a Markdown code fence around it is allowed);
    ``LLMInvalidResponse`` when there is none."""
    if text is None or not text.strip():
        raise LLMInvalidResponse("the model answered nothing where a JSON object was expected")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LLMInvalidResponse(f"the model's answer is not valid JSON ({exc.msg} at character {exc.pos}): "
                                 f"{body[:200]!r}") from None
    if not isinstance(value, dict):
        raise LLMInvalidResponse(f"the model's answer is JSON but not an object: {body[:200]!r}")
    return value


def retry_after_s(header: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


class ChatClient:
    """Chat completions against one OpenAI-compatible endpoint (``base_url`` ends before
    ``/chat/completions``, e.g. ``https://api.openai.com/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 2, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.transport = transport
        self.sleep = sleep

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = retry_after_s(response.headers.get("Retry-After")) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_backoff_s * 4)
        base = min(self.backoff_s * (2 ** (attempt - 1)), self.max_backoff_s)
        return base * (0.75 + random.random() / 2)  # jitter: ±25 %

    def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
             tools: list[dict[str, Any]] | None = None, tool_choice: Any = None,
             response_format: dict[str, Any] | None = None, temperature: float | None = None,
             max_tokens: int | None = None, timeout_s: float | None = None) -> ChatResult:
        """One chat completion. ``tools`` are OpenAI function tools
        (``{"type": "function", "function": {name, description, parameters}}``); the
        calls the model makes come back parsed in ``ChatResult.tool_calls``."""
        chosen = model or self.model
        if not chosen:
            raise LLMError("no model named: give one per call or a default model for the provider")
        payload: dict[str, Any] = {"model": chosen, "messages": messages}
        if tools:
            payload["tools"] = tools
            if tool_choice is not None:
                payload["tool_choice"] = tool_choice
        if response_format is not None:
            payload["response_format"] = response_format
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        timeout = timeout_s or self.timeout_s
        started = time.monotonic()
        attempt = 0
        with httpx.Client(transport=self.transport, timeout=httpx.Timeout(timeout)) as http:
            while True:
                attempt += 1
                response: httpx.Response | None = None
                failure: LLMError
                try:
                    response = http.post(f"{self.base_url}/chat/completions", json=payload, headers=self._headers())
                except httpx.TimeoutException:
                    failure = LLMTimeout(f"the model did not answer within {timeout:g} s", attempts=attempt)
                except httpx.HTTPError as exc:
                    failure = LLMUnreachable(f"the model provider could not be reached: {exc}", attempts=attempt)
                else:
                    if response.status_code < 400:
                        result = self._result(response, chosen)
                        result.attempts = attempt
                        result.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
                        return result
                    failure = LLMHTTPError(
                        f"the model provider answered {response.status_code}: {_error_text(response)}",
                        status=response.status_code, attempts=attempt)
                    if response.status_code not in RETRY_STATUSES:
                        raise failure
                if attempt > self.max_retries:
                    if attempt > 1:
                        failure.message += f" (after {attempt} attempts)"
                        failure.args = (failure.message,)
                    raise failure
                self.sleep(self._delay(attempt, response))

    def chat_json(self, messages: list[dict[str, Any]], *, json_mode: bool = True, **kwargs: Any) -> ChatResult:
        """A chat completion whose answer must be a JSON object: asks for JSON mode
        (``response_format``) unless ``json_mode`` is False (for servers without it), and
        parses the answer into ``ChatResult.parsed``."""
        if json_mode:
            kwargs.setdefault("response_format", {"type": "json_object"})
        result = self.chat(messages, **kwargs)
        result.parsed = parse_json_answer(result.content)
        return result

    @staticmethod
    def _result(response: httpx.Response, model: str) -> ChatResult:
        try:
            body = response.json()
        except ValueError:
            raise LLMInvalidResponse(f"the provider's answer is not JSON: {response.text[:200]!r}",
                                     status=response.status_code) from None
        try:
            choice = body["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMInvalidResponse(f"the provider's answer is not a chat completion: {str(body)[:200]!r}",
                                     status=response.status_code) from None
        calls = []
        for raw in message.get("tool_calls") or []:
            function = raw.get("function") or {}
            arguments = function.get("arguments") or "{}"
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except json.JSONDecodeError:
                raise LLMInvalidResponse(f"tool call {function.get('name')!r} has arguments that are not JSON: "
                                         f"{arguments[:200]!r}") from None
            calls.append(ToolCall(id=str(raw.get("id") or ""), name=str(function.get("name") or ""),
                                  arguments=parsed if isinstance(parsed, dict) else {"value": parsed}))
        usage = body.get("usage") or {}
        return ChatResult(content=message.get("content"), model=str(body.get("model") or model),
                          usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
                          tool_calls=calls, finish_reason=choice.get("finish_reason"))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except ValueError:
        pass
    return response.text[:300] or response.reason_phrase
