"""Every knob of training in one typed object, TrainSettings, stored whole in each
checkpoint's metadata.json ("settings"): `bet train --config CHECKPOINT` reads it back, and
the command line's defaults are its defaults. The fitted constants live in config.py's
ModelConfig (config.json). Light on imports, so that `bet --help` stays fast."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .config import SCORES, NetworkConfig, NgramConfig, ViewConfig, strict


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 4  # passes over the labelled rows; 0 = no fine-tuning (teacher.soft_labels)
    lr: float = 5e-5  # peak AdamW learning rate, linear warm-up then linear decay to 0
    batch_size: int = 32
    warmup: float = 0.1  # share of the steps spent warming up
    max_len: int = 128  # word pieces per text, as the compact model reads
    seed: int = 0  # dropout and the order of the rows
    length_pool: int = 16  # batches cut from sorted pools of this many (model/batches.py); 0 = random batches
    # Torch threads while fine-tuning. Fixed rather than taken from the machine, since the
    # order of float sums, and so the teacher, depends on it.
    threads: int = 2
    layers: int = 0  # MiniLM's first this many layers only (bench/teacher_bound.py); 0 = all


# Settings added after checkpoints were stored, with the value that means what training did
# before them: stored settings without one are read with it, so that `bet train --config`
# trains as the stored model was trained.
BEFORE = {"length_pool": 0, "piece_pairs": False, "ngram_labels": 0.0, "ngram_idf": False,
          "background_ratings": False, "long_cross_fit": False, "long_ngram_weight": False,
          "shape_scores": False}

# The choices of each source of optional text (TrainSettings, below).
SOURCES = {"unlabelled": ("none", "reviews"), "background": ("none", "general"),
           "long_texts": ("none", "validation", "reviews")}
MIN_LONG_TEXTS = 20  # fewer labelled long texts than this leave the window gain at 0


@dataclass
class TrainSettings:
    epochs: int = 6  # passes over the labelled rows plus a slice of unlabelled text
    batch_size: int = 64
    length_pool: int = 16  # batches cut from sorted pools of this many (model/batches.py); 0 = random batches
    lr: float = 1e-3  # peak AdamW learning rate, cosine decay after warm-up
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0  # everything random in training derives from this
    distill: bool = True  # use the MiniLM teacher when its package is installed
    kd_weight: float = 1.0  # KL(teacher || student) on teacher soft labels
    # The teacher's soft labels come from MiniLM fine-tuned on the labelled rows
    # (model/finetune.py); with teacher.epochs = 0, from logistic regressions on its frozen
    # sentence embeddings and on tf-idf n-grams (teacher.soft_labels).
    teacher: FinetuneSettings = field(default_factory=FinetuneSettings)
    emb_weight: float = 1.0  # 1 - cos(student projection, teacher sentence embedding)
    unlabelled_per_epoch: int = 12000  # unlabelled sentences sampled per epoch
    labelled_repeats: int = 2  # labelled rows appear this many times per epoch
    background_per_epoch: int = 6000  # non-review sentences per epoch (outlier exposure)
    encoder_background: int = 20000  # background texts the encoder samples from; the n-gram head takes all
    # Regress the teacher's sentence embedding on background text too, not only on reviews:
    # features that keep what any English text is about let the in-domain head and the
    # feature density tell genres they never saw (letters, fiction, finance) from reviews.
    background_emb: bool = True
    # The familiarity threshold: the similarity falls below 1 for (1 - shrink_quantile) of
    # the validation rows' views and fragments, and the weight of each familiarity score
    # (config.SCORES) in the worst score the threshold reads. The general defaults: the 97th
    # percentile (the 95th left a three-label task's own texts 0.054 nats of mean epistemic
    # uncertainty on validation, the 97th 0.042, with the development sets' AUROCs as high:
    # bench/README.md, "Own data: trials"), every score alike. The default model's recipe
    # sets its own weights and decay, chosen for English sentiment text off its home ground
    # (bench/domain_grid.py, docs/adr/0010-familiarity-off-home-ground.md); they stay in its
    # stored settings.
    shrink_quantile: float = 0.97
    score_weight: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCORES, 1.0))
    # The text-shape scores (config.SHAPE_SCORES: shares of symbol and of word-continuing
    # pieces) join the familiarity; off, they are switched off. Off by default: on the default
    # model they let plain English spam through, and on an own-data task they flagged English
    # of other kinds less (docs/adr/0011-text-shape-scores.md).
    shape_scores: bool = False
    # The similarity's decay past the threshold, the prior's spread far from the data and
    # the gentle fall of the similarity (HeadConfig.gentle: its slope, and the validation
    # quantile of the worst score where it starts): chosen on validation and the dev OOD
    # sets by bench/head_grid.py (MODEL_CARD.md).
    decay: float = 8.0
    sigma0: float = 5.0
    gentle: float = 0.01
    gentle_quantile: float = 0.5
    refit_domain: bool = True  # refit the in-domain head on the final features, see calibrate.fit_domain
    crops_per_epoch: int = 6000  # short in-domain fragments per epoch, see `crops`
    domain_weight: float = 0.5  # BCE of the in-domain head
    # Outlier exposure on the classifier (Hendrycks et al. 2019): cross-entropy of its
    # logits on background text to the uniform distribution, so text that is not a review
    # reads as "no evidence either way" even where the familiarity scores pass it.
    uniform_weight: float = 1.0
    # background texts with uniform targets in the n-gram head's class fit, per labelled text
    ngram_uniform: float = 1.0
    # A labelled row's target in the n-gram head's class fit: this share its label, the rest
    # the teacher's soft label (0: the teacher's alone, as the default model was fitted). On
    # labels, the wide part adds what the labels say beyond the teacher, most where the
    # teacher reads the task less well than n-grams do (another language); the validation
    # rows weigh it (HeadConfig.ngram_weight). Trials: bench/README.md, "Own data: trials".
    ngram_labels: float = 1.0
    # The n-gram head's class fit reads each n-gram scaled by its inverse document frequency
    # over the fit's texts (NgramHead.fit), so rare n-grams are regularised less, as in
    # tf-idf; validation NLL down on every task tried, most on long texts in another
    # language (bench/README.md, "Own data: trials"). The default model was fitted without.
    ngram_idf: bool = True
    # The piece density's score reads each piece given the one before (UnigramDensity.pairs),
    # not only its frequency.
    piece_pairs: bool = True
    keep_last: int = 2  # training states kept for resuming
    threads: int = 1  # CPU threads: small steps run ~10x slower when threads outnumber idle cores
    version: str = "1"
    # Where the optional texts come from (model/cli.py reads them). The defaults suit any
    # task: "general" background = model/background.py's text and general-English word
    # counts, which the familiarity scores and the outlier exposure need to mean anything;
    # long texts "validation" = the validation rows longer than one window fit the window
    # gain (when there are at least MIN_LONG_TEXTS of them). The default model's recipe adds
    # what film reviews have: unlabelled "reviews" = sentences and runs of the development
    # reviews, long texts "reviews" = the labelled development reviews, of which the share
    # long_ngram_share joins the n-gram head's class fit (read whole, each weighing
    # long_weight sentences: on the development reviews, cross-validated, a bag of n-grams
    # reads a whole review at 0.84-0.86 where the transformer's windows read 0.71-0.74); the
    # rest fit the window gain, so that it is fitted on texts the head did not learn from.
    long_ngram_share: float = 2 / 3
    long_weight: float = 4.0
    # With long texts "reviews": the network distils only from the long_ngram_share of the
    # reviews the n-gram head learned from, so that the rest are unseen by every part when
    # they fit the long texts' familiarity scales and the window gain; the n-gram head then
    # learns from all of them, and the gain is fitted on the logits of a head fitted
    # without the reviews it scores (cross-fitting). Off: unlabelled text from every
    # review, as the default model before it was trained.
    long_cross_fit: bool = True
    # The n-gram logits' weight on texts longer than one window (HeadConfig.long_ngram_weight)
    # chosen with the window gain on the long texts that fit it; off: the sentences' weight.
    # The default model's recipe turns it on; for other tasks it is not yet measured
    # (bench/own_data.py), so it stays off.
    long_ngram_weight: bool = False
    # The default model's recipe: the "general" background's New York Times editorial
    # sentences are trained toward their raters' split (model/background.py,
    # editorial_targets) instead of uniform, so that opinion writing people read as plainly
    # positive or negative does not read as "no evidence either way". Two-label polarity
    # tasks only (labels "negative" and "positive").
    background_ratings: bool = False
    unlabelled: str = "none"
    background: str = "general"
    long_texts: str = "validation"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    # The n-gram head's features count repeats (NgramConfig.sublinear_tf): validation NLL
    # down most on long texts (bench/README.md, "Own data: trials"). Stored settings and
    # models without the key read binary features, as they were fitted.
    ngrams: NgramConfig = field(default_factory=lambda: NgramConfig(sublinear_tf=True))

    def distilled_reviews(self) -> float:
        """The share of the development reviews whose text the network distils from: with
        long texts "reviews" cross-fitted, those the n-gram head's cut gives it (the first
        long_ngram_share, as train.long_text_rows cuts them); otherwise all."""
        return self.long_ngram_share if self.long_cross_fit and self.long_texts == "reviews" else 1.0

    def check(self) -> None:
        """Refuses a source name that is not one of the choices above, and rated background
        text without the background."""
        for name, allowed in SOURCES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.background_ratings and self.background != "general":
            raise ValueError("background_ratings needs the 'general' background, whose editorials are rated")

    def to_dict(self) -> dict:
        """As JSON gives it back (tuples become lists): stored in the checkpoint's metadata."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> TrainSettings:
        """From to_dict()'s output, refusing unknown keys so that a foreign file fails loudly."""
        data = {**BEFORE, **data}
        if "teacher" in data:
            known = {f.name for f in fields(FinetuneSettings)}
            data["teacher"] = {**{k: v for k, v in BEFORE.items() if k in known}, **data["teacher"]}
        nested = {"network": NetworkConfig, "views": ViewConfig, "ngrams": NgramConfig,
                  "teacher": FinetuneSettings}
        parts = {}
        for name in (f.name for f in fields(cls)):
            if name in data:
                value = data.pop(name)
                if name in nested:
                    value = strict(nested[name], value, f"{nested[name].__name__} settings")
                elif name == "score_weight":
                    value = {k: float(v) for k, v in value.items()}
                parts[name] = value
        if data:
            raise ValueError(f"unknown training settings: {sorted(data)}")
        return cls(**parts)
