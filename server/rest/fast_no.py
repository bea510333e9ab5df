"""REST's fast no (server/core/overload.py): a prediction the core would refuse now is
answered by the HTTP protocol itself (server/rest/protocol.py) from its request line and
headers, as the bytes of the error table's 503: no ASGI scope, task, middleware, body
parsing or credential check. Requests the fast no cannot answer as the app would go the
app's way, which refuses them by the same rule: a browser's (an Origin header, whose answer
needs CORS headers) and, with authentication on, one without credentials (401 comes first)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from http import HTTPStatus

from server.core import telemetry
from server.core.overload import Refusals
from server.rest import converters, fast_path, oip

_ORIGIN, _AUTHORIZATION, _API_KEY, _EXPECT = b"origin", b"authorization", b"x-api-key", b"expect"
_REQUEST_ID = telemetry.REQUEST_ID_HEADER.encode()
_LARGEST_DISCARDED = 1 << 20  # a refused body past this closes the connection, unread


@functools.cache
def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()


@dataclass(frozen=True)
class Refused:
    response: bytes  # the whole HTTP/1.1 answer
    keep_alive: bool  # false: close the connection after it
    method: str  # the metrics' label, as RequestTracking names the route
    body_length: int  # the refused request's body, discarded as it arrives


class FastNo:
    def __init__(self, refusals: Refusals, *, credentials_needed: bool, cors: bool) -> None:
        self.refusals = refusals
        self._credentials_needed = credentials_needed
        self._cors = cors

    def answer(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool,
               default_headers: list[tuple[bytes, bytes]]) -> Refused | None:
        """The refusal of this request, or None: the app answers it."""
        if method != b"POST":
            return None
        path = url.partition(b"?")[0]
        if b"%" in path:
            return None
        text = path.decode("ascii", "replace")
        if not fast_path.is_hot(text):
            return None
        error = self.refusals.refusal()
        if error is None:
            return None
        given, credentials, length = None, False, 0
        for name, value in headers:
            if name == _ORIGIN and self._cors:
                return None
            if name in (_AUTHORIZATION, _API_KEY):
                credentials = True
            elif name == _REQUEST_ID and given is None:
                given = value.decode("latin-1")
            elif name == _EXPECT:
                keep_alive = False  # the client may hold its body back: its bytes would follow
            elif name == b"content-length":
                length = int(value) if value.isdigit() else _LARGEST_DISCARDED + 1
            elif name == b"transfer-encoding":
                keep_alive = False
        if self._credentials_needed and not credentials:
            return None
        keep_alive = keep_alive and length <= _LARGEST_DISCARDED
        status, extra, body = converters.error_parts(error, text)
        lines = [_status_line(status),
                 *(b"%s: %s" % pair for pair in default_headers),
                 b"content-type: application/json", b"content-length: %d" % len(body),
                 *(f"{name}: {value}".encode() for name, value in (extra or {}).items()),
                 b"%s: %s" % (_REQUEST_ID, telemetry.request_id_from(given).encode())]
        if not keep_alive:
            lines.append(b"connection: close")
        route = text if text in fast_path.ROUTES else oip.INFER
        return Refused(b"\r\n".join(lines) + b"\r\n\r\n" + body, keep_alive, f"POST {route}", length)

