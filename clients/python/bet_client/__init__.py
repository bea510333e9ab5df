"""Python client for the bet inference service, over gRPC or REST.

    from bet_client import Client
    with Client("127.0.0.1:50051") as client:          # or Client("127.0.0.1:8000", "rest")
        answer = client.predict("What a wonderful film!")

The answers are the REST models generated from the service's OpenAPI document, whichever
transport carried them; the gRPC stubs generated from proto/ are in bet_client.gen.bet.v1.
"""
from bet_client._ops import Health
from bet_client.client import AsyncClient, Client
from bet_client.errors import (
    BetError,
    ConflictError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    LowConfidenceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
)
from bet_client.gen.models import ModelInfo, PredictBatchResponse, PredictResponse, ReloadResponse, Uncertainty
from bet_client.retry import NO_RETRY, RetryPolicy

__all__ = [
    "AsyncClient", "BetError", "Client", "ConflictError", "DeadlineExceededError", "Health", "InternalError",
    "InvalidArgumentError", "LowConfidenceError", "ModelInfo", "NO_RETRY", "NotFoundError",
    "PermissionDeniedError", "PredictBatchResponse", "PredictResponse", "RateLimitedError", "ReloadResponse",
    "RetryPolicy", "UnauthenticatedError", "UnavailableError", "Uncertainty",
]
