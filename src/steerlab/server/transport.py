"""What uvicorn does not guard: a client that opens a connection and never finishes its request head.

uvicorn's ``timeout_keep_alive`` only starts once a response is complete, so a connection that sends
nothing, or a request line and headers a byte at a time (slowloris), is kept forever, and enough of
them hold every file descriptor (or, with ``limit_concurrency``, turn every new request into a 503).
:func:`header_timeout_protocol` gives uvicorn's h11 protocol a deadline for each request head: from
the connection's start, and again from the first byte of each later request on a kept-alive
connection; a connection that has not sent a whole head by then is closed. Bodies and responses are
not timed (a long generation is not an idle client).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a ``seconds`` deadline for each request head (pass as ``http=``)."""

    class HeaderTimeoutProtocol(H11Protocol):
        header_timeout_s = seconds
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # still waiting for a whole request head
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            """Start the deadline unless one runs: dribbling bytes does not push it back."""
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
