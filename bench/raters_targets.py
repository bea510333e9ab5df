"""A quick proxy for choosing how people's ratings become training targets (docs/adr/0009):
a tf-idf logistic regression (word uni- and bigrams) fitted on the default model's 9,420
training rows (model/snippets.py, rated_training_rows) with each kind of target, its
temperature fitted on the 400 validation sentences; reports validation accuracy, NLL and the
Spearman correlation of its entropy with -|mean rating| (bench/human_agreement.py's measure).
Validation rows only. Usage: python -m bench.raters_targets"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from model.calibrate import temperature_of_logits
from model.snippets import key, rated, rated_training_rows, snippets

from .human_agreement import weakness


def positive_targets(kind: str, rows, by_key) -> np.ndarray:
    """Each row's probability of "positive" under one kind of target."""
    out = []
    for r in rows:
        s = by_key.get(key(r.text))
        label = 1.0 if r.label == "positive" else 0.0
        if kind == "label" or s is None:
            out.append(label)
        elif kind == "split":
            out.append(s.positive_share)
        elif kind.startswith("raters"):  # each rating read as a probability, sigmoid(K * rating), averaged
            k = float(kind.split()[1])
            out.append(float(np.mean(1.0 / (1.0 + np.exp(-k * np.array(s.ratings))))))
        elif kind == "half":
            out.append(0.5 * label + 0.5 * s.positive_share)
        else:  # "sigmoid K": of the mean rating, slope K
            out.append(1.0 / (1.0 + np.exp(-float(kind.split()[1]) * s.mean)))
    return np.array(out)


def main() -> None:
    rows = rated_training_rows()
    by_key = {key(s.text): s for s in snippets() if s.split in ("train", "extra")}
    val = rated("val")
    y_val = np.array([r.label == "positive" for r, _ in val], dtype=int)
    target = weakness([s for _, s in val])
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([r.text for r in rows])
    x, x_val = tfidf.transform([r.text for r in rows]), tfidf.transform([r.text for r, _ in val])
    print("| target | C | validation accuracy | NLL | Spearman(entropy, -|mean|) |\n|---|---|---|---|---|")
    for kind in ("label", "half", "split", "sigmoid 1", "sigmoid 2", "raters 0.5", "raters 1", "raters 2"):
        p = positive_targets(kind, rows, by_key)
        for c in (16.0,):
            # soft targets as weighted copies: each row once per class, weighted by its probability
            lr = LogisticRegression(C=c, max_iter=3000).fit(
                sp.vstack([x, x]), np.r_[np.ones(len(p)), np.zeros(len(p))], sample_weight=np.r_[p, 1 - p])
            d = lr.decision_function(x_val)
            logits = np.stack([-d / 2, d / 2], 1)
            probs = softmax(logits / temperature_of_logits(logits, y_val), 1)
            nll = float(-np.log(probs[np.arange(len(y_val)), y_val]).mean())
            entropy = -(probs * np.log(probs)).sum(1)
            print(f"| {kind} | {c:g} | {(probs.argmax(1) == y_val).mean():.3f} | {nll:.3f} | "
                  f"{spearmanr(entropy, target).statistic:.3f} |")


if __name__ == "__main__":
    main()
