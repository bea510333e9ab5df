"""Training: a resumable loop with view augmentation and optional distillation from
all-MiniLM-L6-v2, then the uncertainty head is fitted and a production checkpoint written."""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import calibrate, checkpoint, finetune, progress
from .batches import by_length
from .config import SHAPE_SCORES, HeadConfig, ModelConfig, NetworkConfig
from .data import Row
from .expectation import Expectation
from .metrics import summarize
from .network import Encoder
from .ngrams import NgramFeatures, NgramHead
from .progress import Clock
from .settings import MIN_LONG_TEXTS, TrainSettings
from .tokenizer import TextTokenizer
from .uncertainty import PieceShape, UnigramDensity
from .views import text_seed, training_positions
from .windows import window_pieces


@dataclass
class Example:
    ids: list[int]
    label: int  # -1 for unlabelled and background text
    soft: np.ndarray | None  # teacher class probabilities
    emb: np.ndarray | None  # teacher sentence embedding
    in_domain: bool = True  # False for background text (outlier exposure)
    # [CLS] every piece [SEP] of a labelled text longer than one window, which the n-gram
    # head reads whole, as at inference (ids holds its first window, which the encoder reads)
    whole: list[int] | None = None
    # class probabilities the example is trained toward: a labelled row's (Row.target: its
    # raters' split where it has one, else one-hot), or a background text's raters' split
    # (`background_targets`); None for unlabelled text and for background text without
    # one, which outlier exposure pulls toward uniform
    target: np.ndarray | None = None

    @property
    def read_whole(self) -> list[int]:
        return self.whole or self.ids

    def aim(self, n_labels: int) -> np.ndarray:
        """The class probabilities it is trained toward: its target; else its label, one-hot;
        else (unlabelled or background text) uniform."""
        if self.target is not None:
            return self.target
        if self.label >= 0:
            return np.eye(n_labels)[self.label]
        return np.full(n_labels, 1.0 / n_labels)


def build_tokenizer(texts: list[str], max_len: int, vocab_size: int = 8000) -> TextTokenizer:
    """A WordPiece tokenizer trained on the data, when the MiniLM one is not installed.

    The library's WordPiece trainer numbers its "##" pieces in hash-map order, so the same
    data can give another vocabulary in another process (huggingface/tokenizers#1794).
    Without the marker it trains deterministically: the pieces are learned that way, and
    each enters the vocabulary twice, as a word start and, marked, as a continuation."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]

    def text_handling(tok: Tokenizer) -> Tokenizer:
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return tok

    plain = text_handling(Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="")))
    plain.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=(vocab_size + len(specials)) // 2, special_tokens=specials, continuing_subword_prefix=""))
    learned = [t for t, _ in sorted(plain.get_vocab().items(), key=lambda kv: kv[1]) if t not in specials]
    vocab = {t: i for i, t in enumerate(specials + [p for t in learned for p in (t, "##" + t)])}
    tok = text_handling(Tokenizer(models.WordPiece(vocab, unk_token="[UNK]")))
    tok.decoder = decoders.WordPiece()
    return TextTokenizer(tok, max_len)


def crops(texts: list[str], n: int, seed: int, max_words: int = 8) -> list[str]:
    """n short fragments (1 to max_words words) cut from random texts: short inputs are
    common in use but rare among training sentences, and must not look unfamiliar."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choice(texts).split()
        k = rng.randint(1, min(max_words, len(words)))
        start = rng.randint(0, len(words) - k)
        out.append(" ".join(words[start : start + k]))
    return out


def scale_texts(val_texts: list[str], seed: int) -> list[str]:
    """The validation sentences and three times as many fragments of them."""
    return val_texts + crops(val_texts, 3 * len(val_texts), seed + 2)


def scaling_texts(s: TrainSettings, val_texts: list[str], long_rows: list[Row]) -> list[str]:
    """The texts the familiarity scales are fitted on: scale_texts, and the long texts the
    window gain is fitted on (`long_text_rows`), so that a text of several windows is judged
    against texts of several windows (HeadConfig.length_edges); with long texts
    "validation", the validation rows are in already."""
    return scale_texts(val_texts, s.seed) + ([x.text for x in long_rows] if s.long_texts != "validation" else [])


def _teacher_available() -> bool:
    try:
        from . import teacher
        teacher.model_dir()
        return True
    except RuntimeError:
        return False


