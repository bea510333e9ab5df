"""A finished model's own outputs on validation, the scale texts and the dev OOD sets,
computed once, and the head refitted on them as training fits it (calibrate.fit_similarity):
what bench/score_weights.py and bench/head_grid.py vary. Test sentences are never read."""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from model import calibrate
from model.config import SCORES, SHAPE_SCORES, HeadConfig
from model.data import cache_dir, fetch, labelled_long_texts, read_rows
from model.expectation import ViewOutputs
from model.metrics import auroc, summarize
from model.predictor import Predictor
from model.settings import TrainSettings
from model.train import long_text_rows, scaling_texts
from model.uncertainty import Decomposition, PieceShape, similarity
from model.views import text_seed
from model.windows import window_pieces

from .ood_sets import all_sets, far_dev_sets

DEV = ("english_mixed_oanc", "italian_web")
SimilarityOf = Callable[[ViewOutputs, torch.Tensor], torch.Tensor]  # (outputs, scores) -> (N, K) similarity
Combine = Callable[[ViewOutputs, torch.Tensor], Decomposition]  # (outputs, similarity) -> the answer


def named(weights: tuple[float, ...]) -> dict[str, float]:
    """Score weights in config.SCORES order -> by name; a row of the first five leaves the
    shape scores out (switched off), as heads were fitted before them."""
    return dict(zip(SCORES[: len(weights)], weights, strict=True))


def outputs(pred: Predictor, texts: list[str]) -> tuple[ViewOutputs, torch.Tensor]:
    """A model's view outputs of `texts` and their (N, K, S) familiarity scores."""
    exp = pred.expectation
    bodies = pred.ckpt.tokenizer.bodies(texts)
    out = exp.raw(bodies, [text_seed(t) for t in texts])
    return out, exp.scores(out, bodies)


def off_home(m: dict, names: tuple[str, ...]) -> str:
    """Each off-home set's accuracy / ECE / misclassification AUROC in `Cached.judge`'s
    figures: the accuracy always beside the other two, which a coin flip reads well on."""
    return " ".join(f"{m[n + '_accuracy']:.3f}/{m[n + '_ece']:.3f}/{m[n + '_auroc']:.3f}" for n in names)


