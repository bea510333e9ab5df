"""Typed configuration of the network, its views and its fitted uncertainty head."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class NetworkConfig:
    vocab_size: int = 30522  # WordPiece vocabulary of the bundled tokenizer (MiniLM's, uncased)
    embed_dim: int = 64  # factorised token-embedding width: keeps the checkpoint a few MB
    d_model: int = 128  # transformer width
    n_layers: int = 2  # encoder blocks; 2 sustains >1,000 texts/s with all views on 2 cores
    n_heads: int = 4  # attention heads (d_model / n_heads = 32 per head)
    d_ff: int = 256  # feed-forward width
    max_len: int = 128  # ids per window including [CLS]/[SEP]; a longer text is read in windows (model/windows.py)
    max_offset: int = 32  # positional offsets per view are drawn from [0, max_offset)
    dropout: float = 0.1  # training only; inference is deterministic
    n_labels: int = 2  # classes
    distill_dim: int = 384  # teacher sentence-embedding width predicted in training (0 = none)
    pad_id: int = 0  # [PAD]
    cls_id: int = 101  # [CLS]
    sep_id: int = 102  # [SEP]


@dataclass
class ViewConfig:
    n_views: int = 4  # K: views averaged per prediction (offsets and window starts), one batched forward pass
    n_draws: int = 32  # M: posterior draws per view, in logit space (cheap beside a forward pass)
    max_windows: int = 256  # windows one text may take; more is refused as too long


@dataclass
class NgramConfig:
    """The wide part: a linear map over hashed n-grams of the text the transformer reads."""

    bits: int = 18  # 2**bits hashed features for piece bigrams, and as many for character n-grams
    word_ngrams: tuple[int, int] = (1, 2)  # word-piece n-grams: unigrams, and bigrams when the max is 2
    char_ngrams: tuple[int, int] = (3, 4)  # character n-grams of each word piece
    # each n-gram weighs 1 + log(its count in the text) before the block is normalised,
    # instead of 1: repeats count, as in tf-idf's sublinear tf (False: binary, as stored
    # models were fitted)
    sublinear_tf: bool = False


# The familiarity scores, each "larger = less like the training data". Tensors of scores
# hold them in this order (uncertainty.py); everything stored names them.
SCORES = ("feature_distance", "neg_domain_logit", "unigram_nll", "neg_ngram_domain_logit", "general_english_ratio",
          "symbol_share", "fragment_share")
# The text-shape scores (uncertainty.PieceShape), added after heads were stored: a stored
# head without them reads them as switched off, which is how it was fitted.
SHAPE_SCORES = ("symbol_share", "fragment_share")
OFF_SPREAD = 1e30  # the spread of a score switched off: its z stays 0 whatever the text


def _per_score(value: float) -> dict[str, float]:
    return {name: value for name in SCORES}


@dataclass
class HeadConfig:
    """Fitted after training (validation split): calibration and distance awareness."""

    temperature: float = 1.0  # divides the views' logits; fitted by NLL on validation
    # Weight of the n-gram class logits added to every view's logits; fitted with the
    # temperature by validation NLL (0 = transformer alone).
    ngram_weight: float = 0.0
    # A text of n word pieces in more than one window has its logits multiplied by
    # (n / window pieces) ** window_gain: 0 keeps the windows' mean, 1 sums their evidence.
    # Fitted by NLL on the development reviews.
    window_gain: float = 0.0
    # The n-gram logits' weight for a text longer than one window, which the n-gram head
    # reads whole while the transformer reads it in windows; fitted with window_gain. None:
    # ngram_weight, as for any text.
    long_ngram_weight: float | None = None
    # Familiarity: each score put on a common scale by its validation median and 95th
    # percentile (z = 1 at the 95th), per length bucket: a score averaged over few word
    # pieces spreads wider, so a short text is judged against short texts. Bucket b holds
    # texts of edges[b-1] <= pieces < edges[b]; the last holds texts of several windows.
    length_edges: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 127])
    score_median: list[dict[str, float]] = field(default_factory=lambda: [_per_score(0.0)])
    score_spread: list[dict[str, float]] = field(default_factory=lambda: [_per_score(1.0)])  # q95 - median
    # Per bucket, a validation percentile of the worst weighted score
    # (TrainSettings.shrink_quantile): the similarity starts to fall where that share of
    # in-domain views lies.
    score_threshold: list[float] = field(default_factory=lambda: [1.0])
    # Weight of each scaled score in the worst score max_j (weight_j * z_j).
    score_weight: dict[str, float] = field(default_factory=lambda: _per_score(1.0))
    # Per bucket, a lower percentile of the same worst score (TrainSettings.gentle_quantile)
    # where a gentle fall starts: past it, each unit of the worst score costs `gentle`, so
    # that the epistemic part grows with unfamiliarity everywhere, not only past the threshold.
    gentle_threshold: list[float] = field(default_factory=lambda: [0.0])
    gentle: float = 0.0
    # similarity r = exp(-decay * relu(w - threshold) - gentle * relu(w - gentle_threshold)),
    # w = max_j (weight_j * z_j); a view's
    # calibrated logits are drawn from N(r * logits / temperature, sigma0^2 (1 - r^2)): a
    # GP-like prior that reverts to "no idea" far from the training data, where its draws
    # are confident and disagree, which is epistemic uncertainty.
    decay: float = 8.0
    sigma0: float = 4.0  # prior standard deviation of a calibrated logit far from the data

    def __post_init__(self) -> None:
        buckets = len(self.length_edges) + 1
        named = (*self.score_median, *self.score_spread, self.score_weight)
        older = set(SCORES) - set(SHAPE_SCORES)
        for dicts, value in ((self.score_median, 0.0), (self.score_spread, OFF_SPREAD), ((self.score_weight,), 1.0)):
            for d in dicts:
                if isinstance(d, dict) and set(d) == older:
                    d.update(dict.fromkeys(SHAPE_SCORES, value))
        if not all(isinstance(d, dict) and set(d) == set(SCORES) for d in named):
            raise ValueError(f"score scales and weights must name each score {SCORES}")
        if len(self.score_median) == 1 and buckets > 1:  # one scale for every length
            self.score_median = [dict(self.score_median[0]) for _ in range(buckets)]
            self.score_spread = [dict(self.score_spread[0]) for _ in range(buckets)]
        if len(self.score_threshold) == 1 and buckets > 1:
            self.score_threshold = self.score_threshold * buckets
        if len(self.gentle_threshold) == 1 and buckets > 1:
            self.gentle_threshold = self.gentle_threshold * buckets
        if not (len(self.score_median) == len(self.score_spread) == len(self.score_threshold)
                == len(self.gentle_threshold) == buckets):
            raise ValueError(f"score scales and thresholds must hold {buckets} length buckets")
        if not all(w > 0 for w in self.score_weight.values()):
            raise ValueError("score weights must be positive")

    def scores_off(self) -> tuple[str, ...]:
        """The scores that fitting switched off (calibrate.fit_scales' `off`)."""
        return tuple(name for name in SCORES if self.score_spread[0][name] >= OFF_SPREAD)


@dataclass
class ModelConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    ngrams: NgramConfig = field(default_factory=NgramConfig)

    def to_dict(self) -> dict:
        """As JSON would give it back (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Builds from JSON, refusing unknown keys so a foreign config fails loudly."""
        return cls(**{f: strict(kind, data.get(f, {}), f"{f} settings")
                      for f, kind in (("network", NetworkConfig), ("views", ViewConfig), ("head", HeadConfig),
                                      ("ngrams", NgramConfig))})


def strict(kind, raw: dict, what: str):
    """The dataclass `kind` from a JSON object, refusing keys it does not know; lists become
    tuples where the field's default is one."""
    known = {f.name: f for f in fields(kind)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
    tuples = {name for name, f in known.items() if isinstance(f.default, tuple)}
    return kind(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in raw.items()})
