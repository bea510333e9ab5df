"""Does a pre-trained encoder let English sentiment text of other domains through the
familiarity and still hold far text? bench/teacher_bound.py reads MiniLM alone, with no
familiarity; here its first `--layers` layers, fine-tuned the same way (FinetuneSettings),
get the default model's familiarity, built as training builds it:

- a class-conditional density (uncertainty.FeatureDensity) on the encoder's pooled features
  of the training rows, and an in-domain logistic regression of those features against
  twice as many background texts (the prefix the compact encoder samples from);
- beside them the default model's n-gram in-domain logit and unigram scores, and its
  n-gram class logits, whose weight is refitted with the temperature;
- the head's scales and threshold refitted on validation and its fragments
  (bench.head_fit.Cached), one reading per text (no views) with as many antithetic posterior
  draws as the default model's views hold together.

With `--graded`, the fine-tuning's targets read each rating as a probability,
sigmoid(rating), averaged (bench/raters_targets.py, "raters 1"), where the raters' split is
the default. With `--background N`, N texts of that background prefix join the fine-tuning as outlier
exposure, as the default recipe trains its encoder: rated editorials toward their raters'
split, the rest toward uniform. The editorials numbered 1 mod 4 are left out of every
background here, so that they judge the encoder on opinion writing it never read
(other_domains.editorial_stand_in).

Rows: the default model's weights and the unweighted ones at threshold quantiles 0.97 to
0.995 (decay 4), then the similarity held at 1 (the encoder's own answers). Reported:
validation accuracy, NLL, ECE, misclassification AUROC and Spearman(aleatoric, -|mean
rating|); mean epistemic; the AUROC of total uncertainty against validation of OANC and
Italian, and of total | epistemic of the far stand-ins (ood_sets.far_dev_sets); ECE /
misclassification AUROC on the other-domain dev parts and the editorial stand-in. No test
row is read. Needs `pip install -e '.[train]'`; the fine-tuned weights and every reading are
cached under the data cache (a 4-layer fine-tuning takes about 10 minutes on 2 cores, 16
with 6,000 background texts; reading the sets about 5).
Usage: python -m bench.encoder_familiarity [--layers N] [--background N]"""
from __future__ import annotations

import argparse
import copy
from dataclasses import asdict, replace

import numpy as np
import torch
from scipy.stats import spearmanr

from model import finetune
from model.background import background_parts, editorial_targets
from model.config import HeadConfig
from model.data import cache_dir, fetch, read_rows
from model.expectation import ViewOutputs
from model.logistic import logistic
from model.predictor import Predictor
from model.settings import FinetuneSettings, TrainSettings
from model.snippets import key, rated, snippets
from model.train import scale_texts
from model.uncertainty import FeatureDensity, similarity
from model.views import draw_uniforms, draws_from, text_seed

from .domain_grid import CHOSEN_WEIGHTS, FAR_DEV, OTHER
from .head_fit import DEV, Cached, named, off_home
from .human_agreement import weakness
from .ood_sets import all_sets, far_dev_sets
from .other_domains import SETS, editorial_stand_in, label_ids, stand_in_editorials
from .raters_targets import positive_targets

ROWS = ((0.97, CHOSEN_WEIGHTS), (0.97, (1.0,) * 5), (0.99, (1.0,) * 5), (0.995, (1.0,) * 5))


