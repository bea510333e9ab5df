"""A similarity learnt from data instead of set by a validation quantile: can training's own
background text teach the familiarity which unfamiliar text the model can still judge?

The shipped familiarity shrinks a view's answer once its largest weighted unfamiliarity
score passes a validation quantile (uncertainty.similarity), a rule of distance from the
home ground; English sentiment text of other domains is far by it, and shrunk. Here:

1. How well each score, and the size of the answers, tell the far stand-ins (and OANC,
   Italian) from the English sentiment text off the home ground (Amazon and tweet dev parts,
   the stand-in editorials pooled): the AUROC of the per-text mean over views, unfamiliar
   text reading higher, and beside it each near set against validation; with them, an
   opinion-against-report classifier's (`opinion_scores`), trained on training's sentences
   and rated editorials against its other background prose.
2. The similarity of each view learnt: r = exp(-softplus(a . phi + b)), phi the five scores
   on the shipped head's scales (clipped), and with "evidence" also the size of the view's
   transformer answer and of the n-gram head's (|logit difference|) and log word pieces;
   a and b fitted by the lowest sum of three mean losses: NLL on the validation sentences,
   cross-entropy toward the raters' split on training's rated background editorials, and
   toward uniform on training's other background text (a seeded sample of the prose and
   code, or of the code alone). Temperature and n-gram weight stay the shipped head's.
   Reported as bench/domain_grid.py reports a head (bench.head_fit.Cached.judge).
   Beside them, the shipped similarity with a shrunk view falling toward the n-gram head's
   answer instead of 50/50 (`toward_ngrams`).

The stand-in editorials (numbered 1 mod 4) are left out of every fit here; the encoder did
read them as background text, so they are a weaker stand-in than for a model that did not.
No test part is read.
Usage: python -m bench.learned_similarity [--model DIR] [--background N]"""
from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from model.background import background_parts, rated_editorials
from model.config import SCORES
from model.data import cache_dir, read_rows
from model.metrics import auroc
from model.predictor import Predictor
from model.uncertainty import Decomposition, decompose, scaled, view_probabilities
from model.windows import window_pieces

from .domain_grid import FAR_DEV, OTHER
from .head_fit import Cached, off_home, outputs
from .ood_sets import all_sets, far_dev_sets
from .other_domains import SETS, editorial_stand_in, stand_in_editorials
from .task_sets import polarity

CLIP = (-3.0, 30.0)  # scaled scores past these add nothing a logistic can use
FAR_SETS = ("english_mixed_oanc", *FAR_DEV)  # FAR_DEV holds Italian


