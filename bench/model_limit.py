"""The raw limit: the model's batched throughput in-process, all views included, measured as
the server runs it: on one worker thread (not the main thread: there, 2 torch threads ran
6x slower on this 2-core machine), with the server's torch thread count.
--chars N measures texts of about N characters instead of the test sentences: consecutive
test sentences joined, so a text longer than a window is read in several.
--dtype bfloat16 runs the transformer blocks in bfloat16 (BET_COMPUTE_DTYPE).
Usage: python -m bench.model_limit [--model DIR] [--batch 32] [--threads 1] [--seconds 10] [--chars N]
       [--dtype float32|bfloat16] [--json]"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor

import torch

from model.data import split_rows
from model.predictor import Predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--batch", type=int, default=32, help="texts per forward (the server's max batch size)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the worker (0: leave as is)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per precision, over all rounds")
    ap.add_argument("--chars", type=int, default=0, help="texts of about this many characters (0: the test sentences)")
    ap.add_argument("--dtype", nargs="+", choices=("float32", "bfloat16"), default=["float32"],
                    help="the blocks' precision; several are measured interleaved, round by round")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (each precision seconds/rounds a round)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    preds = {d: Predictor.load(args.model, dtype=d) for d in args.dtype}
    texts = [r.text for r in split_rows("test")]
    if args.chars:
        texts = joined(texts, args.chars)
    batches = [texts[i : i + args.batch] for i in range(0, len(texts) - args.batch + 1, args.batch)]
    rates: dict[str, list[float]] = {d: [] for d in args.dtype}
    with ThreadPoolExecutor(1) as worker:
        for _ in range(args.rounds):
            for d, pred in preds.items():
                done, elapsed, threads = worker.submit(measure, pred.predict, batches, args.seconds / args.rounds,
                                                       args.threads).result()
                rates[d].append(done / elapsed)
    first = next(iter(preds.values()))
    for d, r in rates.items():
        out = {"texts_per_s": sum(r) / len(r), "rounds": r, "batch": args.batch,
               "n_views": first.ckpt.cfg.views.n_views, "chars": args.chars or None, "dtype": d,
               "windows_per_text": sum(first.windows(texts)) / len(texts), "torch_threads": threads,
               "device": str(first.device)}
        print(json.dumps(out) if args.json else f"{out['texts_per_s']:.0f} texts/s (batch {args.batch}, {d}, "
              f"{out['n_views']} views, {out['windows_per_text']:.1f} windows a text, {threads} threads, "
              f"{out['device']}; rounds {', '.join(f'{x:.0f}' for x in r)})")
    if len(rates) > 1 and not args.json:
        base, *others = args.dtype
        for d in others:
            each = [a / b for a, b in zip(rates[d], rates[base], strict=True)]
            print(f"{d} / {base}: {sum(rates[d]) / sum(rates[base]):.2f} "
                  f"(rounds {', '.join(f'{x:.2f}' for x in each)})")


def joined(sentences: list[str], chars: int) -> list[str]:
    """Consecutive sentences joined into texts of at least `chars` characters, cut to it."""
    out, current = [], ""
    for s in sentences * (1 + chars * 64 // max(1, sum(map(len, sentences)))):
        current = f"{current} {s}".strip()
        if len(current) >= chars:
            out.append(current[:chars])
            current = ""
    return out


def measure(predict: Callable[[list[str]], Sized], batches: list[list[str]], seconds: float,
            threads: int) -> tuple[int, float, int]:
    """Calls predict on the batches in turn for `seconds` (after two to warm up), on the
    calling thread -> (texts done, seconds taken, torch threads)."""
    if threads:
        torch.set_num_threads(threads)
    for b in batches[:2]:
        predict(b)
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        done += len(predict(batches[i % len(batches)]))
        i += 1
    return done, time.perf_counter() - start, torch.get_num_threads()


if __name__ == "__main__":
    main()
