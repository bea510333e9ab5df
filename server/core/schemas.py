"""The single source of the request and response types, with the contract's validation
rules. REST uses these models as its wire types; gRPC converts to and from them."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from model.types import MAX_TEXT_CHARS  # per text, counted as sent; defined once, for training too

MAX_BATCH_TEXTS = 256  # texts per batch request


def _stripped(text: str) -> str:
    """The model reads a text without its surrounding whitespace; all whitespace is no text."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the text holds only whitespace")
    return stripped


# The limits apply to the text as sent, as the JSON schema states them; then it is stripped.
Text = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": r"\S"}),
    AfterValidator(_stripped),
]
Threshold = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

_EXAMPLE_RESPONSE: dict[str, Any] = {
    "prediction": "positive",
    "label_id": 1,
    "confidence": 0.93,
    "probabilities": {"negative": 0.07, "positive": 0.93},
    "uncertainty": {"total": 0.254, "aleatoric": 0.241, "epistemic": 0.013},
    "model_version": "1.0.0",
}
_EXAMPLE_LOW_RESPONSE: dict[str, Any] = {
    "prediction": "negative",
    "label_id": 0,
    "confidence": 0.81,
    "probabilities": {"negative": 0.81, "positive": 0.19},
    "uncertainty": {"total": 0.486, "aleatoric": 0.431, "epistemic": 0.055},
    "model_version": "1.0.0",
}


class _Strict(BaseModel):
    # strict: "true" is not a bool and "0.5" not a float; forbid: unknown fields are errors
    model_config = ConfigDict(strict=True, extra="forbid")


class PredictOptions(_Strict):
    return_uncertainty: bool = Field(True, description="Fill `uncertainty`.")
    return_cot: bool = Field(False, description="Fill `cot_length` and `reasoning`.")
    confidence_threshold: Threshold = Field(
        0.5, description="A confidence below this is answered as an error carrying the answer."
    )


class PredictRequest(PredictOptions):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "What a wonderful film!", "return_cot": True}]}
    )

    text: Text = Field(description="1 to 10,000 characters, not all whitespace.")


class PredictBatchRequest(PredictOptions):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"texts": ["Loved it.", "Dull and far too long."]}]}
    )

    texts: list[Text] = Field(
        min_length=1, max_length=MAX_BATCH_TEXTS, description="1 to 256 texts."
    )


class Uncertainty(BaseModel):
    total: float = Field(description="Entropy of the mean predictive distribution (nats).")
    aleatoric: float = Field(description="Mean entropy of the individual views (nats).")
    epistemic: float = Field(description="total - aleatoric: mutual information, >= 0.")


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RESPONSE]})

    prediction: str = Field(description="The label name.")
    label_id: int = Field(description="Index of that label.")
    confidence: float = Field(description="Calibrated probability of `prediction`.")
    probabilities: dict[str, float] = Field(description="Calibrated probability per label.")
    uncertainty: Uncertainty | None = Field(None, description="Absent when not asked for.")
    cot_length: int | None = Field(None, description="Chain-of-thought length k*; with return_cot.")
    reasoning: list[str] | None = Field(None, description="Evidence steps; with return_cot.")
    model_version: str = Field(description="Version of the checkpoint that answered.")


class PredictBatchResponse(BaseModel):
    predictions: list[PredictResponse] = Field(description="One answer per text, same order.")


class ModelVersion(BaseModel):
    version: str = Field(description="The checkpoint folder's name in the model store.")
    created_at: str = Field(description="When the checkpoint was made, ISO 8601 ('' if unknown).")
    serving: bool = Field(description="True for the version answering now.")


class ModelInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "bet", "version": "1.0.0", "labels": ["negative", "positive"], "n_views": 4,
        "n_draws": 32, "window_pieces": 126, "max_windows": 256,
        "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "created_at": "2025-01-01T00:00:00+00:00",
        "config": {"network": {"d_model": 128, "n_layers": 2}, "views": {"n_views": 4}, "compute_dtype": "float32"},
        "metrics": {"accuracy": 0.91, "ece": 0.02},
        "versions": [
            {"version": "1.1.0", "created_at": "2025-02-01T00:00:00+00:00", "serving": False},
            {"version": "1.0.0", "created_at": "2025-01-01T00:00:00+00:00", "serving": True},
        ],
    }]})

    name: str
    version: str
    labels: list[str]
    n_views: int = Field(description="Seeded views averaged per prediction.")
    n_draws: int = Field(description="Posterior draws per view; the uncertainty split is over views x draws.")
    window_pieces: int = Field(description="Word pieces the network reads at once; a longer text is read "
                                           "whole, in several windows.")
    max_windows: int = Field(description="The most windows one text may take; a text of more word pieces "
                                         "is refused as too long.")
    digest: str = Field(description="sha256 over the checkpoint manifest.")
    created_at: str = Field(description="ISO 8601.")
    config: dict[str, Any] = Field(description="Network and view configuration, and `compute_dtype`: the "
                                   "precision the transformer blocks run in (float32 or bfloat16).")
    metrics: dict[str, Any] = Field(description="Evaluation metrics stored with the checkpoint.")
    versions: list[ModelVersion] = Field(
        default_factory=list,
        description="The versions this server can serve, newest first (with no model store: "
                    "the serving one).",
    )


class ReloadRequest(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": "1.0.0"}, {}]})

    version: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, description="The version to serve; absent: the pinned version, else the newest.")


class ReloadResponse(BaseModel):
    previous_version: str = Field(description="The version that served before the reload.")
    model: ModelInfo = Field(description="The model now serving, with the list of versions.")


# A subclass of ErrorBody states its own examples: pydantic passes `json_schema_extra` down,
# and ErrorBody's lacks the subclass's required fields (tests/clients/test_openapi.py checks).
class ErrorBody(BaseModel):
    """Every REST error answer."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "text: String should have at least 1 character"}]}
    )

    detail: str


class LowConfidenceBody(ErrorBody):
    """REST 422 for POST /v1/predict when confidence < confidence_threshold."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "confidence 0.930000 is below the threshold 0.95",
                 "prediction": _EXAMPLE_RESPONSE}
            ]
        }
    )

    prediction: PredictResponse


class LowConfidenceBatchBody(ErrorBody):
    """REST 422 for POST /v1/predict/batch when any text is below the threshold."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "1 of 2 texts are below the threshold 0.9: indices [1]",
                 "predictions": [_EXAMPLE_RESPONSE, _EXAMPLE_LOW_RESPONSE]}
            ]
        }
    )

    predictions: list[PredictResponse]


class StreamError(ErrorBody):
    """A WebSocket error frame; `status` is what REST would answer, and the socket stays open."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": 422, "detail": "confidence 0.810000 is below the threshold 0.9",
                 "prediction": _EXAMPLE_LOW_RESPONSE}
            ]
        }
    )

    status: int
    prediction: PredictResponse | None = None
