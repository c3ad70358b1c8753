"""Per-key request and token budgets (moving one-minute windows, via the ``limits`` library)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute, storage, strategies

from steerlab.errors import SteerlabError


class RateLimited(SteerlabError):
    """Over a per-key limit (429); ``code`` names it, e.g. ``requests_per_minute``."""

    status = 429

    def __init__(self, what: str, limit: int, retry_after: float):
        super().__init__(
            f"rate limit exceeded: {limit} {what} per minute for this API key; retry after {math.ceil(retry_after)} s"
        )
        self.what, self.limit, self.retry_after = what, limit, max(1, math.ceil(retry_after))
        self.code = f"{what}_per_minute"


class RateLimiter:
    def __init__(self, requests_per_minute: int, tokens_per_minute: int):
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.requests = RateLimitItemPerMinute(requests_per_minute)
        self.tokens = RateLimitItemPerMinute(tokens_per_minute)

    def _retry_after(self, item, key: str) -> float:
        reset, _remaining = self._limiter.get_window_stats(item, key)
        return reset - time.time()

    def check_request(self, key: str) -> None:
        """Count one request; raise RateLimited when the key is over its requests/min."""
        if not self._limiter.hit(self.requests, key):
            raise RateLimited("requests", self.requests.amount, self._retry_after(self.requests, key))
        if not self._limiter.test(self.tokens, key):
            raise RateLimited("tokens", self.tokens.amount, self._retry_after(self.tokens, key))

    def charge_tokens(self, key: str, n: int) -> None:
        """Record tokens used (prompt + completion). Over-budget usage is recorded as the full window,
        so the next request is refused until the window has room again."""
        if n <= 0:
            return
        if not self._limiter.hit(self.tokens, key, cost=min(n, self.tokens.amount)):
            remaining = self._limiter.get_window_stats(self.tokens, key)[1]
            if remaining:
                self._limiter.hit(self.tokens, key, cost=remaining)
