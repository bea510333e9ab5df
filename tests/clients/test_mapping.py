"""The client's error table against the server's (server/errors.py): every row, both wires,
lands on the class of the same name; and the retry policy's decisions."""
from __future__ import annotations

import grpc
import pytest

from bet_client import errors as client_errors
from bet_client.retry import RetryPolicy
from server import errors as server_errors

# Spot checks by name; every other row of the server's table must map too (see below).
NAMED = {
    server_errors.InvalidInput: client_errors.InvalidArgumentError,
    server_errors.UnparsableInput: client_errors.InvalidArgumentError,
    server_errors.Unauthenticated: client_errors.UnauthenticatedError,
    server_errors.PermissionDenied: client_errors.PermissionDeniedError,
    server_errors.RateLimited: client_errors.RateLimitedError,
    server_errors.Overloaded: client_errors.UnavailableError,
    server_errors.NotReady: client_errors.UnavailableError,
    server_errors.DeadlineExceeded: client_errors.DeadlineExceededError,
    server_errors.Internal: client_errors.InternalError,
}
ROWS = [row for row in server_errors.ERROR_TABLE if row is not server_errors.BelowThreshold]


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "no", trailing: tuple = ()) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing


@pytest.mark.parametrize("server_error", ROWS, ids=lambda c: c.__name__)
def test_every_row_maps_to_one_typed_error_on_both_wires(server_error: type) -> None:
    wire = server_errors.ERROR_TABLE[server_error]
    over_rest = client_errors.from_http(wire.http_status, {"detail": "why"}, "3")
    over_grpc = client_errors.from_grpc(_RpcError(wire.grpc_code, "why"))
    assert type(over_rest) is type(over_grpc), f"{server_error.__name__}: the wires disagree"
    assert type(over_rest) is not client_errors.BetError, f"{server_error.__name__} has no typed error"
    assert type(over_rest) is NAMED.get(server_error, type(over_rest))
    assert over_rest.detail == over_grpc.detail == "why"
    assert over_rest.retry_after == 3 and over_rest.http_status == wire.http_status
    assert over_grpc.code == wire.grpc_code


def test_unknown_answers_are_still_typed() -> None:
    assert type(client_errors.from_http(418, None)) is client_errors.BetError
    assert client_errors.from_http(503, "not json", "a date").retry_after is None
    assert type(client_errors.from_grpc(_RpcError(grpc.StatusCode.DATA_LOSS))) is client_errors.BetError
    # FAILED_PRECONDITION without the answer in its details is no LowConfidenceError
    assert type(client_errors.from_grpc(_RpcError(grpc.StatusCode.FAILED_PRECONDITION))) is client_errors.ConflictError
    # a call a stopping server cancelled before bet read it: retried like a refusal
    cancelled = client_errors.from_grpc(_RpcError(grpc.StatusCode.CANCELLED))
    assert type(cancelled) is client_errors.UnavailableError and cancelled.code == grpc.StatusCode.CANCELLED
    assert RetryPolicy().delay(1, cancelled, 10) is not None


def test_retry_policy() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=0.15)
    busy = client_errors.UnavailableError("busy")
    assert 0 <= policy.delay(1, busy, 10) <= 0.1
    assert 0 <= policy.delay(2, busy, 10) <= 0.15  # capped
    assert policy.delay(3, busy, 10) is None  # attempts spent
    assert policy.delay(1, client_errors.RateLimitedError("slow down", retry_after=2), 10) >= 2
    assert policy.delay(1, client_errors.RateLimitedError("slow down", retry_after=2), 1) is None
    for error in (client_errors.InvalidArgumentError("bad"), client_errors.DeadlineExceededError("late"),
                  client_errors.InternalError("oops"), client_errors.UnauthenticatedError("who")):
        assert policy.delay(1, error, 10) is None


def test_the_client_needs_no_server_code() -> None:
    import subprocess
    import sys

    code = ("import sys, bet_client, bet_client.client\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastapi', 'server', 'model'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
