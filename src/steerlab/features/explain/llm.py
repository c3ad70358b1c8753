"""A small client for any OpenAI-compatible ``/chat/completions`` endpoint: concurrent, bounded, retried.

Shared by the LLM explainer and the detection scorer. Thousands of features means thousands of
requests, so requests run concurrently under a semaphore; a slow or failing endpoint costs one feature
its answer (``None``), never the run. Plain httpx instead of the ``openai`` package: the wire format is
four fields, and we want exact control over timeouts and retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from steerlab.errors import InvalidInputError

Messages = list[dict[str, str]]
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class LLMConfig:
    base_url: str
    """Endpoint root including the version, e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``."""
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    """Per request (connect + read); a request past it counts as a failed attempt."""
    max_retries: int = 3
    """Extra attempts after the first, with exponential backoff (0.5 s, 1 s, 2 s, ... capped at 8 s)."""
    concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int = 64
    backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, settings=None, **overrides) -> LLMConfig:
        """Built from ``STEERLAB_EXPLAINER_*`` settings; explicit keyword overrides win when not None."""
        from steerlab.settings import get_settings

        s = settings or get_settings()
        if not s.explainer_base_url:
            raise InvalidInputError(
                "is not set: export STEERLAB_EXPLAINER_BASE_URL=http://host:port/v1", field="explainer_base_url"
            )
        key = s.explainer_api_key.get_secret_value() if s.explainer_api_key else None
        cfg = cls(
            base_url=s.explainer_base_url,
            model=s.explainer_model,
            api_key=key,
            timeout_s=s.explainer_timeout_s,
            max_retries=s.explainer_max_retries,
            concurrency=s.explainer_concurrency,
        )
        for name, value in overrides.items():
            if value is not None:
                setattr(cfg, name, value)
        return cfg


class ChatClient:
    """Sends many chat requests concurrently; each answer is the message text or None after retries."""

    def __init__(self, config: LLMConfig):
        if config.concurrency < 1:
            raise InvalidInputError(f"must be >= 1, got {config.concurrency}", field="concurrency")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    async def _one(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, messages: Messages) -> str | None:
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        for attempt in range(cfg.max_retries + 1):
            retry_after = None
            async with gate:
                try:
                    resp = await client.post(self.url, json=body)
                except (httpx.TimeoutException, httpx.TransportError):
                    resp = None
            if resp is not None:
                if resp.status_code == 200:
                    return _content(resp)
                if resp.status_code not in RETRY_STATUS:
                    return None
                retry_after = _retry_after(resp)
            if attempt < cfg.max_retries:
                delay = min(8.0, cfg.backoff_s * 2**attempt) * (0.75 + 0.5 * random.random())
                await asyncio.sleep(min(8.0, retry_after) if retry_after is not None else delay)
        return None

    async def acomplete_all(
        self, requests: Sequence[Messages], on_done: Callable[[], None] | None = None
    ) -> list[str | None]:
        """Answers in request order; ``on_done`` is called after each request finishes (progress bars)."""
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        gate = asyncio.Semaphore(cfg.concurrency)
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(cfg.timeout_s), headers=headers, limits=limits) as client:

            async def tracked(messages: Messages) -> str | None:
                try:
                    return await self._one(client, gate, messages)
                finally:
                    if on_done:
                        on_done()

            return list(await asyncio.gather(*(tracked(m) for m in requests)))

    def complete_all(self, requests: Sequence[Messages], on_done: Callable[[], None] | None = None) -> list[str | None]:
        """Blocking version; safe to call from inside a running event loop (runs in a worker thread)."""
        return run_sync(self.acomplete_all(requests, on_done))


def run_sync(coro):
    """``asyncio.run`` that also works when the caller already runs an event loop (server, notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _content(resp: httpx.Response) -> str | None:
    """The first choice's message text, or None for a body that is not an OpenAI chat completion."""
    try:
        content = resp.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None