def differences(out) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) the logit difference of each view's transformer answer, (N,) of the text's n-gram answer."""
    return out.logits[..., 1] - out.logits[..., 0], out.ngram_logits[:, 1] - out.ngram_logits[:, 0]


def features(exp, out, scores: torch.Tensor, evidence: bool) -> torch.Tensor:
    """(N, K, F) per view: the clipped scaled scores, and with `evidence` the size of the
    view's transformer answer, of the text's n-gram answer and log word pieces."""
    parts = [scaled(scores, out.pieces, exp.cfg.head).clamp(*CLIP)]
    if evidence:
        N, K = out.domain.shape
        margin, wide = (d.abs() for d in differences(out))
        wide = wide.double()[:, None].expand(N, K)
        length = torch.log(out.pieces.double())[:, None].expand(N, K)
        parts.append(torch.stack([margin, wide, length], -1))
    return torch.cat(parts, -1).double()


class Learnt:
    """r = exp(-softplus(phi @ a + b)), phi standardized on the fitting texts."""

    def __init__(self, phi: torch.Tensor):
        flat = phi.reshape(-1, phi.shape[-1])
        self.mu, self.sd = flat.mean(0), flat.std(0).clamp_min(1e-6)
        self.a = torch.zeros(phi.shape[-1], dtype=torch.float64, requires_grad=True)
        self.b = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.nn.functional.softplus(((phi - self.mu) / self.sd) @ self.a + self.b))

    def fit(self, exp, groups: list[tuple], l2: float = 1e-3) -> None:
        """groups: (outputs, phi, targets (N, C)); the sum of each group's mean cross-entropy."""
        width = window_pieces(exp.cfg.network)
        # clones: the outputs were made in inference mode, whose tensors autograd cannot save
        fixed = [(out.view_logits(exp.cfg.head, width).clone(), out.z.clone(), phi.clone(), target)
                 for out, phi, target in groups]
        opt = torch.optim.LBFGS([self.a, self.b], max_iter=200, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            opt.zero_grad()
            total = l2 * (self.a ** 2).sum()
            for logits, z, phi, target in fixed:
                p = view_probabilities(logits, self(phi), z, exp.cfg.head).flatten(1, 2).mean(1)
                total = total - (target * torch.log(p.clamp_min(1e-12))).sum(-1).mean()
            total.backward()
            return total

        opt.step(loss)


def toward_ngrams(exp, alpha: float):
    """A combine (bench.head_fit.Combine) whose shrunk views fall toward alpha times the
    n-gram head's answer instead of toward 50/50: the lexical model, whose words might carry
    to other English, as the prior far from the home ground."""
    head, width = exp.cfg.head, window_pieces(exp.cfg.network)

    def combine(out, r: torch.Tensor) -> Decomposition:
        logits = out.view_logits(head, width)
        prior = alpha * out.ngram_logits.to(logits.dtype).unsqueeze(1) / head.temperature  # (N, 1, C)
        r = r.unsqueeze(-1)  # (N, K, 1)
        mean = (r * logits / head.temperature + (1 - r) * prior).unsqueeze(2)  # (N, K, 1, C)
        std = (head.sigma0 * torch.sqrt((1 - r * r).clamp_min(0.0))).unsqueeze(2)
        return decompose(torch.softmax(mean + std * out.z.to(logits.dtype), dim=-1))

    return combine


def opinion_scores(texts: dict[str, list[str]], report: list[str]) -> dict[str, np.ndarray]:
    """An opinion-against-report classifier (tf-idf of words and word pairs, logistic
    regression): training's sentences and its polar rated background editorials (the
    stand-in left out) against as many texts of its other background prose -> per set of
    `texts`, minus its decision value (report reading higher)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    unseen = stand_in_editorials()
    opinion = [r.text for r in read_rows(cache_dir() / "train.csv")]
    opinion += [r.text for r in rated_editorials()
                if not r.held_out and r.text not in unseen and polarity(r.mean) != "neutral"]
    report = random.Random(3).sample(report, min(len(report), len(opinion)))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(
        vec.fit_transform(opinion + report), np.r_[np.ones(len(opinion)), np.zeros(len(report))])
    return {name: -clf.decision_function(vec.transform(t)) for name, t in texts.items()}


def separation(cached: Cached, extra: dict[str, dict[str, np.ndarray]]) -> None:
    """extra: signal name -> set name ("val", OTHER, FAR_SETS) -> per-text values."""
    near = {name: cached.other[name][:2] for name in OTHER}
    far = {name: cached.dev[name] for name in FAR_SETS}

    def signals(out, scores) -> dict[str, np.ndarray]:
        named = {name: scores[..., j].mean(1).numpy() for j, name in enumerate(SCORES)}
        margin, wide = differences(out)
        named["-answer"], named["-ngram_answer"] = -margin.mean(1).abs().numpy(), -wide.abs().numpy()
        return named

    def with_extra(named: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
        return {name: {**signal, **{key: by_set[name] for key, by_set in extra.items()}}
                for name, signal in named.items()}

    def split(a: np.ndarray, b: np.ndarray) -> float:
        return auroc(np.r_[a, b], np.r_[np.zeros(len(a)), np.ones(len(b))])

    near_s = with_extra({name: signals(*v) for name, v in near.items()})
    far_s = with_extra({name: signals(*v) for name, v in far.items()})
    val_s = with_extra({"val": signals(*cached.val)})["val"]
    print("AUROC, far set against the near sets pooled | each near set against validation")
    print(f"{'signal':22} " + " ".join(f"{n[:7]:>7}" for n in far) + " | " + " ".join(f"{n[:7]:>7}" for n in near))
    for key in val_s:
        pooled = np.concatenate([s[key] for s in near_s.values()])
        print(f"{key:22} " + " ".join(f"{split(pooled, s[key]):7.3f}" for s in far_s.values()) + " | "
              + " ".join(f"{split(val_s[key], s[key]):7.3f}" for s in near_s.values()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--background", type=int, default=3000, help="unrated background texts sampled")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    exp = pred.expectation
    cached = Cached.of(pred, other_domains=True, far_dev=True, stand_in=True)

    stand_texts, _ = editorial_stand_in()
    sets = all_sets() | far_dev_sets()
    texts = {"val": [r.text for r in read_rows(cache_dir() / "val.csv")], "editorial_stand_in": stand_texts,
             **{name: SETS[name]("dev")[0] for name in OTHER if name in SETS},
             **{name: sets[name] for name in FAR_SETS}}
    parts = background_parts()  # its prose and code; the editorials and their runs are opinion writing
    prose = parts["prose runs"] + parts["prose"]
    separation(cached, {"report (opinion clf)": opinion_scores(texts, prose)})

    unseen = stand_in_editorials()
    rated = [r for r in rated_editorials() if not r.held_out and r.text not in unseen]
    share = torch.tensor([r.positive_share for r in rated], dtype=torch.float64)
    rated_target = torch.zeros(len(rated), 2, dtype=torch.float64)
    rated_target[:, pred.labels.index("positive")] = share
    rated_target[:, pred.labels.index("negative")] = 1 - share
    unrated = {"prose and code": prose + parts["code"], "code": parts["code"]}
    unrated = {k: random.Random(7).sample(v, min(args.background, len(v))) for k, v in unrated.items()}
    val_target = torch.nn.functional.one_hot(cached.labels, 2).double()
    rated_read = outputs(pred, [r.text for r in rated])

    print(f"\n{'similarity':36} {'NLL':>7} {'ECE':>6} {'mAUC':>6} {'epist':>6} {'OANC':>6} "
          + " ".join(f"{n[:6]:>6}" for n in FAR_DEV) + "  Amazon, tweets, stand-in editorials: accuracy/ECE/AUROC")

    def show(label: str, m: dict) -> None:
        print(f"{label:36} {m['nll']:7.4f} {m['ece']:6.3f} {m['misclassification_auroc_confidence']:6.3f} "
              f"{m['mean_epistemic']:6.3f} {m['english_mixed_oanc']:6.3f} "
              + " ".join(f"{m[n]:6.3f}" for n in FAR_DEV) + " "
              + off_home(m, OTHER), flush=True)

    show("shipped", cached.judge(cached.base))
    show("held at 1, the shipped temperature",
         cached.judge(cached.base, lambda o, s: torch.ones(o.domain.shape, dtype=torch.float64)))
    for alpha in (0.5, 1.0, 2.0):
        show(f"shipped, toward n-grams x{alpha}", cached.judge(cached.base, combine=toward_ngrams(exp, alpha)))
    for kind, sample in unrated.items():
        other_read = outputs(pred, sample)
        uniform = torch.full((len(sample), 2), 0.5, dtype=torch.float64)
        for evidence in (False, True):
            phi = [features(exp, o, s, evidence) for o, s in (cached.val, rated_read, other_read)]
            learnt = Learnt(torch.cat(phi))
            learnt.fit(exp, [(cached.val[0], phi[0], val_target), (rated_read[0], phi[1], rated_target),
                             (other_read[0], phi[2], uniform)])
            with torch.no_grad():
                m = cached.judge(cached.base, lambda o, s, e=evidence, f=learnt: f(features(exp, o, s, e)))
            show(f"learnt on {kind}, {'evidence' if evidence else 'scores'}", m)


if __name__ == "__main__":
    main()
