"""The inference core: owns the serving model and answers requests from either door with
the same rules (validation happened in the request types; the threshold rule is here)."""
from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from model.types import Prediction
from server.core import schemas, telemetry
from server.core.auth import charge_current
from server.core.metrics import Metrics
from server.core.models import LoadedModel
from server.core.streaming import idle_limited, ordered
from server.errors import BelowThreshold, NotReady, ServiceError

STREAM_WINDOW = 64  # requests of one stream that may wait in the batcher at once
# A uniform answer over two labels has confidence 0.5, which float round-off can put a hair
# under it; answers are equal to 1e-6 across processes and batches, so this is the margin.
THRESHOLD_TOLERANCE = 1e-6


def below_threshold(confidence: float, threshold: float) -> bool:
    return confidence < threshold - THRESHOLD_TOLERANCE


# The versions a server can serve, newest first (schemas.ModelVersion without `serving`).
VersionLister = Callable[[], list[tuple[str, str]]]


class InferenceService:
    stream_idle_timeout_s: float | None = None  # a stream with no message this long ends

    def __init__(
        self, model: LoadedModel, *, request_timeout_s: float, versions: VersionLister | None = None,
        metrics: Metrics | None = None, unfamiliar_epistemic_nats: float = float("inf"),
    ) -> None:
        self._model = model
        self._metrics = metrics
        self._unfamiliar_nats = unfamiliar_epistemic_nats
        self._request_timeout_s = request_timeout_s
        self._versions = versions
        self.ready = False  # model loaded and a warm-up batch has run; false again on drain

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def version(self) -> str:
        return self._model.version

    def use(self, model: LoadedModel) -> LoadedModel:
        """Makes `model` (warm) the serving one and returns the one it replaces. Requests
        that already took the old one finish on it."""
        old, self._model = self._model, model
        return old

    async def warm_up(self) -> None:
        await self._model.warm_up(self._deadline(None))
        self.ready = True

    def admit(self) -> None:
        """Refuses a prediction request at once (Overloaded) when its first text would be
        refused: the doors ask before reading the request, so that under overload a refusal
        costs as little as it can. Not ready: the request itself says so."""
        if self.ready:
            self._model.batcher.admit(1)

    def model_info(self) -> schemas.ModelInfo:
        model = self._model
        listed = self._versions() if self._versions is not None else []
        if model.version not in (name for name, _ in listed):
            listed = [(model.version, model.info.created_at), *listed]
        versions = [schemas.ModelVersion(version=name, created_at=created, serving=name == model.version)
                    for name, created in listed]
        return model.info.model_copy(update={"versions": versions})

    async def predict(
        self, request: schemas.PredictRequest, *, timeout_s: float | None = None
    ) -> schemas.PredictResponse:
        [answer] = await self._answer([request.text], request, timeout_s)
        if below_threshold(answer.confidence, request.confidence_threshold):
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
        low = [i for i, a in enumerate(answers) if below_threshold(a.confidence, request.confidence_threshold)]
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
        a wire message and may raise a ServiceError, which is yielded in the answer's place.
        Each message is charged to the caller's rate limit; a source idle for
        `stream_idle_timeout_s` ends the stream with DeadlineExceeded."""

        async def handle(message: Any) -> schemas.PredictResponse:
            charge_current()
            return await self.predict(to_request(message))

        return ordered(idle_limited(source, self.stream_idle_timeout_s), handle, STREAM_WINDOW)

    async def _answer(
        self, texts: Sequence[str], options: schemas.PredictOptions, timeout_s: float | None
    ) -> list[schemas.PredictResponse]:
        if not self.ready:
            raise NotReady("the model is not ready yet")
        model = self._model  # taken once: every text of this request is answered by it
        telemetry.note_model_version(model.version)
        predictions = await model.batcher.submit(
            texts, with_reasoning=options.return_cot, deadline=self._deadline(timeout_s)
        )
        if self._metrics is not None:
            ctx = telemetry.current.get()
            below = sum(below_threshold(p.confidence, options.confidence_threshold) for p in predictions)
            self._metrics.observe_answers(ctx.protocol if ctx else "internal", model.version, predictions,
                                          below, self._unfamiliar_nats)
        return [self._response(p, options, model.version) for p in predictions]

    def _deadline(self, timeout_s: float | None) -> float:
        """The caller's deadline, capped by the server's request timeout."""
        limit = self._request_timeout_s if timeout_s is None else min(timeout_s, self._request_timeout_s)
        return time.monotonic() + limit

    def _response(
        self, p: Prediction, options: schemas.PredictOptions, version: str
    ) -> schemas.PredictResponse:
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
            model_version=version,
        )
