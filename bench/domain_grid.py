"""The grid that chose the default model's familiarity for text off its home ground
(docs/adr/0010-familiarity-off-home-ground.md), and tried the shape scores (0011): the
threshold quantile, the similarity's decay and the weights of the familiarity scores
(TrainSettings.shrink_quantile, decay, score_weight; rows of five weights leave the shape
scores out). Each row refits the head on a finished model's outputs (bench/head_fit.py)
and reports validation NLL, ECE and misclassification AUROC, mean epistemic, the dev OOD
sets' AUROC of total uncertainty (OANC, Italian, and the far sets' stand-ins of
bench/ood_sets.far_dev_sets: code, markup, e-mail, random strings), and ECE and
misclassification AUROC on English sentiment text of other kinds: the dev parts of the
Amazon-snippet and tweet sets (bench/other_domains.py --part dev) and the editorial
stand-in (other_domains.editorial_stand_in). Test sentences, the far sets and the
other-domain test parts are never read.

Rows that keep validation NLL and misclassification AUROC at least where the checkpoint's
own head has them, Italian and each far stand-in within FAR_MARGIN of it, and the accuracy
on each of the three sets within ACCURACY_MARGIN of it, are marked "*"; among them the
choice, printed last, is the row whose worst shortfall from the off-home targets (ECE at
most TARGET_ECE, misclassification AUROC at least TARGET_AUROC, on each of the three sets)
is smallest. The dev parts' figures with the similarity held at 1 are printed before it,
for scale. The accuracy guard came after a row of the shape scores was chosen without it:
it shrank more tweets to 50/50, whose answers then read as calibrated coin flips ranked
last (ECE 0.077 -> 0.048, misclassification AUROC 0.686 -> 0.741) while the tweets
answered right fell from 0.766 to 0.665; its far test sets, read once, failed issue 36's
guard as well. The default model keeps CHOSEN_WEIGHTS (ADR 0011).
Usage: python -m bench.domain_grid [--model DIR]"""
from __future__ import annotations

import argparse

from model.predictor import Predictor

from .head_fit import Cached, named, off_home

CHOSEN_WEIGHTS = (1.0, 0.85, 0.85, 1.0, 0.6)  # the previous default's (docs/adr/0010-familiarity-off-home-ground.md)
# the best row of a local search (not kept), which the shape rows vary one setting at a time
SEARCHED = (0.7, 0.2, 1.7, 0.9, 0.6, 1.35, 1.3)
# threshold quantile, decay, then the weights in config.SCORES order: feature distance,
# in-domain logit, unigram NLL, n-gram in-domain logit, general-English ratio, and where
# given the symbol and fragment shares
ROWS = (
    (0.97, 8.0, (1.0, 1.0, 1.0, 1.0, 1.0)),
    (0.97, 8.0, (1.0, 1.0, 1.0, 1.0, 0.5)),
    (0.97, 8.0, (1.0, 1.0, 0.85, 1.0, 1.0)),
    (0.97, 8.0, (1.0, 1.0, 0.85, 1.0, 0.6)),
    (0.97, 4.0, (1.0, 1.0, 0.85, 1.0, 0.6)),
    (0.97, 4.0, (1.0, 1.0, 0.8, 1.0, 0.6)),
    (0.97, 4.0, (1.0, 1.0, 0.8, 1.0, 0.5)),
    (0.97, 4.0, CHOSEN_WEIGHTS),
    (0.97, 4.0, (0.85, 1.0, 0.85, 0.85, 0.6)),
    # later thresholds shrink text off the home ground less; a steep decay keeps far text far
    *((quantile, decay, CHOSEN_WEIGHTS) for quantile in (0.99, 0.995) for decay in (4.0, 32.0)),
    # a gentler fall: unfamiliarity that varies from text to text shrinks the answers less unevenly
    *((0.97, decay, CHOSEN_WEIGHTS) for decay in (2.0, 1.0)),
    # the lexical scores alone (unigram NLL, n-gram in-domain logit), which tell the far
    # stand-ins from English sentiment text best (bench/learned_similarity.py), at later thresholds
    (0.97, 4.0, (0.0, 0.0, 1.0, 1.0, 1.0)),
    *((quantile, 4.0, (0.0, 0.0, 1.0, 1.0, 0.0)) for quantile in (0.99, 0.995, 0.999)),
    *((quantile, 4.0, (0.0, 0.0, 0.0, 1.0, 0.0)) for quantile in (0.97, 0.995)),
    (0.97, 4.0, (0.0, 0.0, 0.8, 1.0, 0.0)),
    (0.98, 4.0, (0.7, 0.0, 0.7, 1.0, 0.0)),
    # the shape scores (symbol and fragment shares) beside the five: they tell code, markup
    # and other languages from English of any kind, so the scores that read "not a film
    # review" can weigh less (docs/adr/0011-text-shape-scores.md)
    (0.97, 4.0, (*CHOSEN_WEIGHTS, 1.0, 1.0)),
    (0.97, 8.0, (1.0,) * 7),
    (0.97, 8.0, (0.7, 0.2, 1.5, 0.6, 0.45, 1.5, 1.0)),
    (0.97, 8.0, (0.7, 0.2, 1.7, 0.9, 0.6, 1.35, 1.15)),
    *((quantile, 8.0, SEARCHED) for quantile in (0.955, 0.96, 0.965, 0.97)),
    (0.96, 8.0, (0.9, 0.2, 1.7, 0.9, 0.6, 1.35, 1.3)),
    (0.96, 8.0, (0.7, 0.2, 1.6, 0.9, 0.6, 1.35, 1.3)),
    (0.96, 8.0, (0.7, 0.2, 1.7, 1.1, 0.6, 1.35, 1.3)),
    *((0.96, 8.0, (0.7, 0.2, 1.7, 0.9, 0.6, symbol, 1.3)) for symbol in (1.05, 1.5, 1.65)),
    *((0.96, 8.0, (0.7, 0.2, 1.7, 0.9, 0.6, 1.35, fragment)) for fragment in (1.0, 1.6)),
)
OTHER = ("amazon_snippets", "tweets", "editorial_stand_in")
FAR_DEV = ("italian_web", "python_source_dev", "html_markup_dev", "email_dev", "random_strings_dev")
# Issue 36's guard keeps the far sets' total AUROC within 0.01 of the default before it;
# the previous head spent all but this much of it on the far test sets (MODEL_CARD.md)
FAR_MARGIN = 0.002
TARGET_ECE, TARGET_AUROC = 0.08, 0.70  # issue 36's targets off the home ground
# A head may not buy those targets with answers: shrunk to 50/50, a text's answer is a coin flip
ACCURACY_MARGIN = 0.01


