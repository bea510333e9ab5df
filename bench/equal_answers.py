"""Old code against new: every number Predictor.predict returns, on every test sentence (and
a few long and odd texts) at several batch sizes, alone and among other batch mates.
The old side is a plain copy of a model/ package imported under another name, e.g.
    git worktree add --detach /tmp/old <commit>; mkdir /tmp/model_old
    cp -r /tmp/old/model /tmp/model_old/model_old
Usage: python -m bench.equal_answers [--old /tmp/model_old] [--name model_old] [--threads 2]
    [--reasoning N]  (N texts also with evidence, whose effects are compared too)
    [--dtype bfloat16] [--split val] [--tol 1e-6]  (the new side's precision, the sentences, the bound)
Prints the largest absolute difference of each output; exits 1 if any is over the bound.
`--old` may be a copy of this very package: with `--dtype bfloat16 --split val` it measures
how far the bfloat16 blocks answer from float32 on the validation sentences."""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import torch

from model.data import split_rows
from model.predictor import Predictor

ODD = ["x", "", "Ceci n'est pas un film, c'est une catastrophe.", "def f(x):\n    return x * 2",
       "<html><body><p>hello</p></body></html>", "🎬🍿 " * 50, "a long review . " * 400]
_NUM = re.compile(r"[-+]?\d+\.\d+")


def numbers(p) -> dict[str, float]:
    out = {f"p[{k}]": v for k, v in p.probabilities.items()}
    out.update(confidence=p.confidence, total=p.uncertainty.total, aleatoric=p.uncertainty.aleatoric,
               epistemic=p.uncertainty.epistemic, cot_length=p.cot_length, label_id=p.label_id)
    if p.reasoning is not None:  # the evidence: every number in its steps, and the words named
        for j, x in enumerate(v for s in p.reasoning for v in _NUM.findall(s)):
            out[f"reasoning#{j}"] = float(x)
    return out


def compare(old: list, new: list, worst: dict[str, float], where: str, tol: float) -> None:
    assert len(old) == len(new)
    for a, b in zip(old, new, strict=True):
        if a.reasoning is not None:
            words = lambda p: [s.split("'")[1] for s in p.reasoning if s.startswith("'")]  # noqa: E731
            if words(a) != words(b):
                worst["evidence words differ"] = worst.get("evidence words differ", 0) + 1
        na, nb = numbers(a), numbers(b)
        for k in na.keys() | nb.keys():
            key = re.sub(r"#\d+", "", k)
            d = abs(na.get(k, float("nan")) - nb.get(k, float("nan")))
            d = float("inf") if d != d else d
            if d > worst.get(key, -1.0):
                worst[key] = d
                if d > tol:
                    print(f"  over {tol}: {key} {d:.3g} ({where})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--old", default="/tmp/model_old")
    ap.add_argument("--name", default="model_old")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reasoning", type=int, default=48)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="the new side's precision")
    ap.add_argument("--split", default="test", help="the sentences (test, val)")
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    sys.path.insert(0, args.old)
    old_cls = importlib.import_module(f"{args.name}.predictor").Predictor
    old, new = old_cls.load(), Predictor.load(dtype=args.dtype)
    texts = [r.text for r in split_rows(args.split)]
    longs = [" ".join(texts[i : i + n]) for i, n in ((0, 8), (100, 20), (300, 45))]
    every = texts + ODD + longs
    worst: dict[str, float] = {}

    def run() -> None:
        torch.set_num_threads(args.threads)
        for batch in (1, 7, 32, 64, 100):
            chunks = [every[i : i + batch] for i in range(0, len(every), batch)]
            if batch == 1:
                chunks = chunks[:: 4] + [[t] for t in ODD + longs]  # a quarter of them alone, for time
            for c in chunks:
                compare(old.predict(c), new.predict(c), worst, f"batch {batch}", args.tol)
            print(f"batch {batch:3d}: {sum(map(len, chunks))} texts compared", flush=True)
        # batch mates: the new code on a text alone against the old code on it among others
        mates = every[-40:] + every[:24]
        alone = [new.predict([t])[0] for t in mates]
        compare(old.predict(mates), alone, worst, "alone vs among 64", args.tol)
        some = texts[: args.reasoning] + ODD[:5]
        compare(old.predict(some, with_reasoning=True), new.predict(some, with_reasoning=True), worst, "reasoning",
                args.tol)
        print(f"reasoning: {len(some)} texts compared")

    with ThreadPoolExecutor(1) as w:
        w.submit(run).result()
    over = {k: v for k, v in worst.items() if v > args.tol}
    for k in sorted(worst):
        print(f"max |old - new| {k:20s} {worst[k]:.3g}")
    print("FAIL" if over else f"OK: every output within {args.tol}")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
