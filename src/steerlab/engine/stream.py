"""The handle a caller holds on one generation: iterate its events (sync or async), or cancel it."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field


@dataclass
class TokenEvent:
    text: str
    """Text made visible by this token (may be empty while a stop string or UTF-8 char is pending)."""
    token_id: int | None
    index: int
    """0-based index of the generated token."""
    finish_reason: str | None = None
    """On the last event: "stop", "length", "abort" (a steering abort event) or "cancelled"."""
    events: list[str] = field(default_factory=list)
    """Steering events (``handle_when``/``abort_when`` names) that fired at this token."""
    error: str | None = None


class Stream:
    """Events come from the engine thread; the consumer reads them in its own thread or event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._async_q: asyncio.Queue | None = asyncio.Queue() if loop else None
        self._sync_q: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def push(self, event: TokenEvent) -> None:
        """Called by the engine thread."""
        if self._loop is not None:
            assert self._async_q is not None  # made with the loop
            try:
                self._loop.call_soon_threadsafe(self._async_q.put_nowait, event)
            except RuntimeError:  # the consumer's loop is gone: nobody is listening any more
                self.cancelled.set()
        else:
            self._sync_q.put(event)

    def cancel(self) -> None:
        """Stop generating (e.g. the client disconnected); the engine frees the row at its next step."""
        self.cancelled.set()

    def __iter__(self) -> Iterator[TokenEvent]:
        while True:
            event = self._sync_q.get()
            yield event
            if event.finish_reason is not None:
                return

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        if self._async_q is None:
            raise RuntimeError("this stream was created without an event loop; iterate it synchronously")
        try:
            while True:
                event = await self._async_q.get()
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            self.cancel()  # consumer stopped early (disconnect): free the row

    def text(self) -> tuple[str, str | None, list[str]]:
        """Block until done (sync streams): full text, finish reason, all events."""
        parts, events, reason = [], [], None
        for event in self:
            parts.append(event.text)
            events += event.events
            reason = event.finish_reason
            if event.error:
                raise RuntimeError(event.error)
        return "".join(parts), reason, events
