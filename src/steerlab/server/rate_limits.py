"""Per-key request and token budgets over moving one-minute windows.

Requests/min use the ``limits`` library. Tokens/min are *reserved* when a request is admitted (a chat's
prompt tokens plus the most it may generate; an analysis's token count) and *settled* when it ends (the
unused part refunded), so concurrent requests cannot together spend more than the quota: the check and
the spending are one step under one lock. A reservation counts from the moment it was made.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute, storage, strategies

from steerlab.errors import SteerlabError
from steerlab.settings import variable_name

WINDOW_S = 60.0


class RateLimited(SteerlabError):
    """Over a per-key limit (429); ``code`` names it, e.g. ``requests_per_minute``."""

    status = 429

    def __init__(self, what: str, limit: int, retry_after: float, detail: str = ""):
        super().__init__(
            f"rate limit exceeded: {limit} {what} per minute for this API key{detail}; "
            f"retry after {math.ceil(retry_after)} s"
        )
        self.what, self.limit, self.retry_after = what, limit, max(1, math.ceil(retry_after))
        self.code = f"{what}_per_minute"


@dataclass
class Reservation:
    """Tokens held for one request; ``settle`` sets what it really used."""

    key: str
    tokens: int
    at: float


class TokenLedger:
    """Tokens per key over the last minute: a list of ``Reservation`` entries, each counted at its size."""

    def __init__(self, tokens_per_minute: int, clock=time.monotonic):
        self.limit = tokens_per_minute
        self._clock = clock
        self._entries: dict[str, deque[Reservation]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> deque[Reservation]:
        entries = self._entries.setdefault(key, deque())
        while entries and entries[0].at <= now - WINDOW_S:
            entries.popleft()
        if not entries:
            self._entries.pop(key, None)
        return entries

    def used(self, key: str) -> int:
        with self._lock:
            return sum(e.tokens for e in self._live(key, self._clock()))

    def _retry_after(self, entries: deque[Reservation], needed: int, now: float) -> float:
        """Seconds until the window has ``needed`` tokens free (entries expire oldest first)."""
        over = sum(e.tokens for e in entries) + needed - self.limit
        for entry in entries:
            over -= entry.tokens
            if over <= 0:
                return entry.at + WINDOW_S - now
        return WINDOW_S

    def reserve(self, key: str, tokens: int, what: str = "") -> Reservation:
        """Hold ``tokens`` for ``key`` or raise ``RateLimited`` (429 + Retry-After) when the last minute's
        usage plus them is over the quota. A request larger than the whole quota can never fit: it is
        refused the same way, its message saying so."""
        tokens = max(0, int(tokens))
        with self._lock:
            now = self._clock()
            entries = self._live(key, now)
            used = sum(e.tokens for e in entries)
            if used + tokens > self.limit:
                if tokens > self.limit:
                    detail = f" ({what or 'this request'} needs {tokens} tokens at once, more than the whole quota)"
                    raise RateLimited("tokens", self.limit, WINDOW_S, detail)
                detail = f" ({used} used in the last minute, {what or 'this request'} needs {tokens})"
                raise RateLimited("tokens", self.limit, self._retry_after(entries, tokens, now), detail)
            reservation = Reservation(key, tokens, now)
            self._entries.setdefault(key, entries).append(reservation)
            return reservation

    def settle(self, reservation: Reservation, used: int) -> None:
        """The request ended having used ``used`` tokens: refund the rest (never charge more than held
        here; ``charge`` records usage beyond a reservation)."""
        with self._lock:
            reservation.tokens = max(0, min(reservation.tokens, int(used)))

    def charge(self, key: str, tokens: int) -> None:
        """Record ``tokens`` used without a reservation; usage over the quota is recorded as the full window,
        so the next request waits until the window has room again."""
        if tokens <= 0:
            return
        with self._lock:
            now = self._clock()
            entries = self._live(key, now)
            take = min(tokens, max(0, self.limit - sum(e.tokens for e in entries)))
            if take:
                self._entries.setdefault(key, entries).append(Reservation(key, take, now))

    def exhausted(self, key: str) -> float | None:
        """Seconds until the key has any room again, or None when it has some now."""
        with self._lock:
            now = self._clock()
            entries = self._live(key, now)
            if sum(e.tokens for e in entries) < self.limit:
                return None
            return self._retry_after(entries, 1, now)


class RateLimiter:
    def __init__(self, requests_per_minute: int, tokens_per_minute: int):
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.requests = RateLimitItemPerMinute(requests_per_minute)
        self.tokens = TokenLedger(tokens_per_minute)

    def _retry_after(self, item, key: str) -> float:
        reset, _remaining = self._limiter.get_window_stats(item, key)
        return reset - time.time()

    def check_request(self, key: str) -> None:
        """Count one request; raise RateLimited when the key is over its requests/min or has no tokens left."""
        if not self._limiter.hit(self.requests, key):
            raise RateLimited("requests", self.requests.amount, self._retry_after(self.requests, key))
        wait = self.tokens.exhausted(key)
        if wait is not None:
            raise RateLimited("tokens", self.tokens.limit, wait)

    def reserve_tokens(self, key: str, n: int, what: str = "") -> Reservation:
        """Hold ``n`` tokens of the key's tokens/min for a request being admitted (429 when they do not fit)."""
        return self.tokens.reserve(key, n, what)

    def settle(self, reservation: Reservation, used: int) -> None:
        """The request ended: keep ``used`` tokens of its reservation charged, refund the rest."""
        self.tokens.settle(reservation, used)

    def charge_tokens(self, key: str, n: int) -> None:
        """Record tokens used (prompt + completion) without a reservation. Over-budget usage is recorded as the
        full window, so the next request is refused until the window has room again."""
        self.tokens.charge(key, n)


class OverBudget(SteerlabError):
    """A request larger than one request may be (413): ``field`` names what to shorten, ``allowed`` the budget."""

    status = 413
    code = "over_token_budget"


@contextmanager
def admitted_tokens(
    limiter: RateLimiter, settings: Any, key: str, counts: dict[str, int], setting: str, what: str, advice: str
) -> Iterator[None]:
    """Admit work of ``counts`` tokens (per field, in request order) within the per-request budget ``setting``
    (413 naming the field that crosses it, with ``advice``), reserving them from the key's tokens/min for
    ``what``. Work refused for its input (a ``SteerlabError``) gets its tokens back; work that ran keeps them.
    The one admission rule of the analysis, classifier and feature routes and the MCP tools."""
    limit = getattr(settings, setting)
    total = 0
    for field, n in counts.items():
        total += n
        if total > limit:
            raise OverBudget(
                f"{total} tokens to run through the model, over this server's budget of {limit} per request "
                f"({variable_name(setting)}); {advice}",
                field=field,
                allowed=f"at most {limit} tokens",
            )
    reservation = limiter.reserve_tokens(key, total, what)
    try:
        yield
    except SteerlabError:
        limiter.settle(reservation, 0)
        raise
