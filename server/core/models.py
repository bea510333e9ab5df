"""One loaded model version: the predictor, its own batcher and its info. A request takes
the serving LoadedModel once and queues all its texts on that model's batcher, so it is
answered by the version it started on even if a reload switches versions meanwhile."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from model.types import ModelInfo as ModelInfoRecord
from model.types import Prediction
from server.core import schemas
from server.core.batching import Batcher

WARM_UP_TEXTS = ("warm-up", "The service is warming up its model before it reports ready.")


class Predictor(Protocol):
    """What the core needs of model.predictor.Predictor."""

    version: str
    labels: list[str]

    def predict(self, texts: Sequence[str], *, with_reasoning: bool = False) -> list[Prediction]: ...

    def windows(self, texts: Sequence[str]) -> list[int]: ...

    def info(self) -> ModelInfoRecord: ...


# Builds a started batcher around a predict function and a cost function (each text's
# windows), with the server's batching settings.
BatcherFactory = Callable[[Callable[[Sequence[str], bool], list[Prediction]], Callable[[Sequence[str]], list[int]]],
                          Batcher]


@dataclass(eq=False)
class LoadedModel:
    version: str  # what every answer of this model carries as model_version
    predictor: Predictor
    batcher: Batcher
    info: schemas.ModelInfo  # without the list of versions (that is the server's)

    @classmethod
    def start(cls, predictor: Predictor, make_batcher: BatcherFactory) -> LoadedModel:
        record = predictor.info()
        info = schemas.ModelInfo(
            name=record.name, version=predictor.version, labels=list(record.labels),
            n_views=record.n_views, n_draws=record.n_draws, window_pieces=record.window_pieces,
            max_windows=record.max_windows, digest=record.digest, created_at=record.created_at,
            config=dict(record.config), metrics=dict(record.metrics),
        )
        batcher = make_batcher(
            lambda texts, with_reasoning: predictor.predict(texts, with_reasoning=with_reasoning), predictor.windows)
        return cls(predictor.version, predictor, batcher, info)

    async def warm_up(self, deadline: float) -> None:
        """Runs a batch with and without reasoning, so the first real request is not slow."""
        for with_reasoning in (False, True):
            await self.batcher.submit(WARM_UP_TEXTS, with_reasoning=with_reasoning, deadline=deadline)