def kept(m: dict, now: dict) -> bool:
    """Whether a row (Cached.judge's figures) may be chosen against the checkpoint's own head
    (`now`): validation NLL and misclassification AUROC no worse, Italian and each far stand-in
    within FAR_MARGIN, and each off-home set's accuracy within ACCURACY_MARGIN."""
    return (m["nll"] <= now["nll"]
            and m["misclassification_auroc_confidence"] >= now["misclassification_auroc_confidence"]
            and all(m[n] >= now[n] - FAR_MARGIN for n in FAR_DEV)
            and all(m[n + "_accuracy"] >= now[n + "_accuracy"] - ACCURACY_MARGIN for n in OTHER))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    args = ap.parse_args()
    cached = Cached.of(Predictor.load(args.model), other_domains=True, far_dev=True, stand_in=True)
    print(f"{'q':>5} {'decay':>5} {'weights':44} {'NLL':>7} {'ECE':>6} {'mAUC':>6} {'epist':>6} {'OANC':>6} "
          + " ".join(f"{name[:7]:>7}" for name in FAR_DEV) + " "
          + " ".join(f"{name[:7] + ' acc/ECE/AUC':>22}" for name in OTHER))
    chosen = None
    now = cached.judge(cached.base)  # the checkpoint's own head: the reference

    def short(m: dict) -> float:  # the worst shortfall from the off-home targets (< 0: missed)
        return min(min(TARGET_ECE - m[n + "_ece"], m[n + "_auroc"] - TARGET_AUROC) for n in OTHER)

    for quantile, decay, weights in ROWS:
        m = cached.refit(quantile, named(weights), decay=decay)
        keep = kept(m, now)
        print(f"{quantile:5.3f} {decay:5.1f} {str(weights):44} {m['nll']:7.4f} {m['ece']:6.4f} "
              f"{m['misclassification_auroc_confidence']:6.3f} {m['mean_epistemic']:6.3f} "
              f"{m['english_mixed_oanc']:6.3f} " + " ".join(f"{m[n]:7.3f}" for n in FAR_DEV) + " "
              + off_home(m, OTHER) + (" *" if keep else ""),
              flush=True)
        if keep and (chosen is None or short(m) > chosen[0]):
            chosen = (short(m), quantile, decay, weights)
    # For scale: the answers' own margins, the similarity held at 1 (no fall past any threshold)
    m = cached.refit(0.97, named(CHOSEN_WEIGHTS), decay=0.0, gentle=0.0)
    print(f"similarity held at 1 ({', '.join(OTHER)}): {off_home(m, OTHER)}")
    if chosen is None:
        print("chosen: none")
    else:
        print(f"chosen: threshold quantile {chosen[1]}, decay {chosen[2]}, weights {named(chosen[3])} "
              f"(worst shortfall from the targets {chosen[0]:.3f})")


if __name__ == "__main__":
    main()
