"""uvicorn's HTTP protocol with two additions:
- a clock on the request head: a client that takes longer than `header_timeout_s` to send a
  request line and headers gets 408 and is disconnected, so slowly trickled headers cannot
  hold connections open (uvicorn has no such timeout; the body has its own in the
  middleware, idle keep-alive connections uvicorn's own);
- the fast no (server/rest/fast_no.py): a prediction the core refuses is answered here, once
  its headers are parsed, its body discarded as it arrives, and the connection's next
  request read no sooner than the core's pace after the refusal. Pausing the transport
  stops further reads only: bytes already read past the refused body (a client that sends
  headers and body apart gets its refusal in between, and its body and next request may
  then come in one read) are held and parsed when the pace ends. A request that came in
  the same read as the refused one's headers (a client that pipelines) is parsed with it
  and answered at once; llhttp's parser cannot stop mid-read, and the answers stay in order."""
from __future__ import annotations

import asyncio
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.rest.fast_no import FastNo

_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class _Protocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    fast_no: FastNo | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _refused: tuple[float, bool] | None = None  # a refused request's (time, keep alive) until its end
    _resume_timer: asyncio.TimerHandle | None = None  # set while a pace runs
    _body_left = 0  # of a refused request's body, not yet read
    _held = b""  # bytes read during a pace, parsed when it ends

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        if self._resume_timer is not None:
            self._unset_keepalive_if_required()  # bytes wait to be parsed: the connection is not idle
            self._held += data
            return
        if self._refused is not None and 0 < self._body_left < len(data):
            # the refused body ends inside this read: what follows it waits for the pace
            data, rest = data[:self._body_left], data[self._body_left:]
            super().data_received(data)
            if self._resume_timer is not None:
                self._held += rest
                return
            data = rest
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request of a kept-alive connection
            self._start_header_clock()

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        if self.fast_no is not None and (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            start = time.perf_counter()
            keep_alive = self.parser.get_http_version() == "1.1" and self.parser.should_keep_alive()
            refused = self.fast_no.answer(self.parser.get_method(), self.url, self.headers, keep_alive,
                                          self.server_state.default_headers)
            if refused is not None:
                self.transport.write(refused.response)
                self.fast_no.refusals.refused("rest", refused.method, time.perf_counter() - start)
                self.server_state.total_requests += 1
                self._refused = (time.monotonic(), refused.keep_alive)
                self._body_left = refused.body_length
                if not refused.keep_alive:  # written before the close; the rest is not read
                    self.transport.close()
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused is None:
            super().on_body(body)
        else:
            self._body_left -= len(body)

    def on_message_complete(self) -> None:
        if self._refused is None:
            super().on_message_complete()
        else:
            self._end_refusal()

    def _end_refusal(self) -> None:
        """The refused request's body is read: pauses reading for the rest of the pace (the
        keep-alive clock starts when it ends), or closes."""
        assert self._refused is not None and self.fast_no is not None
        at, keep_alive = self._refused
        self._refused = None
        if not keep_alive or self.transport.is_closing():
            self.transport.close()
            return
        pause = at + self.fast_no.refusals.pace_s - time.monotonic()
        if pause <= 0:
            self._arm_keep_alive()
            return
        self.flow.pause_reading()
        if self._resume_timer is not None:  # a pipelined refusal after another: its pace counts
            self._resume_timer.cancel()
        self._resume_timer = self.loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        """The pace is over: reads again, the keep-alive clock from now, held bytes first."""
        self._resume_timer = None
        held, self._held = self._held, b""
        self.flow.resume_reading()
        self._arm_keep_alive()
        if held and not self.transport.is_closing():
            self.data_received(held)

    def _arm_keep_alive(self) -> None:
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        super().connection_lost(exc)

    def _start_header_clock(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()


def http_protocol(header_timeout_s: float, fast_no: FastNo | None = None) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`) for this header timeout and fast no."""
    return type("BetHttpProtocol", (_Protocol,), {"header_timeout_s": header_timeout_s, "fast_no": fast_no})
