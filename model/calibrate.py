"""Fitting the uncertainty head after training: the densities on in-domain training text,
the in-domain head on training against background text, the familiarity scales and the
temperature on the validation split. No OOD set is used here: every threshold comes from
in-distribution quantiles."""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import OFF_SPREAD, SCORES, HeadConfig
from .expectation import Expectation, ViewOutputs
from .uncertainty import FeatureDensity, decompose, length_bucket, similarity, view_probabilities, worst_z

REF_QUANTILE = 0.95  # z = 1 at this validation quantile of each unfamiliarity score
MIN_SPREAD = 1e-6


def fit_density(feats: torch.Tensor, labels: torch.Tensor, n_labels: int) -> FeatureDensity:
    """feats (N, K, D): every view's features of the in-domain texts, labels (N,)."""
    N, K, D = feats.shape
    return FeatureDensity.fit(feats.reshape(N * K, D), labels.repeat_interleave(K), n_labels)


def fit_domain(exp: Expectation, in_feats: torch.Tensor, background: list[list[int]], seeds_bg: list[int],
               c: float = 1.0) -> None:
    """Refits the encoder's in-domain head on its final features: a logistic regression of
    every view of in-domain text (in_feats, (N, K, D)) against background text. On the
    default model's features the head trained along with them told news and mixed-genre English from the test
    sentences at AUROC 0.83 and 0.73; refitted, at 0.90 and 0.83 (bench/ood_bound.py)."""
    from .logistic import logistic

    bg_feats = exp.raw(background, seeds_bg).feats  # (N, K, D); background: word pieces of each text
    x_in, x_bg = (f.reshape(-1, f.shape[-1]).numpy() for f in (in_feats, bg_feats))
    lr = logistic(c, class_weight="balanced").fit(
        np.concatenate([x_in, x_bg]), np.r_[np.ones(len(x_in)), np.zeros(len(x_bg))])
    head = exp.encoder.domain
    with torch.no_grad():
        # float16-exact, like every stored weight, so a reloaded checkpoint scores the same
        head.weight.copy_(torch.from_numpy(lr.coef_).to(torch.float16).to(head.weight.dtype))
        head.bias.copy_(torch.from_numpy(lr.intercept_).to(torch.float16).to(head.bias.dtype))