class Encoder:
    """The fine-tuned classifier, trained once and cached, and its cached readings."""

    def __init__(self, texts: list[str], targets: np.ndarray, s: FinetuneSettings):
        self.s = s
        self.key = finetune.digest(texts, np.round(targets, 6).tolist(), asdict(s))
        f = cache_dir() / f"encoder-{self.key}.pt"
        if f.exists():
            self.model, self.tok = finetune.classifier(targets.shape[1], s)
            self.model.load_state_dict(torch.load(f))
            self.model.eval()
        else:
            self.model, self.tok = finetune.fine_tuned(texts, targets, s)
            torch.save(self.model.state_dict(), f)

    def read(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (N, C) logits and (N, H) pooled features."""
        f = cache_dir() / f"encoder-reads-{self.key}-{finetune.digest(texts)}.npz"
        if not f.exists():
            logits, feats = finetune.read(self.model, self.tok, texts, self.s)
            np.savez(f, logits=logits, feats=feats)
        got = np.load(f)
        return torch.from_numpy(got["logits"]).float(), torch.from_numpy(got["feats"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4, help="MiniLM's first N layers (0: all six)")
    ap.add_argument("--background", type=int, default=0, help="background texts in the fine-tuning (0: none)")
    ap.add_argument("--graded", action="store_true",
                    help="train toward each rating read as sigmoid(rating), averaged (bench/raters_targets.py's "
                         "'raters 1'), in place of the raters' split")
    args = ap.parse_args()
    if not (cache_dir() / "train_rated.csv").exists():
        fetch()
    pred = Predictor.load()  # the default model: its n-gram head, unigram scores and head
    ngrams = pred.expectation.ngrams
    assert ngrams is not None, "the default model has an n-gram head"
    labels, cfg, tok = pred.labels, pred.ckpt.cfg, pred.ckpt.tokenizer
    train, val = read_rows(cache_dir() / "train_rated.csv"), read_rows(cache_dir() / "val.csv")
    stand_in, unseen = editorial_stand_in(), stand_in_editorials()
    prefix = TrainSettings.from_dict(pred.ckpt.metadata["settings"]).encoder_background
    # the prefix of a background whose editorials, and the runs joined from them, leave the stand-in out
    bg = [t for part in background_parts(leave_out=frozenset(unseen)).values() for t in part][:prefix]
    texts, targets = [r.text for r in train], np.array([r.target(labels) for r in train])
    if args.graded:
        by_key = {key(s.text): s for s in snippets() if s.split in ("train", "extra")}
        positive = positive_targets("raters 1", train, by_key)
        targets = np.stack([1 - positive, positive], 1)  # the default model: negative, positive
    if args.background:
        exposed = [bg[i] for i in np.random.default_rng(5).permutation(len(bg))[: args.background]]
        shares = editorial_targets(labels)
        texts = texts + exposed
        targets = np.r_[targets, np.array([shares.get(t, [0.5, 0.5]) for t in exposed])]
    enc = Encoder(texts, targets, FinetuneSettings(layers=args.layers))

    train_feats = enc.read([r.text for r in train])[1]
    density = FeatureDensity.fit(train_feats, torch.tensor([labels.index(r.label) for r in train]), len(labels))
    bg_feats = enc.read([bg[i] for i in np.random.default_rng(3).permutation(len(bg))[: 2 * len(train)]])[1]
    domain = logistic(1.0, class_weight="balanced").fit(
        np.r_[train_feats.numpy(), bg_feats.numpy()], np.r_[np.ones(len(train_feats)), np.zeros(len(bg_feats))])
    draws = cfg.views.n_views * cfg.views.n_draws
    exp = replace(pred.expectation, density=density)  # its scores, on this encoder's density

    def outputs(set_texts: list[str]) -> tuple[ViewOutputs, torch.Tensor]:
        logits, feats = enc.read(set_texts)
        bodies = tok.bodies(set_texts)
        wide, wide_domain = ngrams([[cfg.network.cls_id, *b, cfg.network.sep_id] for b in bodies])
        u = np.stack([draw_uniforms(1, draws, len(labels), np.random.default_rng(text_seed(t))) for t in set_texts])
        dom = torch.from_numpy(domain.decision_function(feats.numpy())).float()[:, None]
        out = ViewOutputs(logits=logits[:, None], feats=feats[:, None], domain=dom,
                          z=torch.from_numpy(draws_from(u, len(labels))), ngram_logits=wide, ngram_domain=wide_domain,
                          pieces=torch.tensor([len(b) for b in bodies]))
        return out, exp.scores(out, bodies)

    base = copy.deepcopy(cfg.head)
    base.window_gain, base.long_ngram_weight = 0.0, None  # one reading, cut at FinetuneSettings.max_len
    val_texts = [r.text for r in val]
    dev = {name: texts for name, texts in all_sets().items() if name in DEV} | far_dev_sets()
    other = {name: part for name in OTHER[:2] if (part := SETS[name]("dev")) is not None} | {OTHER[2]: stand_in}
    cached = Cached(pred, torch.tensor([labels.index(r.label) for r in val]), outputs(val_texts),
                    outputs(scale_texts(val_texts, 0)), {name: outputs(t) for name, t in dev.items()}, base,
                    {name: (*outputs(t), label_ids(labels, p)) for name, (t, p) in other.items()})
    pairs = rated("val")
    where = {t: i for i, t in enumerate(val_texts)}
    rated_at, people = [where[r.text] for r, _ in pairs], weakness([s for _, s in pairs])

    def spearman(head: HeadConfig) -> float:
        out, scores = cached.val
        pred.expectation.cfg.head = head
        try:
            d = pred.expectation.combine(out, similarity(scores, out.pieces, head))
        finally:
            pred.expectation.cfg.head = cfg.head
        return float(spearmanr(d.aleatoric.numpy()[rated_at], people).statistic)

    print(f"{'q':>5} {'weights':28} {'acc':>6} {'NLL':>6} {'ECE':>6} {'mAUC':>6} {'Spear':>6} {'epist':>6} "
          f"{'OANC':>6} " + " ".join(f"{n[:11]:>11}" for n in FAR_DEV) + " "
          + " ".join(f"{n[:11] + ' acc/ECE/AUC':>17}" for n in OTHER))
    rows = [(q, w, {"decay": 4.0}) for q, w in ROWS] + [(0.97, CHOSEN_WEIGHTS, {"decay": 0.0, "gentle": 0.0})]
    for quantile, weights, head in rows:
        fitted = cached.fit(quantile, named(weights), **head)
        m = cached.judge(fitted)
        name = "r = 1" if head["decay"] == 0 else str(weights)
        print(f"{quantile:5.3f} {name:28} {m['accuracy']:6.4f} {m['nll']:6.4f} {m['ece']:6.4f} "
              f"{m['misclassification_auroc_confidence']:6.3f} {spearman(fitted):6.3f} {m['mean_epistemic']:6.3f} "
              f"{m['english_mixed_oanc']:6.3f} "
              + " ".join(f"{m[n]:5.3f}|{m[n + '_epistemic']:5.3f}" for n in FAR_DEV) + " "
              + off_home(m, OTHER), flush=True)


if __name__ == "__main__":
    main()
