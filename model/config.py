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
    max_len: int = 128  # tokens per view including [CLS]/[SEP]; longer texts are truncated
    max_offset: int = 32  # positional offsets per view are drawn from [0, max_offset)
    dropout: float = 0.1  # training only; inference is deterministic
    n_labels: int = 2  # classes
    distill_dim: int = 384  # teacher sentence-embedding width predicted in training (0 = none)
    pad_id: int = 0  # [PAD]
    cls_id: int = 101  # [CLS]
    sep_id: int = 102  # [SEP]


@dataclass
class ViewConfig:
    n_views: int = 4  # K: views averaged per prediction, run in one batched forward pass
    offsets: bool = True  # each view shifts all positions by a seeded offset
    window: int = 1  # tokens are permuted within windows of this size; 1 (none) measured best on validation NLL


@dataclass
class NgramConfig:
    """The wide part: a linear map over hashed n-grams of the text the transformer reads."""

    bits: int = 18  # 2**bits hashed features for piece bigrams, and as many for character n-grams
    word_ngrams: tuple[int, int] = (1, 2)  # word-piece n-grams: unigrams, and bigrams when the max is 2
    char_ngrams: tuple[int, int] = (3, 4)  # character n-grams of each word piece


# Familiarity scores, in this order; each is "larger = less like the training data".
SCORES = ("feature_distance", "neg_domain_logit", "unigram_nll", "neg_ngram_domain_logit", "general_english_ratio")
OFF_SPREAD = 1e30  # the spread of a score switched off: its z stays 0 whatever the text


@dataclass
class HeadConfig:
    """Fitted after training (validation split): calibration and distance awareness."""

    temperature: float = 1.0  # divides logits; fitted by NLL on validation
    # Weight of the n-gram class logits added to every view's logits; fitted with the
    # temperature by validation NLL (0 = transformer alone).
    ngram_weight: float = 0.0
    # Familiarity: the SCORES of how unlike the training data a view is, each put on a
    # common scale by its validation median and 95th percentile (z = 1 at the 95th),
    # per length bucket: a score averaged over few word pieces spreads wider, so a short
    # text is judged against short texts. Bucket b holds texts of edges[b-1] <= pieces < edges[b].
    length_edges: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    score_median: list[list[float]] = field(default_factory=lambda: [[0.0] * len(SCORES)])
    score_spread: list[list[float]] = field(default_factory=lambda: [[1.0] * len(SCORES)])  # q95 - median
    # Per bucket, a validation percentile of the worst weighted score (the 92nd by
    # default, TrainSettings.shrink_quantile): each score alone passes 5% of in-domain text
    # past z = 1, together they would pass several times that, so the similarity starts to
    # fall only where 8% of in-domain views are.
    score_threshold: list[float] = field(default_factory=lambda: [1.0])
    # Weight of each scaled score in the worst score max_j (weight_j * z_j), which the
    # threshold reads; fitted from TrainSettings.score_weight. Ones: every score alike.
    score_weight: list[float] = field(default_factory=lambda: [1.0] * len(SCORES))
    # similarity r = exp(-decay * relu(max_j (weight_j * z_j) - threshold)); the view's
    # logit posterior is N(r * logits, sigma0^2 (1 - r^2)): a GP-like prior that reverts to
    # "no idea" (mean 0, variance sigma0^2) far from the training data.
    decay: float = 8.0  # chosen on the dev OOD sets (italian_web, english_mixed_oanc), not on test
    sigma0: float = 4.0  # prior logit standard deviation far from the data

    def __post_init__(self) -> None:
        if self.score_median and not isinstance(self.score_median[0], list):
            raise ValueError("score_median must hold one list per length bucket")
        buckets = len(self.length_edges) + 1
        if len(self.score_median) == 1 and buckets > 1:  # one scale for every length
            self.score_median = [list(self.score_median[0]) for _ in range(buckets)]
            self.score_spread = [list(self.score_spread[0]) for _ in range(buckets)]
        if len(self.score_threshold) == 1 and buckets > 1:
            self.score_threshold = self.score_threshold * buckets
        if not (len(self.score_median) == len(self.score_spread) == buckets
                and len(self.score_threshold) == buckets
                and all(len(r) == len(SCORES) for r in (*self.score_median, *self.score_spread))):
            raise ValueError(f"score scales must be {buckets} length buckets x {len(SCORES)} scores")
        if len(self.score_weight) != len(SCORES) or not all(w > 0 for w in self.score_weight):
            raise ValueError(f"score_weight must hold {len(SCORES)} positive weights, one per score {SCORES}")

    def scores_off(self) -> tuple[int, ...]:
        """The scores that fitting switched off (calibrate.fit_scales' `off`)."""
        return tuple(j for j, s in enumerate(self.score_spread[0]) if s >= OFF_SPREAD)


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
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Builds from JSON, refusing unknown keys so a foreign config fails loudly."""
        parts = {}
        for f, kind in (("network", NetworkConfig), ("views", ViewConfig), ("head", HeadConfig),
                        ("ngrams", NgramConfig)):
            raw = dict(data.get(f, {}))
            known = {x.name for x in fields(kind)}
            unknown = set(raw) - known
            if unknown:
                raise ValueError(f"unknown {f} settings: {sorted(unknown)}")
            parts[f] = kind(**raw)
        return cls(**parts)