@dataclass
class Cached:
    pred: Predictor
    labels: torch.Tensor  # validation labels
    val: tuple  # (outputs, scores)
    scale: tuple
    dev: dict[str, tuple]
    base: HeadConfig  # the checkpoint's own head
    # English sentiment text of other domains, their dev parts (bench/other_domains.py):
    # name -> (outputs, scores, labels); empty unless asked for
    other: dict[str, tuple] = field(default_factory=dict)

    @classmethod
    def of(cls, pred: Predictor, other_domains: bool = False, far_dev: bool = False, stand_in: bool = False) -> Cached:
        """far_dev: the far sets' development stand-ins (ood_sets.far_dev_sets) join the dev
        sets; stand_in: the editorial stand-in (other_domains.editorial_stand_in) joins the
        other-domain sets as "editorial_stand_in"."""
        exp, tok = pred.expectation, pred.ckpt.tokenizer
        exp.shape = exp.shape or PieceShape.of(tok)  # for rows that switch them on
        if not (cache_dir() / "val.csv").exists():
            fetch()
        rows = read_rows(cache_dir() / "val.csv")
        meta = pred.ckpt.metadata
        settings = (TrainSettings.from_dict(meta["settings"]) if "settings" in meta
                    else TrainSettings(seed=int(meta.get("training", {}).get("seed", 0))))

        from .other_domains import SETS, editorial_stand_in, label_ids

        other = {}
        if other_domains:
            for name, read in SETS.items():
                if (part := read("dev")) is not None:
                    texts, positive = part
                    other[name] = (*outputs(pred, texts), label_ids(pred.labels, positive))
        if stand_in:
            texts, positive = editorial_stand_in()
            other["editorial_stand_in"] = (*outputs(pred, texts), label_ids(pred.labels, positive))
        # the scales are fitted on the texts training fitted them on, long texts included
        _, long_rows = long_text_rows(settings, labelled_long_texts(settings.long_texts), rows, tok,
                                      {name: i for i, name in enumerate(pred.labels)},
                                      window_pieces(pred.ckpt.cfg.network))
        sets = all_sets()
        dev = {name: sets[name] for name in DEV} | (far_dev_sets() if far_dev else {})
        return cls(pred, torch.tensor([pred.labels.index(r.label) for r in rows]),
                   outputs(pred, [r.text for r in rows]),
                   outputs(pred, scaling_texts(settings, [r.text for r in rows], long_rows)),
                   {name: outputs(pred, texts) for name, texts in dev.items()},
                   copy.deepcopy(exp.cfg.head), other)

    def refit(self, quantile: float, weights: dict[str, float], gentle_quantile: float = 0.5, **head: float) -> dict:
        """The head refitted with this threshold quantile and score weights (and any other
        HeadConfig field set first, such as decay or sigma0) -> `judge` of it."""
        return self.judge(self.fit(quantile, weights, gentle_quantile, **head))

    def fit(self, quantile: float, weights: dict[str, float], gentle_quantile: float = 0.5,
            **head: float) -> HeadConfig:
        """The head refitted as `refit` fits it. Scores that `weights` does not name are
        switched off, as are those the checkpoint's own head switched off (but the shape
        scores, which any checkpoint can compute)."""
        off = tuple(name for name in SCORES if name not in weights
                    or (name in self.base.scores_off() and name not in SHAPE_SCORES))
        fitted = copy.deepcopy(self.base)
        for k, v in head.items():
            setattr(fitted, k, v)
        out, scores = self.val
        calibrate.fit_similarity(self.scale[1], self.scale[0].pieces, out, scores, self.labels, fitted,
                                 window_pieces(self.pred.ckpt.cfg.network), off,
                                 quantile, weights, gentle_quantile)
        return fitted

    def judge(self, fitted: HeadConfig, r_of: SimilarityOf | None = None,
              combine: Combine | None = None) -> dict:
        """A head (the checkpoint's own: self.base) -> validation metrics, and per dev set the
        AUROC of total and of epistemic uncertainty against validation and the epistemic
        share of its mean total; per other-domain dev set (Cached.of(other_domains=True)) its
        accuracy, ECE and misclassification AUROC (the accuracy, since a text shrunk to
        50/50 gets a coin flip for an answer, which reads as calibrated and as an error
        ranked last while fewer texts are answered right). r_of(outputs, scores) -> (N, K)
        and combine(outputs, r) -> Decomposition, where given, take the place of the head's
        similarity and of Expectation.combine (bench/learned_similarity.py)."""
        exp = self.pred.expectation
        exp.cfg.head = fitted
        r_of = r_of or (lambda o, s: similarity(s, o.pieces, fitted))
        combine = combine or exp.combine
        try:
            out, scores = self.val
            d = combine(out, r_of(out, scores))
            m = summarize(d.probs.numpy(), self.labels.numpy(), d.total.numpy())
            wrong = d.probs.argmax(1).numpy() != self.labels.numpy()
            m["misclassification_auroc_aleatoric"] = auroc(d.aleatoric.numpy(), wrong)
            m["mean_epistemic"] = float(d.epistemic.mean())
            m["w"], m["T"] = fitted.ngram_weight, fitted.temperature
            in_side = np.zeros(len(self.labels), bool)
            for name, (o, s) in self.dev.items():
                t = combine(o, r_of(o, s))
                is_ood = np.r_[in_side, np.ones(len(t.total), bool)]
                m[name] = auroc(np.r_[d.total.numpy(), t.total.numpy()], is_ood)
                m[name + "_epistemic"] = auroc(np.r_[d.epistemic.numpy(), t.epistemic.numpy()], is_ood)
                m[name + "_share"] = float(t.epistemic.mean() / t.total.mean())
            for name, (o, s, y) in self.other.items():  # calibration off the home ground
                t = combine(o, r_of(o, s))
                got = summarize(t.probs.numpy(), y, t.total.numpy())
                m[name + "_accuracy"] = got["accuracy"]
                m[name + "_ece"] = got["ece"]
                m[name + "_auroc"] = got["misclassification_auroc_confidence"]
            return m
        finally:
            exp.cfg.head = self.base
