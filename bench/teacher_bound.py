"""What a pre-trained encoder would buy: the fine-tuned MiniLM teacher read alone, as a bound
for the compact model. It is fine-tuned as the default recipe fine-tunes it (FinetuneSettings'
defaults, on the rated training rows' targets), its temperature fitted on the validation
sentences, and read once per text (no views, no familiarity), on validation, validation's
rated sentences against people (bench/human_agreement.py's measure) and the other-domain
sets' dev parts (bench/other_domains.py). No test row is read. Needs `pip install -e
'.[train]'`; the fine-tuning takes about half an hour on 2 cores, and its logits are cached
(finetune.soft_labels), so a second run takes seconds. With --layers N, MiniLM's first N
layers alone are fine-tuned and read: a cheaper encoder's bound (bench/encoder_cost.py).
Usage: python -m bench.teacher_bound [--layers N] [--json]"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import spearmanr

from model.data import cache_dir, fetch, read_rows
from model.finetune import soft_labels
from model.metrics import summarize
from model.settings import FinetuneSettings
from model.snippets import rated

from .human_agreement import entropy, weakness
from .other_domains import SETS, label_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layers", type=int, default=0, help="MiniLM's first N layers only (0: all six)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (cache_dir() / "train_rated.csv").exists():
        fetch()
    train, val = read_rows(cache_dir() / "train_rated.csv"), read_rows(cache_dir() / "val.csv")
    labels = sorted({r.label for r in train})
    pairs = rated("val")
    parts = {name: part for name, read in SETS.items() if (part := read("dev")) is not None}  # editorials: none
    texts = [r.text for r in val] + [r.text for r, _ in pairs] + [t for part in parts.values() for t in part[0]]
    y_val = np.array([labels.index(r.label) for r in val])
    probs = soft_labels([r.text for r in train], np.array([r.target(labels) for r in train]), texts,
                        [r.text for r in val], y_val.tolist(), cache_dir(), FinetuneSettings(layers=args.layers))
    p_val = probs[: len(val)]
    out: dict = {"validation": summarize(p_val, y_val, entropy(p_val))}
    p_rated = probs[len(val) : len(val) + len(pairs)]
    out["validation_spearman_entropy"] = float(spearmanr(entropy(p_rated), weakness([s for _, s in pairs])).statistic)
    start = len(val) + len(pairs)
    for name, (set_texts, positive) in parts.items():
        p = probs[start : start + len(set_texts)]
        start += len(set_texts)
        out[name] = summarize(p, label_ids(labels, positive), entropy(p))
    if args.json:
        print(json.dumps(out, default=float))
        return
    for name, m in out.items():
        print(f"{name}: {m:.3f}" if isinstance(m, float) else
              f"{name}: accuracy {m['accuracy']:.4f}, NLL {m['nll']:.3f}, ECE {m['ece']:.3f}, "
              f"misclassification AUROC {m['misclassification_auroc_confidence']:.3f}")


if __name__ == "__main__":
    main()
