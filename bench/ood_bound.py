"""How far the familiarity scores could carry the OOD AUROC: per OOD set, each scaled score's
own AUROC against the test sentences, and a logistic regression on the five fitted on that
set itself against validation text and its fragments. That fit sees the OOD set, so it is
a ceiling for any mix of these scores, not a method. Only texts past the in-domain 95th
percentile are pushed toward "no idea": "if mixed" is the AUROC of total uncertainty if
every text (test or OOD) past the mix's 95th percentile answered uniform (total ln 2) and
every other kept the network's answer (similarity 1).
Usage: python -m bench.ood_bound [--model DIR]"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from model.config import SCORES
from model.data import cache_dir, fetch, read_rows
from model.metrics import auroc
from model.predictor import Predictor
from model.train import scale_texts
from model.uncertainty import scaled
from model.views import text_seed

from .ood_sets import all_sets


def scaled_scores(pred: Predictor, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> (N, S) each text's first view's scores on the head's per-length-bucket scales, and
    (N,) its total uncertainty with every view's similarity 1."""
    exp = pred.expectation
    bodies = pred.ckpt.tokenizer.bodies(texts)
    out = exp.raw(bodies, [text_seed(t) for t in texts])
    z = scaled(exp.scores(out, bodies), out.pieces, exp.cfg.head)[:, 0, :]
    total = exp.combine(out, torch.ones(out.domain.shape, dtype=out.domain.dtype)).total
    return z.numpy(), total.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    if not (cache_dir() / "test.csv").exists():
        fetch()
    val = [r.text for r in read_rows(cache_dir() / "val.csv")]
    seed = int(pred.ckpt.metadata.get("training", {}).get("seed", 0))
    # the sentences and fragments the head's scales were fitted on (train.scaling_texts less its long texts)
    in_domain, _ = scaled_scores(pred, scale_texts(val, seed))
    test, test_total = scaled_scores(pred, [r.text for r in read_rows(cache_dir() / "test.csv")])
    print(f"{'set':20} " + " ".join(f"{n[:8]:>8}" for n in SCORES) + f" {'mix':>6} {'past q95':>8} {'if mixed':>8}")
    for name, texts in all_sets().items():
        ood, ood_total = scaled_scores(pred, texts)
        is_ood = np.r_[np.zeros(len(test)), np.ones(len(ood))]
        single = [auroc(np.r_[test[:, j], ood[:, j]], is_ood) for j in range(len(SCORES))]
        mix = LogisticRegression(max_iter=2000).fit(np.r_[in_domain, ood],
                                                    np.r_[np.zeros(len(in_domain)), np.ones(len(ood))])
        q95 = np.quantile(mix.decision_function(in_domain), 0.95)
        score = mix.decision_function(np.r_[test, ood])
        total = np.where(score > q95, np.log(2.0), np.r_[test_total, ood_total])
        print(f"{name:20} " + " ".join(f"{a:8.3f}" for a in single)
              + f" {auroc(score, is_ood):6.3f} {float(np.mean(score[len(test):] > q95)):8.2f}"
              f" {auroc(total, is_ood):8.3f}")


if __name__ == "__main__":
    main()