def fit_scales(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig, min_texts: int = 50,
               off: tuple[str, ...] = (), shrink_quantile: float = REF_QUANTILE,
               weights: dict[str, float] | None = None, gentle_quantile: float = 0.5) -> None:
    """scores (N, K, S) on validation text, pieces (N,) -> per length bucket and score the
    median and (q95 - median), then per bucket the threshold of the similarity: the
    `shrink_quantile` of the worst weighted scaled score, so that the similarity falls below
    1 for that share of in-domain views. A bucket with fewer than min_texts texts takes the
    scales of all texts. Scores named in `off` are switched off (an infinite spread);
    `weights` (by score name, default all 1) become head.score_weight. The gentle fall's
    thresholds are the same score's `gentle_quantile` per bucket."""
    def scales(part: torch.Tensor, wide: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """wide: the spreads to take where this part's is none (its q95 is its median: most
        short texts hold no symbol piece at all), so that one such piece does not read as
        endlessly unfamiliar."""
        flat = part.reshape(-1, part.shape[-1]).double()
        med = torch.quantile(flat, 0.5, dim=0)
        ref = torch.quantile(flat, REF_QUANTILE, dim=0)
        def spread(j: int, name: str) -> float:
            own = float(ref[j] - med[j])
            return own if own > MIN_SPREAD or wide is None else wide[name]

        return ({name: float(med[j]) for j, name in enumerate(SCORES)},
                {name: OFF_SPREAD if name in off else max(spread(j, name), MIN_SPREAD)
                 for j, name in enumerate(SCORES)})

    pooled = scales(scores)
    b = length_bucket(pieces, head)
    thick = [int((b == i).sum()) >= min_texts for i in range(len(head.length_edges) + 1)]
    fitted = [scales(scores[b == i], pooled[1]) if ok else pooled for i, ok in enumerate(thick)]
    head.score_median = [m for m, _ in fitted]
    head.score_spread = [s for _, s in fitted]
    head.score_weight = {name: float((weights or {}).get(name, 1.0)) for name in SCORES}
    worst = worst_z(scores, pieces, head)  # (N, K), on the scales just fitted
    def per_bucket(q: float) -> list[float]:
        pooled_q = float(torch.quantile(worst.reshape(-1), q))
        return [float(torch.quantile(worst[b == i].reshape(-1), q)) if ok else pooled_q for i, ok in enumerate(thick)]

    head.score_threshold = per_bucket(shrink_quantile)
    head.gentle_threshold = per_bucket(gentle_quantile)


def fit_similarity(scale_scores: torch.Tensor, scale_pieces: torch.Tensor, val: ViewOutputs,
                   val_scores: torch.Tensor, labels: torch.Tensor, head: HeadConfig, width: int,
                   off: tuple[str, ...], shrink_quantile: float, weights: dict[str, float],
                   gentle_quantile: float = 0.5) -> torch.Tensor:
    """The head's familiarity and calibration, in training's order: the scales and threshold
    on the scale texts' scores (N, K, S), then w and the temperature on validation.
    -> (N_val, K) the validation views' similarity."""
    fit_scales(scale_scores, scale_pieces, head, off=off, shrink_quantile=shrink_quantile, weights=weights,
               gentle_quantile=gentle_quantile)
    r = similarity(val_scores, val.pieces, head)
    fit_ngram_weight(val, r, labels, head, width)
    return r


NGRAM_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # the grid of the n-gram logits' weights


def fit_ngram_weight(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig, width: int,
                     grid: tuple[float, ...] = NGRAM_WEIGHTS) -> None:
    """Chooses the weight of the n-gram logits and the temperature together, by the
    lowest validation NLL."""
    best = None
    for w in grid:
        head.ngram_weight = w
        fit_temperature(out, r, labels, head, width)
        nll = _nll(out, r, labels, head, width)
        if best is None or nll < best[0]:
            best = (nll, w, head.temperature)
    if best is None:
        raise ValueError("fit_ngram_weight: an empty grid")
    _, head.ngram_weight, head.temperature = best


def fit_window_gain(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig, width: int,
                    long_weights: tuple[float, ...] = ()) -> float:
    """The window gain by the lowest NLL of long labelled texts (the development reviews),
    the temperature kept: 0 keeps the mean of the windows' logits, 1 sums them; with
    `long_weights`, the n-gram logits' weight on long texts (head.long_ngram_weight) is
    chosen from them together with the gain. -> that NLL."""
    from scipy.optimize import minimize_scalar

    def nll(gain: float) -> float:
        head.window_gain = float(gain)
        return _nll(out, r, labels, head, width)

    best = None
    for w in long_weights or (head.long_ngram_weight,):
        head.long_ngram_weight = w
        gain = float(minimize_scalar(nll, bounds=(0.0, 1.5), method="bounded", options={"xatol": 1e-4}).x)
        score = nll(gain)
        if best is None or score < best[0]:
            best = (score, w, gain)
    assert best is not None
    score, head.long_ngram_weight, head.window_gain = best
    return score


def _nll(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig, width: int) -> float:
    logits = out.view_logits(head, width)
    probs = decompose(view_probabilities(logits, r, out.z, head)).probs
    return float(-torch.log(probs[torch.arange(len(labels)), labels].clamp_min(1e-12)).mean())


def temperature_of_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of labels under softmax(logits / T), for plain
    (N, C) logits such as the teacher's; fit_temperature does the same for the model's views."""
    from scipy.optimize import minimize_scalar
    from scipy.special import softmax

    def nll(log_t: float) -> float:
        p = softmax(logits / math.exp(log_t), axis=1)
        return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None)).mean())

    return float(math.exp(minimize_scalar(nll, bounds=(math.log(0.05), math.log(50.0)), method="bounded").x))


def fit_temperature(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig, width: int) -> None:
    """Minimises validation NLL over the temperature: a coarse log grid, then a finer one."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    for _ in range(2):
        scores = []
        for t in grid:
            head.temperature = float(t)
            scores.append(_nll(out, r, labels, head, width))
        best = grid[int(np.argmin(scores))]
        grid = best * np.exp(np.linspace(-0.15, 0.15, 31))
    head.temperature = float(best)