def train(train_rows: list[Row], val_rows: list[Row], out: str | Path, settings: TrainSettings,
          unlabelled: list[str] | None = None, background: list[str] | None = None,
          state_dir: str | Path | None = None, cache: Path | None = None,
          general_counts: dict[str, float] | None = None, long_rows: list[Row] | None = None,
          clock: Clock | None = None, background_targets: dict[str, list[float]] | None = None,
          network_from: str | Path | None = None) -> Path:
    """unlabelled: in-domain text for distillation; background: other text, which the
    in-domain head learns to tell apart (outlier exposure); general_counts: word counts of
    general English, for the familiarity score of English that is not in-domain; long_rows:
    labelled texts longer than a window (the development reviews), on which the window
    gain is fitted; background_targets: class probabilities (in sorted label order) of
    background texts that people rated on the task, trained toward instead of uniform. All
    optional. clock: the run's stages so far (`bet train` reads the
    background text first); training adds its own and reports the time left as each starts.
    network_from: a finished checkpoint whose network is taken as trained (same settings and
    data): no epoch runs, and only what is fitted after training is fitted again."""
    out = Path(out)
    state_dir = Path(state_dir) if state_dir else out / "train_state"
    cache = cache or Path(".cache/bet")
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    np.random.seed(settings.seed)

    labels = sorted({r.label for r in train_rows})
    lab_id = {name: i for i, name in enumerate(labels)}
    val_rows = [r for r in val_rows if r.label in lab_id]
    ncfg = NetworkConfig(**{**asdict(settings.network), "n_labels": len(labels)})
    use_teacher = settings.distill and _teacher_available()
    if use_teacher:
        from . import teacher
        tok = TextTokenizer.from_file(teacher.tokenizer_file(), ncfg.max_len)
    elif (state_dir / "tokenizer.json").exists():  # resuming: the vocabulary must not change
        tok = TextTokenizer.from_file(state_dir / "tokenizer.json", ncfg.max_len)
        ncfg.distill_dim = 0
    else:
        tok = build_tokenizer([r.text for r in train_rows] + list(unlabelled or []), ncfg.max_len)
        state_dir.mkdir(parents=True, exist_ok=True)
        tok.save(state_dir / "tokenizer.json")
        ncfg.distill_dim = 0
    ncfg.vocab_size, ncfg.pad_id, ncfg.cls_id, ncfg.sep_id = tok.vocab_size, tok.pad_id, tok.cls_id, tok.sep_id
    # draws per view a multiple of the labels, so that a view's rotated draws (views.draws_from)
    # average to exactly 1/C far from the data
    views = replace(settings.views, n_draws=-(-settings.views.n_draws // len(labels)) * len(labels))
    cfg = ModelConfig(network=ncfg, views=views, ngrams=settings.ngrams)
    encoder = Encoder(ncfg)
    background = list(background or [])
    bg_texts = background[: settings.encoder_background]
    clock = clock or Clock({})
    pieces = np.mean([min(len(b) + 2, settings.teacher.max_len) for b in tok.bodies([r.text for r in train_rows])])
    clock.stages.update(progress.plan(settings, len(train_rows), len(val_rows), len(unlabelled or []), len(background),
                                      use_teacher, use_teacher and _background_cached(bg_texts, cache), float(pieces)))
    if use_teacher:
        clock.start("the teacher")
    examples = _examples(train_rows, val_rows, lab_id, tok, use_teacher, unlabelled or [], cache, encoder, settings)
    n_lab = len(train_rows)
    n_unl = len(examples) - n_lab
    if "the teacher's embeddings of the background" in clock.stages:
        clock.start("the teacher's embeddings of the background")
    bg_emb = _background_embeddings(bg_texts, cache) if use_teacher and settings.background_emb else None
    examples += _background_examples(bg_texts, tok, background_targets or {}, bg_emb)
    n_bg = len(examples) - n_lab - n_unl
    pool = [r.text for r in train_rows] + list(unlabelled or [])
    examples += [Example(e.ids, -1, None, None)
                 for e in tok.encode(crops(pool, 4 * settings.crops_per_epoch, settings.seed))]
    n_crop = len(examples) - n_lab - n_unl - n_bg
    per_epoch = (n_lab * settings.labelled_repeats + min(n_unl, settings.unlabelled_per_epoch)
                 + min(n_bg, settings.background_per_epoch) + min(n_crop, settings.crops_per_epoch))
    lengths = [len(e.ids) for e in examples]
    steps_per_epoch = -(-per_epoch // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs

    opt = torch.optim.AdamW(encoder.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / settings.warmup_steps)
                                              * 0.5 * (1 + np.cos(np.pi * min(s, total_steps) / total_steps)))
    if network_from is None:
        start_epoch, history = _resume(state_dir, encoder, opt, sched)
    else:  # a state dir's epochs, RNG and best.pt are another run's: none of them is read
        start_epoch, history = settings.epochs, _network_from(network_from, encoder, tok)
    val_seqs = tok.bodies([r.text for r in val_rows])
    val_seeds = [text_seed(r.text) for r in val_rows]
    val_y = np.array([lab_id[r.label] for r in val_rows])

    clock.start("training the compact model")
    for epoch in range(start_epoch, settings.epochs):
        encoder.train()
        rng = np.random.default_rng([settings.seed, epoch])
        lab_idx = np.tile(np.arange(n_lab), settings.labelled_repeats)
        unl_idx = n_lab + rng.permutation(n_unl)[: settings.unlabelled_per_epoch]
        bg_idx = n_lab + n_unl + rng.permutation(n_bg)[: settings.background_per_epoch]
        crop_idx = n_lab + n_unl + n_bg + rng.permutation(n_crop)[: settings.crops_per_epoch]
        order = rng.permutation(np.concatenate([lab_idx, unl_idx, bg_idx, crop_idx])).tolist()
        batches = by_length(order, lengths, settings.batch_size, rng, settings.length_pool)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch")
        run_loss = 0.0
        for i, idx in enumerate(bar):
            batch = [examples[j] for j in idx]
            loss = _loss(encoder, batch, cfg, rng, settings)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
            opt.step()
            sched.step()
            run_loss = 0.98 * run_loss + 0.02 * loss.item() if i else loss.item()
            bar.set_postfix(loss=f"{run_loss:.3f}")
        encoder.eval()
        m, temperature = _validate(encoder, cfg, val_seqs, val_seeds, val_y)
        history.append({"epoch": epoch + 1, "val_accuracy": m["accuracy"], "val_nll": m["nll"],
                        "val_temperature": temperature})
        tqdm.write(f"epoch {epoch + 1}: val accuracy {m['accuracy']:.4f} nll {m['nll']:.4f}"
                   f" at temperature {temperature:.2f}")
        if m["nll"] <= min(h["val_nll"] for h in history):  # early stopping on calibrated validation NLL
            state_dir.mkdir(parents=True, exist_ok=True)
            torch.save(encoder.state_dict(), state_dir / "best.pt")
        _save_state(state_dir, epoch + 1, encoder, opt, sched, history, settings.keep_last)

    if network_from is None and (state_dir / "best.pt").exists():
        encoder.load_state_dict(torch.load(state_dir / "best.pt", weights_only=True))
        best = min(history, key=lambda h: h["val_nll"])
        tqdm.write(f"keeping epoch {best['epoch']} (lowest validation NLL {best['val_nll']:.4f})")
    encoder.eval()
    checkpoint.round_weights(encoder)
    clock.start("fitting the familiarity and calibration")
    cfg.head = HeadConfig(decay=settings.decay, sigma0=settings.sigma0, gentle=settings.gentle)
    exp = Expectation(encoder, None, None, cfg, torch.device("cpu"))
    width = window_pieces(ncfg)
    # Densities and scales also see one short fragment per row, so that a short text such
    # as "i loved it" counts as familiar rather than as far from the data.
    train_texts = [r.text for r in train_rows]
    train_texts += crops(train_texts, len(train_texts), settings.seed + 1)
    train_bodies = tok.bodies(train_texts)
    train_y = torch.tensor([lab_id[r.label] for r in train_rows] * 2)
    train_feats = exp.raw(train_bodies, [text_seed(t) for t in train_texts]).feats  # (N, K, D)
    exp.density = calibrate.fit_density(train_feats, train_y, len(labels))
    if n_bg and settings.refit_domain:
        # whole training sentences only: fragments are judged against fragments anyway (the
        # scales are per length bucket), and leaving them out separates whole sentences better
        pick = np.random.default_rng(settings.seed + 3).permutation(n_bg)[: 2 * n_lab]
        # and the long in-domain runs (a window each): the background holds long runs too,
        # and with only sentences on the in-domain side, length alone would read as "not a review"
        runs = [e.ids[1:-1] for e in examples[n_lab : n_lab + n_unl] if len(e.ids) >= LONG_IDS]
        runs = [runs[i] for i in np.random.default_rng(settings.seed + 4).permutation(len(runs))[:n_lab]]
        in_feats = train_feats[:n_lab]
        if runs:
            in_feats = torch.cat([in_feats, exp.raw(runs, [settings.seed + i for i in range(len(runs))]).feats])
        calibrate.fit_domain(exp, in_feats, [examples[n_lab + n_unl + i].ids[1:-1] for i in pick],
                             [text_seed(background[i]) for i in pick])
    exp.unigram = UnigramDensity.fit([e.ids for e in examples[: n_lab + n_unl]], tok.vocab_size, general_counts, tok,
                                     pairs=settings.piece_pairs)
    extra_bg = _background_examples(background[settings.encoder_background :], tok, background_targets or {})
    long_fit, long_rows = long_text_rows(settings, long_rows or [], val_rows, tok, lab_id, width)
    exp.ngrams = _fit_ngrams(cfg, tok, examples, n_lab, n_unl, n_bg, extra_bg, len(labels), settings,
                             list(zip(tok.bodies([x.text for x in long_fit]), [lab_id[x.label] for x in long_fit],
                                       strict=True)))
    scaling = scaling_texts(settings, [r.text for r in val_rows], long_rows)
    scale_bodies = tok.bodies(scaling)
    # domain heads never shown other text say nothing: without background they are off,
    # as is the general-English ratio without general counts
    off = (() if n_bg else ("neg_domain_logit", "neg_ngram_domain_logit")) + (
        () if exp.unigram.ratio is not None else ("general_english_ratio",)) + (
        () if settings.shape_scores else SHAPE_SCORES)
    exp.shape = PieceShape.of(tok) if settings.shape_scores else None
    val_bodies = tok.bodies([r.text for r in val_rows])
    out_val = exp.raw(val_bodies, val_seeds)
    out_scale = exp.raw(scale_bodies, [text_seed(t) for t in scaling])
    r = calibrate.fit_similarity(exp.scores(out_scale, scale_bodies), out_scale.pieces, out_val,
                                 exp.scores(out_val, val_bodies), torch.from_numpy(val_y), cfg.head, width, off,
                                 settings.shrink_quantile, settings.score_weight, settings.gentle_quantile)
    dec = exp.combine(out_val, r)
    metrics = {"validation": summarize(dec.probs.numpy(), val_y, dec.total.numpy()), "history": history}
    if long_rows:
        long_bodies = tok.bodies([x.text for x in long_rows])
        out_long = exp.raw(long_bodies, [text_seed(x.text) for x in long_rows])
        r_long = exp.similarity(out_long, long_bodies)
        long_y = np.array([lab_id[x.label] for x in long_rows])
        if settings.long_cross_fit and long_fit:
            out_long = replace(out_long, ngram_logits=_unseen_ngram_logits(
                cfg, tok, examples, n_lab, n_unl, n_bg, extra_bg, len(labels), settings, long_fit, long_rows, lab_id))
        calibrate.fit_window_gain(out_long, r_long, torch.from_numpy(long_y), cfg.head, width,
                                  calibrate.NGRAM_WEIGHTS if settings.long_ngram_weight else ())
        dec = exp.combine(out_long, r_long)
        metrics["long_texts"] = summarize(dec.probs.numpy(), long_y, dec.total.numpy())
        tqdm.write(f"window gain {cfg.head.window_gain:.3f}: long texts {metrics['long_texts']}")
    clock.close()
    return checkpoint.save(out, cfg, encoder, exp.density, exp.unigram, exp.ngrams, tok, labels, metrics,
                           settings.version,
                           extra={"settings": settings.to_dict(), "distilled": use_teacher, "n_train": len(train_rows),
                                  "n_unlabelled": n_unl, "n_background": len(background),
                                  "n_long": len({r.text for r in long_fit + long_rows})})


def _validate(encoder: Encoder, cfg: ModelConfig, bodies: list[list[int]], seeds: list[int],
              labels: np.ndarray) -> tuple[dict, float]:
    """The network's validation metrics at its own fitted temperature. Early stopping reads
    the NLL after temperature scaling, as the finished model will be scaled: at temperature
    1, the NLL of a network distilled from a sharp teacher rises with its over-confidence
    while its accuracy still grows."""
    probe = ModelConfig(network=cfg.network, views=cfg.views, head=HeadConfig(), ngrams=cfg.ngrams)
    exp = Expectation(encoder, None, None, probe, torch.device("cpu"))
    out = exp.raw(bodies, seeds)
    r = exp.similarity(out, bodies)  # all ones: no familiarity head yet
    width = window_pieces(cfg.network)
    calibrate.fit_temperature(out, r, torch.from_numpy(labels), probe.head, width)
    dec = exp.combine(out, r)
    return summarize(dec.probs.numpy(), labels, dec.total.numpy()), probe.head.temperature


LONG_IDS = 64  # an unlabelled text of at least this many ids is one of the long runs


def long_text_rows(s: TrainSettings, given: list[Row], val_rows: list[Row], tok: TextTokenizer,
                   lab_id: dict[str, int], width: int) -> tuple[list[Row], list[Row]]:
    """The labelled long texts -> (those the n-gram head learns from, those the window gain
    is fitted on). "validation": the validation rows longer than one window, all for the
    gain (the head never learns from validation rows); "reviews": the given rows, cut by
    long_ngram_share, the head learning from all of them with long_cross_fit. Too few for a
    fit (MIN_LONG_TEXTS): none, and the gain stays 0."""
    if s.long_texts == "validation":
        bodies = tok.bodies([r.text for r in val_rows])
        rows = [r for r, body in zip(val_rows, bodies, strict=True) if len(body) > width]
        fit: list[Row] = []
    else:
        rows = [x for x in given if x.label in lab_id]
        cut = int(round(s.long_ngram_share * len(rows)))
        fit, rows = (rows if s.long_cross_fit else rows[:cut]), rows[cut:]
    if len(rows) < MIN_LONG_TEXTS:
        tqdm.write(f"{len(rows)} labelled long texts: too few to fit the window gain, which stays 0")
        rows = []
    return fit, rows


def _unseen_ngram_logits(cfg: ModelConfig, tok: TextTokenizer, examples: list[Example], n_lab: int, n_unl: int,
                         n_bg: int, extra_bg: list[Example], n_labels: int, s: TrainSettings, long_fit: list[Row],
                         scored: list[Row], lab_id: dict[str, int]) -> torch.Tensor:
    """(len(scored), C) the class logits of the long texts `scored` from an n-gram head
    fitted as the final one but without them (its class part only): cross-fitting, so that
    the window gain is fitted on logits of texts the head never learned from."""
    held = {r.text for r in scored}
    rest = [r for r in long_fit if r.text not in held]
    head = _fit_ngrams(cfg, tok, examples, n_lab, n_unl, n_bg, extra_bg, n_labels, s,
                       list(zip(tok.bodies([r.text for r in rest]), [lab_id[r.label] for r in rest], strict=True)),
                       domain=False)
    whole = [[cfg.network.cls_id, *b, cfg.network.sep_id] for b in tok.bodies([r.text for r in scored])]
    return head(whole)[0]


def _fit_ngrams(cfg: ModelConfig, tok: TextTokenizer, examples: list[Example], n_lab: int, n_unl: int,
                n_bg: int, extra_bg: list[Example], n_labels: int, s: TrainSettings,
                long_fit: Sequence[tuple[list[int], int]] = (), domain: bool = True) -> NgramHead:
    """The wide part: class logits on the teacher's soft labels over labelled and
    unlabelled text, the labelled rows' leaning to their own targets (Example.target) by
    s.ngram_labels (without a teacher: their targets), plus a seeded sample of background
    text with uniform targets, or its raters' split where it has one (outlier exposure,
    s.ngram_uniform), and an in-domain logit of training text and its fragments against the
    background text (domain False: no in-domain logit)."""
    labelled = [e for e in examples[: n_lab + n_unl] if e.soft is not None] or examples[:n_lab]
    targets = np.stack([e.soft if e.soft is not None else e.aim(n_labels) for e in labelled])
    own = np.array([e.label >= 0 for e in labelled])
    targets[own] = (1 - s.ngram_labels) * targets[own] + s.ngram_labels * np.stack(
        [e.aim(n_labels) for e in labelled if e.label >= 0])
    in_domain = [e.read_whole for e in examples[: n_lab + n_unl]] + [e.ids for e in examples[n_lab + n_unl + n_bg:]]
    background = examples[n_lab + n_unl : n_lab + n_unl + n_bg] + extra_bg
    pick = np.random.default_rng(s.seed).permutation(len(background))[: int(s.ngram_uniform * len(labelled))]
    texts = [e.read_whole for e in labelled] + [background[i].ids for i in pick]
    targets = np.concatenate([targets, np.array([background[i].aim(n_labels) for i in pick]).reshape(-1, n_labels)])
    weights = np.ones(len(texts))
    if long_fit:  # labelled long texts, read whole as at inference, weighted (s.long_weight)
        texts += [[cfg.network.cls_id, *body, cfg.network.sep_id] for body, _ in long_fit]
        targets = np.concatenate([targets, np.eye(n_labels)[[y for _, y in long_fit]]])
        weights = np.r_[weights, np.full(len(long_fit), s.long_weight)]
    tqdm.write(f"fitting the n-gram head on {len(labelled)} texts, {len(long_fit)} long ones and {len(pick)} uniform, "
               f"domain {len(in_domain)} vs {len(background)}")
    return NgramHead.fit(NgramFeatures(cfg.ngrams, tok), texts, targets, in_domain,
                         [e.ids for e in background] if domain else [], s.seed, weights,
                         idf=s.ngram_idf)


def _examples(rows, val_rows, lab_id, tok, use_teacher, unlabelled, cache, encoder, s: TrainSettings) -> list[Example]:
    texts = [r.text for r in rows]
    targets = np.array([r.target(list(lab_id)) for r in rows])
    ids = [e.ids for e in tok.encode(texts + unlabelled)]
    width = tok.max_len - 2
    whole = [[tok.cls_id, *body, tok.sep_id] if len(body) > width else None for body in tok.bodies(texts)]
    soft = emb = None
    if use_teacher:
        from . import teacher
        emb = teacher.embed(texts, cache)
        if unlabelled:
            emb = np.concatenate([emb, teacher.embed(unlabelled, cache)])
        y = [lab_id[r.label] for r in rows]
        if s.teacher.epochs:
            soft = finetune.soft_labels(texts, targets, texts + unlabelled, [r.text for r in val_rows],
                                        [lab_id[r.label] for r in val_rows], cache, s.teacher)
        else:
            soft = teacher.soft_labels(texts, y, emb[: len(rows)], texts + unlabelled, emb)
        _init_embeddings(encoder, teacher.word_embeddings())
    out = []
    for i, seq in enumerate(ids):
        label = lab_id[rows[i].label] if i < len(rows) else -1
        out.append(Example(seq, label, None if soft is None else soft[i], None if emb is None else emb[i],
                           whole=whole[i] if i < len(rows) else None, target=targets[i] if i < len(rows) else None))
    return out


def _background_examples(texts: list[str], tok: TextTokenizer, targets: dict[str, list[float]],
                         emb: np.ndarray | None = None) -> list[Example]:
    """Background texts as examples: out of domain, with their raters' split where `targets`
    has one, and the teacher's embedding where `emb` is given."""
    return [Example(e.ids, -1, None, None if emb is None else emb[i], in_domain=False,
                    target=np.asarray(targets[t]) if t in targets else None)
            for i, (t, e) in enumerate(zip(texts, tok.encode(texts), strict=True))]


def _background_cached(texts: list[str], cache: Path, chunk: int = 10000) -> bool:
    """Whether the teacher's embeddings of these background texts are in the cache."""
    from . import teacher
    return all(teacher.cache_file(texts[i : i + chunk], cache).exists() for i in range(0, len(texts), chunk))


def _background_embeddings(texts: list[str], cache: Path, chunk: int = 10000) -> np.ndarray | None:
    """The teacher's embeddings of background text, cached per chunk of 10,000 so that a
    larger `encoder_background` reuses the smaller one's."""
    from . import teacher
    if not texts:
        return None
    return np.concatenate([teacher.embed(texts[i : i + chunk], cache) for i in range(0, len(texts), chunk)])


def _init_embeddings(encoder: Encoder, words: np.ndarray) -> None:
    """Token embeddings from MiniLM's, reduced by PCA to the factorised width."""
    dim = encoder.tok_emb.embedding_dim
    centred = words - words.mean(0)
    sample = np.random.default_rng(0).choice(len(words), 8000, replace=False)
    _, _, vt = np.linalg.svd(centred[sample], full_matrices=False)
    reduced = centred @ vt[:dim].T
    reduced *= 1.0 / reduced.std()
    with torch.no_grad():
        encoder.tok_emb.weight.copy_(torch.from_numpy(reduced.astype(np.float32)))


def _loss(encoder: Encoder, batch: list[Example], cfg: ModelConfig, rng, s: TrainSettings) -> torch.Tensor:
    T = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), T), cfg.network.pad_id, dtype=torch.long)
    pos = torch.zeros((len(batch), T), dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.bool)
    for i, e in enumerate(batch):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        # each step sees a fresh random view, so every seeded view at inference is in-distribution
        pos[i, :n] = torch.from_numpy(training_positions(n, rng, cfg.network))
        mask[i, :n] = True
    logits, h, dom = encoder(ids, pos, mask)
    inside = torch.tensor([e.in_domain for e in batch])
    loss = s.domain_weight * F.binary_cross_entropy_with_logits(dom, inside.float())
    n_labels = logits.shape[-1]
    if s.uniform_weight and not inside.all():  # CE to uniform, or to the raters' split of rated text
        bg = [i for i, e in enumerate(batch) if not e.in_domain]
        aims = np.stack([batch[i].aim(n_labels) for i in bg])
        loss = loss + s.uniform_weight * F.cross_entropy(logits[bg], torch.from_numpy(aims).float())
    # labelled rows: CE to their targets, the raters' split where they have one (to the label where one-hot)
    rows = [i for i, e in enumerate(batch) if e.label >= 0]
    if rows:
        aims = np.stack([batch[i].aim(n_labels) for i in rows])
        loss = loss + F.cross_entropy(logits[rows], torch.from_numpy(aims).float())
    has_soft = [i for i, e in enumerate(batch) if e.soft is not None]
    if has_soft:
        q = torch.from_numpy(np.stack([e.soft for e in batch if e.soft is not None])).float()
        loss = loss + s.kd_weight * F.kl_div(F.log_softmax(logits[has_soft], -1), q, reduction="batchmean")
    has_emb = [i for i, e in enumerate(batch) if e.emb is not None]
    if has_emb and encoder.distill is not None:
        t = torch.from_numpy(np.stack([e.emb for e in batch if e.emb is not None])).float()
        loss = loss + s.emb_weight * (1 - F.cosine_similarity(encoder.distill(h[has_emb]), t, dim=-1)).mean()
    return loss


