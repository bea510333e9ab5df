"""`bet train` with every default on labelled tasks that are not film reviews
(bench/task_sets.py), as a new user would run it, against a tf-idf + logistic-regression
baseline on the same split. For each task: accuracy and ECE of both on the test rows; the
epistemic AUROC between the test rows and far text (other languages, code, markup, spam,
random strings, text of another kind in the task's language: bench/ood_sets.py, less the
sets the task is made of) and the epistemic share there; mean epistemic on the test rows; the training run's
wall time and peak memory. Test rows are read after training, once.

Usage: python -m bench.own_data [--tasks hedges tweets spam dutch] [--work DIR] [--cache DIR] [--json FILE]
--cache: the BET_CACHE_DIR of the training runs (an empty one measures a first run)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.data import Row, write_rows
from model.metrics import auroc, ece

from .ood_sets import all_sets, dutch_news
from .task_sets import TASKS, split

# The far sets: the split is mostly epistemic there (targets: AUROC and share)
FAR = ("french_reviews", "german_reviews", "python_source", "html_markup", "spam_email_html", "random_strings")
# Of another kind in the task's language: near, AUROC only
NEAR = ("english_news_wsj", "english_mixed_oanc")
SOURCE_OF = {"hedges": "english_biomedical", "spam": "spam_email_html", "dutch": "dutch_reviews"}


def far_and_near(task: str) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """The sets a task's test rows are told from, less its own corpus, and which are near.
    For the task in Dutch, English is another language, and Dutch news the near set."""
    sets = {name: texts for name, texts in all_sets().items() if name in FAR + NEAR and name != SOURCE_OF.get(task)}
    if task == "dutch":
        return {**sets, "dutch_news": dutch_news()}, ("dutch_news",)
    return sets, NEAR


C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def tfidf_model(train: list[Row], val: list[Row]) -> tuple[Callable[[list[str]], np.ndarray], float]:
    """tf-idf of word uni- and bigrams + logistic regression, C chosen by validation NLL ->
    (texts -> probabilities over the sorted labels, C)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    labels = sorted({r.label for r in train})
    y_train, y_val = (np.array([labels.index(r.label) for r in rows]) for rows in (train, val))
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit([r.text for r in train])
    x_train, x_val = (tfidf.transform([r.text for r in rows]) for rows in (train, val))
    best = None
    for c in C_GRID:
        lr = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        p = lr.predict_proba(x_val)
        nll = float(-np.log(np.clip(p[np.arange(len(p)), y_val], 1e-12, None)).mean())
        if best is None or nll < best[0]:
            best = (nll, c, lr)
    assert best is not None
    _, c, lr = best
    return (lambda texts: lr.predict_proba(tfidf.transform(texts))), c


def baseline(train: list[Row], val: list[Row], test: list[Row]) -> dict:
    """The tf-idf regression's accuracy and ECE on the test rows."""
    predict, c = tfidf_model(train, val)
    labels = sorted({r.label for r in train})
    return {"C": c, **_quality(predict([r.text for r in test]), np.array([labels.index(r.label) for r in test]))}


def _quality(probs: np.ndarray, y: np.ndarray) -> dict:
    correct = probs.argmax(1) == y
    return {"accuracy": float(correct.mean()), "ece": ece(probs.max(1), correct.astype(float))}


def train_defaults(work: Path, cache: Path | None) -> dict:
    """`bet train --data train.csv --val val.csv --out model`, nothing else: wall time and
    peak resident memory of the run (its largest process)."""
    env = dict(os.environ)
    if cache:
        env["BET_CACHE_DIR"] = str(cache)
    cmd = [str(Path(sys.executable).with_name("bet")), "train", "--data", str(work / "train.csv"),
           "--val", str(work / "val.csv"), "--out", str(work / "model")]
    start = time.monotonic()
    with open(work / "train.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"bet train exited {proc.returncode}: see {work / 'train.log'}")
    return {"minutes": (time.monotonic() - start) / 60, "peak_memory_gb": usage.ru_maxrss / 2**20}


def judge(model: Path, test: list[Row], far: dict[str, list[str]]) -> dict:
    from model.evaluate import predict_all
    from model.predictor import Predictor

    pred = Predictor.load(model)
    y = np.array([pred.labels.index(r.label) for r in test])
    probs, unc = predict_all(pred, [r.text for r in test], "test rows")
    out = {**_quality(probs, y), "mean_epistemic": float(unc[2].mean()), "far": {}}
    for name, texts in far.items():
        _, u = predict_all(pred, texts, name)
        ood = np.r_[np.zeros(unc.shape[1], bool), np.ones(u.shape[1], bool)]
        out["far"][name] = {"auroc_epistemic": auroc(np.r_[unc[2], u[2]], ood),
                            "auroc_total": auroc(np.r_[unc[0], u[0]], ood),
                            "epistemic_share": float(u[2].mean() / max(u[0].mean(), 1e-12))}
    return out


def run(task: str, work: Path, cache: Path | None) -> dict:
    rows = TASKS[task]()
    train, val, test = split(rows)
    work.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        write_rows(work / f"{name}.csv", part)
    result = {"task": task, "n": [len(train), len(val), len(test)], "labels": sorted({r.label for r in rows}),
              "baseline": baseline(train, val, test), "train": train_defaults(work, cache)}
    far, near = far_and_near(task)
    result["bet"] = judge(work / "model", test, far)
    result["near"] = list(near)
    return result


def table(results: list[dict]) -> str:
    lines = ["| task | n train/val/test | labels | accuracy (baseline) | ECE (baseline) | mean epistemic | "
             "epistemic AUROC: far sets | of another kind | far share | minutes | peak GB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        b, far = r["bet"], r["bet"]["far"]
        aur = ", ".join(f"{k} {v['auroc_epistemic']:.3f}" for k, v in far.items() if k not in r["near"])
        near = ", ".join(f"{k} {v['auroc_epistemic']:.3f}" for k, v in far.items() if k in r["near"])
        share = min(v["epistemic_share"] for k, v in far.items() if k not in r["near"])
        lines.append(f"| {r['task']} | {'/'.join(map(str, r['n']))} | {len(r['labels'])} | {b['accuracy']:.3f} "
                     f"({r['baseline']['accuracy']:.3f}) | {b['ece']:.3f} ({r['baseline']['ece']:.3f}) | "
                     f"{b['mean_epistemic']:.4f} | {aur} | {near} | ≥ {share:.2f} | {r['train']['minutes']:.1f} | "
                     f"{r['train']['peak_memory_gb']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--work", type=Path, default=Path(".cache/own_data"), help="data, models and logs")
    ap.add_argument("--cache", type=Path, help="BET_CACHE_DIR of the training runs")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = []
    for task in args.tasks:
        results.append(run(task, args.work / task, args.cache))
        print(json.dumps(results[-1], indent=2), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
