"""Fast no's: a prediction the batcher would refuse is answered by the doors before it is
parsed, authenticated or routed, at a small fraction of an answer's cost, because under
overload every cycle the event loop spends refusing is taken from the forward pass (they
share the GIL), and a refusal that costs as much as an answer lowers goodput with every
caller added (bench/README.md, "Overload").

Both doors ask `refusal()` first and call `refused()` for each fast no: it counts the request
in the request metrics (outcome `overloaded`) and writes one log line a second for all of
them, in place of a line each.

Pacing: a caller that sends again at once on the connection it was refused on gets its next
answer no sooner than `pace_s` after the refusal (the REST door stops reading that
connection), so a client that ignores Retry-After cannot make the server refuse at the rate
its event loop can write; one that waits as advised never meets the pace. gRPC calls share
an HTTP/2 connection, which has no such pause per call: they are not paced."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter

from server.core.metrics import Metrics
from server.core.service import InferenceService
from server.errors import Overloaded

log = logging.getLogger("bet.request")  # the request log's logger: refusals are requests
SUMMARY_S = 1.0  # one log line per this many seconds of refusals


class Refusals:
    def __init__(self, service: InferenceService, metrics: Metrics, *, pace_s: float) -> None:
        self._service = service
        self._metrics = metrics
        self.pace_s = pace_s
        self._counts: Counter[tuple[str, str]] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def refusal(self) -> Overloaded | None:
        """The refusal a prediction would get now, or None when it would be queued."""
        try:
            self._service.admit()
        except Overloaded as error:
            return error
        return None

    def refused(self, protocol: str, method: str, seconds: float) -> None:
        """Counts one fast no of `method` on `protocol`, answered in `seconds`."""
        self._metrics.observe_request(protocol, method, Overloaded.outcome, seconds)
        self._counts[protocol, method] += 1
        if self._summary is None:
            self._summary = asyncio.get_running_loop().call_later(SUMMARY_S, self._log_summary)

    def _log_summary(self) -> None:
        self._summary = None
        counts, self._counts = self._counts, Counter()
        for (protocol, method), count in counts.items():
            log.info("requests refused", extra={"fields": {
                "protocol": protocol, "method": method, "outcome": Overloaded.outcome, "count": count,
                "window_s": SUMMARY_S, "expected_wait_ms": self._expected_wait_ms()}})

    def _expected_wait_ms(self) -> float | None:
        wait = self._service.model.batcher.expected_wait_s()
        return None if wait is None else round(wait * 1000, 1)

