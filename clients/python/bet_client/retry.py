"""When to try a call again: only when the server said it could not take the call now
(UNAVAILABLE / 503, RESOURCE_EXHAUSTED / 429; a gRPC call that a stopping server cancelled
unread, errors.py) or could not be reached; never on an answer about the request itself.
Waits grow exponentially with full jitter, never less than the server's Retry-After, and
never past the call's deadline."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bet_client.errors import BetError, DeadlineExceededError, RateLimitedError, UnavailableError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries in all, the first included; 1 turns retrying off
    initial_backoff: float = 0.1  # seconds: the cap of the first wait
    multiplier: float = 2.0  # the cap grows by this after each try
    max_backoff: float = 5.0  # seconds: the cap stops growing here

    def delay(self, attempt: int, error: BetError, remaining: float) -> float | None:
        """Seconds to wait before try `attempt + 1`, or None to raise `error` now."""
        if attempt >= self.max_attempts or not isinstance(error, (UnavailableError, RateLimitedError)):
            return None
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        wait = max(random.uniform(0, cap), error.retry_after or 0.0)
        return wait if wait < remaining else None  # waiting would spend the whole deadline


NO_RETRY = RetryPolicy(max_attempts=1)


class Deadline:
    """A call's time budget, shared by all of its tries."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raises DeadlineExceededError when none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError("the call's timeout passed before it was answered")
        return left

    def left(self) -> float:
        return max(self._end - time.monotonic(), 0.0)
