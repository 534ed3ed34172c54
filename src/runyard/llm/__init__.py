"""The language-model layer's client side: an OpenAI-compatible chat client and the
prompt files. Pure: nothing here imports the server (services/llm.py does the rest —
providers, metering, traces)."""

from runyard.llm.client import (
    ChatClient,
    ChatResult,
    LLMError,
    LLMHTTPError,
    LLMInvalidResponse,
    LLMTimeout,
    LLMUnreachable,
    ToolCall,
    Usage,
    parse_json_answer,
)
from runyard.llm.prompts import load_prompt, render_prompt

__all__ = ["ChatClient", "ChatResult", "LLMError", "LLMHTTPError", "LLMInvalidResponse", "LLMTimeout",
           "LLMUnreachable", "ToolCall", "Usage", "load_prompt", "parse_json_answer", "render_prompt"]
