"""Is a sentiment model honest off its home ground? English sentiment text of other kinds,
rated by about 20 people each (Hutto & Gilbert 2014, vaderSentiment sdist): Amazon
product-review snippets, tweets and New York Times editorial snippets. A text whose mean
rating is plainly positive or negative (|mean| above bench/task_sets.py's neutral band) is
labelled by its sign; the rest are left out, as people do not agree on a polarity there.
Per set: accuracy, mean confidence, ECE, misclassification AUROC (of 1 - confidence and of
total uncertainty), mean epistemic and its share of the total.

The Amazon and tweet sets are split as bench/task_sets.py splits them for `bet train` on
a user's own data: `--part test` (the default) reads their 20% test part, `--part dev`
their training and validation parts, which are for choosing (bench/domain_grid.py), and
`--part all` both. The editorial set is the held-out quarter of the editorials
(model/background.py, HELD_OUT_EVERY), which no model trained since they were held out has
read (models trained before read every editorial as background text); it has no dev part,
as the other editorials are training's background text.

The model must have the labels `negative` and `positive`.
Usage: python -m bench.other_domains [--model DIR] [--part test|dev|all] [--json FILE]"""
from __future__ import annotations

import argparse
import json

import numpy as np

from model.background import HELD_OUT_EVERY, rated_editorials
from model.evaluate import predict_all
from model.metrics import summarize
from model.predictor import Predictor

from .task_sets import amazon, polarity, split, tweets

PARTS = ("test", "dev", "all")


def _polar(pairs: list[tuple[str, str]]) -> tuple[list[str], np.ndarray]:
    """(text, polarity) pairs -> the texts whose polarity people agree on (not `neutral`), and
    1 where positive."""
    pairs = [(text, label) for text, label in pairs if label != "neutral"]
    return [text for text, _ in pairs], np.array([label == "positive" for _, label in pairs])


def _task_part(task, part: str) -> tuple[list[str], np.ndarray]:
    """A three-label task's rows in `part`, as _polar gives them."""
    train, val, test = split(task())
    rows = {"test": test, "dev": train + val, "all": train + val + test}[part]
    return _polar([(r.text, r.label) for r in rows])


def _held_out_editorials(part: str) -> tuple[list[str], np.ndarray] | None:
    if part == "dev":
        return None
    return _polar([(r.text, polarity(r.mean)) for r in rated_editorials() if r.held_out])


def stand_in_editorials() -> set[str]:
    """The sentences of the editorials numbered 1 mod HELD_OUT_EVERY: opinion writing to
    choose on, for a model whose background text leaves them out (bench/encoder_familiarity.py).
    The default model reads them as background text, so they are no stand-in there."""
    return {r.text for r in rated_editorials() if r.editorial % HELD_OUT_EVERY == 1}


def editorial_stand_in() -> tuple[list[str], np.ndarray]:
    """The stand-in editorials' polar sentences, as _polar gives them."""
    unseen = stand_in_editorials()
    return _polar([(r.text, polarity(r.mean)) for r in rated_editorials() if r.text in unseen])


SETS = {"amazon_snippets": lambda part: _task_part(amazon, part), "tweets": lambda part: _task_part(tweets, part),
        "nyt_editorials_held_out": _held_out_editorials}


def label_ids(labels: list[str], positive: np.ndarray) -> np.ndarray:
    """1 where positive -> the model's label index of each text's polarity."""
    return np.where(positive, labels.index("positive"), labels.index("negative"))


def judge(pred: Predictor, texts: list[str], positive: np.ndarray) -> dict:
    """`bet eval`'s measures (model.metrics.summarize) plus mean confidence and epistemic."""
    probs, unc = predict_all(pred, texts, "predict")
    y = label_ids(pred.labels, positive)
    return {**summarize(probs, y, unc[0]), "mean_confidence": float(probs.max(1).mean()),
            "mean_epistemic": float(unc[2].mean()), "epistemic_share": float(unc[2].mean() / max(unc[0].mean(), 1e-12))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--part", choices=PARTS, default="test",
                    help="the Amazon and tweet sets' part: test (20%%), dev (for choosing) or all")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    missing = {"negative", "positive"} - set(pred.labels)
    if missing:
        raise SystemExit(f"the model has no label {', '.join(sorted(missing))}: it is not a polarity model")
    results = {name: judge(pred, *rows) for name, read in SETS.items() if (rows := read(args.part)) is not None}
    print("| set | n | accuracy | mean confidence | ECE | misclassification AUROC (conf / total) | "
          "mean epistemic | share |\n|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        aurocs = " / ".join("—" if v is None else f"{v:.3f}" for v in
                            (r["misclassification_auroc_confidence"], r["misclassification_auroc_total_uncertainty"]))
        print(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['mean_confidence']:.3f} | {r['ece']:.3f} | {aurocs} | "
              f"{r['mean_epistemic']:.3f} | {r['epistemic_share']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
