"""Protocol-neutral results of the model: what the serving core receives from a prediction,
and the one limit on a text that serving and training share."""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_TEXT_CHARS = 10_000  # characters per text: bet serve accepts no more, bet train refuses more


@dataclass(frozen=True)
class Uncertainty:
    """Uncertainty split in nats: total = aleatoric + epistemic."""

    total: float  # entropy of the mean predictive distribution over views and draws
    aleatoric: float  # mean entropy of the individual draws
    epistemic: float  # total - aleatoric (mutual information), >= 0


@dataclass(frozen=True)
class Prediction:
    """One text's answer, the expectation over its K seeded views (all of its windows) and
    M posterior draws per view."""

    label_id: int
    label: str
    confidence: float  # calibrated probability of `label`
    probabilities: dict[str, float]  # label -> calibrated probability, sums to 1
    uncertainty: Uncertainty
    cot_length: int  # recommended chain-of-thought length k* (see model/cot.py)
    reasoning: list[str] | None = None  # evidence steps, filled only when asked for


@dataclass(frozen=True)
class ModelInfo:
    """What `GET /v1/model` and `GetModelInfo` describe."""

    name: str
    version: str
    labels: list[str]
    n_views: int
    n_draws: int  # posterior draws per view
    window_pieces: int  # word pieces per window; a longer text is read in several
    max_windows: int  # the most windows one text may take
    digest: str  # sha256 over the checkpoint manifest
    created_at: str  # ISO 8601
    config: dict = field(default_factory=dict)  # network and view configuration
    metrics: dict = field(default_factory=dict)  # evaluation metrics stored with the checkpoint
