"""Chat Completions through the ``openai`` package against any OpenAI-compatible endpoint.

Every call is recorded (model, purpose, prompt, answer, tokens, cost, latency, error) and ends
in a typed ``Completion``: a failed call (HTTP error after the client's own retries, timeout,
truncated, empty or malformed answer) is an outcome, never an exception. The API key is read
from the environment, handed to the client and to nothing else; any echo of it in an answer or
an error is redacted before it is recorded or logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from evolve.llm.ledger import Ledger, PriceTable
from evolve.llm.settings import LlmSettings

log = logging.getLogger("evolve.llm")

Message = dict[str, str]
# Stores one call; returns its id (the archive's ``add_llm_call`` with the run bound).
Recorder = Callable[..., int | None]
_NO_KEY = "no-key"  # local servers (vLLM, Ollama) want none, the client wants a string


class CallError(StrEnum):
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    SERVER = "server_error"
    HTTP = "http_error"
    CONNECTION = "connection"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Completion:
    model: str
    text: str | None  # the answer; kept for a truncated one too
    error: CallError | None
    detail: str  # why it failed, in words ("" when it did not)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    call_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None  # None: the openai package's default (OpenAI)
    api_key: str = field(repr=False)
    key_from: str  # the variable it came from, or "" when the server needs none

    def describe(self) -> str:
        where = self.base_url or "OpenAI (the openai package's default URL)"
        return f"{where}, key from ${self.key_from}" if self.key_from else f"{where}, no API key"


@dataclass(frozen=True)
class NotConfigured:
    reason: str


def resolve_endpoint(settings: LlmSettings, env: Mapping[str, str] | None = None) -> Endpoint | NotConfigured:
    """Where to send requests: ``settings.base_url``, else ``$OPENAI_BASE_URL``, else OpenAI; the
    key from ``$<settings.api_key_env>``. Configured when there is a model and a URL or a key."""
    env = os.environ if env is None else env
    if not settings.models:
        return NotConfigured("no model given (--model NAME, or models in the [llm] section of --config)")
    base_url = settings.base_url or env.get("OPENAI_BASE_URL") or None
    key = env.get(settings.api_key_env) or None
    if key is None and base_url is None:
        return NotConfigured(f"neither ${settings.api_key_env} nor $OPENAI_BASE_URL is set")
    return Endpoint(base_url, key or _NO_KEY, settings.api_key_env if key else "")


def render_messages(messages: list[Message]) -> str:
    """A conversation as one text, as it is recorded in the archive."""
    return "\n\n".join(f"=== {m['role']} ===\n{m['content']}" for m in messages)


class LlmClient:
    """One ``AsyncOpenAI`` per event loop (its connection pool belongs to the loop), at most
    ``settings.concurrency`` requests in flight."""

    def __init__(self, settings: LlmSettings, endpoint: Endpoint, *, prices: PriceTable, ledger: Ledger,
                 record: Recorder) -> None:
        self.settings, self.endpoint = settings, endpoint
        self.prices, self.ledger, self._record = prices, ledger, record
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: Any = None
        self._slots: asyncio.Semaphore | None = None

    def redact(self, text: str) -> str:
        key = self.endpoint.api_key
        return text.replace(key, "[redacted]") if len(key) >= 8 and key != _NO_KEY else text

    def _client(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._api is None or self._slots is None:
            import openai

            self._api = openai.AsyncOpenAI(base_url=self.endpoint.base_url, api_key=self.endpoint.api_key,
                                           timeout=self.settings.timeout_s, max_retries=self.settings.max_retries)
            self._slots = asyncio.Semaphore(self.settings.concurrency)
            self._loop = loop
        return self._api, self._slots

    async def complete(self, model: str, messages: list[Message], *, purpose: str,
                       max_tokens: int | None = None) -> Completion:
        api, slots = self._client()
        params: dict[str, Any] = {self.settings.token_limit_param: max_tokens or self.settings.max_tokens}
        if self.settings.temperature is not None:
            params["temperature"] = self.settings.temperature
        async with slots:
            start = time.monotonic()
            try:
                raw = await api.chat.completions.with_raw_response.create(model=model, messages=messages, **params)
                if raw.retries_taken:
                    log.info("%s (%s): answered after %d retries", model, purpose, raw.retries_taken)
                result = self._parse(model, raw, messages)
            except asyncio.CancelledError:
                cancelled = Completion(model, None, CallError.CONNECTION, "cancelled: the run stopped",
                                       latency_s=time.monotonic() - start)
                self._store(model, purpose, messages, cancelled)
                raise
            except Exception as e:  # noqa: BLE001 - mapped to typed outcomes; anything else is re-raised
                result = self._failure(model, e)
            result = Completion(result.model, result.text, result.error, result.detail, result.prompt_tokens,
                                result.completion_tokens, result.cost_usd, time.monotonic() - start)
        call_id = self._store(model, purpose, messages, result)
        if not result.ok:
            log.warning("LLM call to %s (%s) failed: %s", model, purpose, result.detail)
        return Completion(result.model, result.text, result.error, result.detail, result.prompt_tokens,
                          result.completion_tokens, result.cost_usd, result.latency_s, call_id)

    def _parse(self, model: str, raw: Any, messages: list[Message]) -> Completion:
        """The answer, or MALFORMED with the body as received (the endpoint's fault, worth seeing)."""
        import openai

        try:
            return self._read(model, raw.parse(), messages)
        except (ValueError, openai.APIResponseValidationError) as e:
            body = self.redact(raw.http_response.text[:4000])
            return Completion(model, body, CallError.MALFORMED,
                              f"the answer is not a chat completion: {type(e).__name__}: {str(e)[:300]}")

    def _read(self, model: str, resp: Any, messages: list[Message]) -> Completion:
        """A parsed answer, checked field by field: a server may send any JSON at all."""
        choices = getattr(resp, "choices", None)
        usage = getattr(resp, "usage", None)
        pt = getattr(usage, "prompt_tokens", None)
        ct = getattr(usage, "completion_tokens", None)
        text: str | None = None
        error, detail = None, ""
        if not isinstance(choices, list) or not choices:
            error, detail = CallError.MALFORMED, "the answer has no choices"
        else:
            message = getattr(choices[0], "message", None)
            content = getattr(message, "content", None)
            text = self.redact(content) if isinstance(content, str) else None
            if getattr(choices[0], "finish_reason", None) == "length":
                error, detail = CallError.TRUNCATED, "truncated: the answer reached the token limit"
            elif not text or not text.strip():
                refusal = getattr(message, "refusal", None)
                error = CallError.EMPTY
                detail = f"the model refused: {refusal}" if refusal else "the answer is empty"
        if not isinstance(pt, int) or not isinstance(ct, int):  # no usage reported: estimate it
            pt = sum(len(m["content"]) for m in messages) // 4
            ct = len(text or "") // 4
        return Completion(model, text, error, detail, pt, ct, self.prices.cost(model, pt, ct))

    def _failure(self, model: str, e: Exception) -> Completion:
        import openai

        retries = self.settings.max_retries
        if isinstance(e, openai.APITimeoutError):
            kind, detail = CallError.TIMEOUT, f"no answer within {self.settings.timeout_s:g} s ({retries} retries)"
        elif isinstance(e, openai.RateLimitError):
            kind, detail = CallError.RATE_LIMITED, f"rate limited (HTTP 429) after {retries} retries: {e.message}"
        elif isinstance(e, openai.InternalServerError):
            kind, detail = CallError.SERVER, f"server error (HTTP {e.status_code}) after {retries} retries: {e.message}"
        elif isinstance(e, openai.APIStatusError):
            kind, detail = CallError.HTTP, f"HTTP {e.status_code}: {e.message}"
        elif isinstance(e, openai.APIConnectionError):
            kind, detail = CallError.CONNECTION, f"cannot reach {self.endpoint.base_url or 'OpenAI'}: {e.message}"
        else:
            raise e
        return Completion(model, None, kind, self.redact(detail))

    def _store(self, model: str, purpose: str, messages: list[Message], c: Completion) -> int | None:
        self.ledger.add(c.cost_usd, c.tokens)
        return self._record(model=model, purpose=purpose, prompt=render_messages(messages), response=c.text,
                            prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, cost_usd=c.cost_usd,
                            latency_s=c.latency_s, error=f"{c.error.value}: {c.detail}" if c.error else None)
