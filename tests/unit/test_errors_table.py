"""The one error table: every error has a row, and the rows match the contract."""
from __future__ import annotations

import grpc
import pytest

from server import errors
from server.errors import ERROR_TABLE, wire_of

CONTRACT = {
    errors.InvalidInput: (422, grpc.StatusCode.INVALID_ARGUMENT),
    errors.UnparsableInput: (400, grpc.StatusCode.INVALID_ARGUMENT),
    errors.MalformedTensor: (400, grpc.StatusCode.INVALID_ARGUMENT),
    errors.UnsupportedMediaType: (415, grpc.StatusCode.INVALID_ARGUMENT),
    errors.BelowThreshold: (422, grpc.StatusCode.FAILED_PRECONDITION),
    errors.Unauthenticated: (401, grpc.StatusCode.UNAUTHENTICATED),
    errors.PermissionDenied: (403, grpc.StatusCode.PERMISSION_DENIED),
    errors.RateLimited: (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    errors.Overloaded: (503, grpc.StatusCode.UNAVAILABLE),
    errors.NotReady: (503, grpc.StatusCode.UNAVAILABLE),
}


@pytest.mark.parametrize(("cls", "expected"), CONTRACT.items())
def test_contract_rows(cls: type, expected: tuple) -> None:
    error = cls("x", None) if cls is errors.BelowThreshold else cls("x")
    wire = wire_of(error)
    assert (wire.http_status, wire.grpc_code) == expected


def test_every_error_class_has_a_row() -> None:
    classes = {c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.ServiceError) and c is not errors.ServiceError}
    assert classes <= set(ERROR_TABLE)


def test_no_row_answers_internal_for_caller_faults() -> None:
    for cls, wire in ERROR_TABLE.items():
        if cls is not errors.Internal:
            assert wire.http_status < 500 or wire.http_status in (503, 504)
            assert wire.grpc_code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
