"""The inference core: owns the loaded model and answers requests from either door with
the same rules (validation happened in the request types; the threshold rule is here)."""
from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Protocol, Sequence

from model.types import ModelInfo as ModelInfoRecord
from model.types import Prediction
from server.core import schemas
from server.core.batching import Batcher
from server.core.streaming import ordered
from server.errors import BelowThreshold, NotReady, ServiceError

WARM_UP_TEXTS = ("warm-up", "The service is warming up its model before it reports ready.")
STREAM_WINDOW = 64  # requests of one stream that may wait in the batcher at once


class Predictor(Protocol):
    """What the core needs of model.predictor.Predictor."""

    version: str
    labels: list[str]

    def predict(self, texts: Sequence[str], *, with_reasoning: bool = False) -> list[Prediction]: ...

    def info(self) -> ModelInfoRecord: ...


class InferenceService:
    def __init__(self, predictor: Predictor, batcher: Batcher, *, request_timeout_s: float) -> None:
        self._batcher = batcher
        self._request_timeout_s = request_timeout_s
        self.version = predictor.version
        record = predictor.info()
        self._info = schemas.ModelInfo(
            name=record.name, version=record.version, labels=list(record.labels),
            n_views=record.n_views, digest=record.digest, created_at=record.created_at,
            config=dict(record.config), metrics=dict(record.metrics),
        )
        self.ready = False  # model loaded and a warm-up batch has run; false again on drain

    async def warm_up(self) -> None:
        for with_reasoning in (False, True):
            await self._batcher.submit(
                WARM_UP_TEXTS, with_reasoning=with_reasoning, deadline=self._deadline(None)
            )
        self.ready = True

    def model_info(self) -> schemas.ModelInfo:
        return self._info

    async def predict(
        self, request: schemas.PredictRequest, *, timeout_s: float | None = None
    ) -> schemas.PredictResponse:
        [answer] = await self._answer([request.text], request, timeout_s)
        if answer.confidence < request.confidence_threshold:
            raise BelowThreshold(
                f"confidence {answer.confidence:.6f} is below the threshold "
                f"{request.confidence_threshold}", answer,
            )
        return answer

    async def predict_batch(
        self, request: schemas.PredictBatchRequest, *, timeout_s: float | None = None
    ) -> schemas.PredictBatchResponse:
        answers = await self._answer(request.texts, request, timeout_s)
        result = schemas.PredictBatchResponse(predictions=answers)
        low = [i for i, a in enumerate(answers) if a.confidence < request.confidence_threshold]
        if low:
            raise BelowThreshold(
                f"{len(low)} of {len(answers)} texts are below the threshold "
                f"{request.confidence_threshold}: indices {low[:20]}", result,
            )
        return result

    def stream(
        self, source: AsyncIterable[Any], to_request: Callable[[Any], schemas.PredictRequest]
    ) -> AsyncIterator[schemas.PredictResponse | ServiceError]:
        """Answers each message of `source` in order; `to_request` converts (and validates)
        a wire message and may raise a ServiceError, which is yielded in the answer's place."""

        async def handle(message: Any) -> schemas.PredictResponse:
            return await self.predict(to_request(message))

        return ordered(source, handle, STREAM_WINDOW)

    async def _answer(
        self, texts: Sequence[str], options: schemas.PredictOptions, timeout_s: float | None
    ) -> list[schemas.PredictResponse]:
        if not self.ready:
            raise NotReady("the model is not ready yet")
        predictions = await self._batcher.submit(
            texts, with_reasoning=options.return_cot, deadline=self._deadline(timeout_s)
        )
        return [self._response(p, options) for p in predictions]

    def _deadline(self, timeout_s: float | None) -> float:
        """The caller's deadline, capped by the server's request timeout."""
        limit = self._request_timeout_s if timeout_s is None else min(timeout_s, self._request_timeout_s)
        return time.monotonic() + limit

    def _response(self, p: Prediction, options: schemas.PredictOptions) -> schemas.PredictResponse:
        uncertainty = None
        if options.return_uncertainty:
            u = p.uncertainty
            uncertainty = schemas.Uncertainty(
                total=float(u.total), aleatoric=float(u.aleatoric), epistemic=float(u.epistemic)
            )
        return schemas.PredictResponse(
            prediction=p.label,
            label_id=int(p.label_id),
            confidence=float(p.confidence),
            probabilities={k: float(v) for k, v in p.probabilities.items()},
            uncertainty=uncertainty,
            cot_length=int(p.cot_length) if options.return_cot else None,
            reasoning=list(p.reasoning or []) if options.return_cot else None,
            model_version=self.version,
        )