def _network_from(path: str | Path, encoder: Encoder, tok: TextTokenizer) -> list:
    """Loads a finished checkpoint's network into `encoder` -> its training history."""
    ckpt = checkpoint.load(path)
    if ckpt.tokenizer.vocab_size != tok.vocab_size:
        raise checkpoint.CheckpointError(f"{path}: its vocabulary is not this training's")
    try:
        got = encoder.load_state_dict(ckpt.encoder.state_dict(), strict=False)
    except RuntimeError as e:
        raise checkpoint.CheckpointError(f"{path}: its network is not this training's ({str(e).splitlines()[0]})") \
            from None
    if got.unexpected_keys or any(not k.startswith("distill.") for k in got.missing_keys):  # distill: training only
        raise checkpoint.CheckpointError(f"{path}: its network is not this training's")
    return list(ckpt.metrics.get("history", []))


def _save_state(state_dir: Path, epoch: int, encoder, opt, sched, history, keep_last: int) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    torch.save({
        "epoch": epoch, "model": encoder.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "history": history,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }, state_dir / f"epoch-{epoch:04d}.pt")
    for old in sorted(state_dir.glob("epoch-*.pt"))[:-keep_last]:
        old.unlink()
    (state_dir / "history.json").write_text(json.dumps(history, indent=2))


def _resume(state_dir: Path, encoder, opt, sched) -> tuple[int, list]:
    states = sorted(state_dir.glob("epoch-*.pt")) if state_dir.exists() else []
    if not states:
        return 0, []
    st = torch.load(states[-1], weights_only=False)  # our own file, written by _save_state
    encoder.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    torch.set_rng_state(st["rng"]["torch"])
    np.random.set_state(st["rng"]["numpy"])
    random.setstate(st["rng"]["python"])
    tqdm.write(f"resuming after epoch {st['epoch']} from {states[-1]}")
    return st["epoch"], st["history"]
