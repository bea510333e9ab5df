"""The raw limit: the model's batched throughput in-process, all views included, measured as
the server runs it: on one worker thread (not the main thread: there, 2 torch threads ran
6x slower on this 2-core machine), with the server's torch thread count.
--chars N measures texts of about N characters instead of the test sentences: consecutive
test sentences joined, so a text longer than a window is read in several.
Usage: python -m bench.model_limit [--model DIR] [--batch 32] [--threads 1] [--seconds 10] [--chars N] [--json]"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from model.data import split_rows
from model.predictor import Predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--batch", type=int, default=32, help="texts per forward (the server's max batch size)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the worker (0: leave as is)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chars", type=int, default=0, help="texts of about this many characters (0: the test sentences)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    texts = [r.text for r in split_rows("test")]
    if args.chars:
        texts = joined(texts, args.chars)
    batches = [texts[i : i + args.batch] for i in range(0, len(texts) - args.batch + 1, args.batch)]
    with ThreadPoolExecutor(1) as worker:
        done, elapsed, threads = worker.submit(_measure, pred, batches, args.seconds, args.threads).result()
    out = {"texts_per_s": done / elapsed, "batch": args.batch, "n_views": pred.ckpt.cfg.views.n_views,
           "chars": args.chars or None, "windows_per_text": sum(pred.windows(texts)) / len(texts),
           "texts": done, "seconds": elapsed, "torch_threads": threads, "device": str(pred.device)}
    print(json.dumps(out) if args.json else f"{out['texts_per_s']:.0f} texts/s "
          f"(batch {args.batch}, {out['n_views']} views, {out['windows_per_text']:.1f} windows a text, "
          f"{threads} threads, {out['device']})")


def joined(sentences: list[str], chars: int) -> list[str]:
    """Consecutive sentences joined into texts of at least `chars` characters, cut to it."""
    out, current = [], ""
    for s in sentences * (1 + chars * 64 // max(1, sum(map(len, sentences)))):
        current = f"{current} {s}".strip()
        if len(current) >= chars:
            out.append(current[:chars])
            current = ""
    return out


def _measure(pred: Predictor, batches: list[list[str]], seconds: float, threads: int) -> tuple[int, float, int]:
    if threads:
        torch.set_num_threads(threads)
    for b in batches[:2]:
        pred.predict(b)  # warm-up
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        done += len(pred.predict(batches[i % len(batches)]))
        i += 1
    return done, time.perf_counter() - start, torch.get_num_threads()


if __name__ == "__main__":
    main()
