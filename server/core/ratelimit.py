"""One token bucket per caller, shared by both doors: a caller has `burst` requests at once
and `rate` more each second, whichever protocol it uses."""
from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_callers = max_callers  # past this many buckets, full ones are forgotten
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at time)

    def take(self, caller: str, cost: float = 1.0) -> float:
        """Takes `cost` tokens from `caller`'s bucket and returns 0; or, when there are not
        enough, takes nothing and returns the seconds until there will be."""
        now = self._clock()
        tokens, then = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        taken = tokens >= cost
        self._buckets[caller] = (tokens - cost if taken else tokens, now)
        if len(self._buckets) > self._max_callers:
            self._forget_full(now)
        return 0.0 if taken else (cost - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drops the buckets that have refilled: forgetting them changes nothing."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
