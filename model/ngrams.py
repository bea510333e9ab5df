"""The wide part of the model (as in wide-and-deep, or fastText): one linear map over
n-grams of the word pieces the transformer reads (so both parts see the same normalised,
truncated text) and over the character n-grams of those pieces. It gives

- class logits, added to every view's transformer logits with a weight fitted on
  validation: on this data it corrects the compact transformer where a word or phrase
  decides (distilled from the same teacher, it scores about as well alone);
- an in-domain logit (training text against background text), a fourth familiarity score:
  character n-grams tell source code, markup, e-mail and scientific English from reviews
  better than the transformer's features do.

Each text's outputs depend on that text alone (a sparse row times the weights), so they
never change with what shares a batch. The character n-grams of every vocabulary entry
are hashed once, at load, by scikit-learn's HashingVectorizer; a text's are then the sum
of its pieces' rows, a sparse product, with no Python loop per text."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from .config import NgramConfig
from .tokenizer import TextTokenizer

_MIX = np.int64(0x9E3779B1)  # odd multiplier that spreads piece bigrams over the hashed space


class NgramFeatures:
    """Token ids -> (N, vocab + 2 * 2**bits) sparse rows: piece unigrams, hashed piece
    bigrams, hashed character n-grams of the pieces; each block binary and L2-normalised."""

    def __init__(self, cfg: NgramConfig, tokenizer: TextTokenizer) -> None:
        self.vocab = tokenizer.vocab_size
        self.buckets = 2**cfg.bits
        self.bigrams = cfg.word_ngrams[1] >= 2
        self.width = self.vocab + 2 * self.buckets
        # a continuation piece ("##ing") is hashed as its characters; markers would only
        # split one n-gram into two
        pieces = [t[2:] if t.startswith("##") else t for t in tokenizer.tokens(range(self.vocab))]
        chars = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(cfg.char_ngrams), n_features=self.buckets,
                                  alternate_sign=False, binary=True, norm=None, lowercase=False)
        self._chars = chars.transform(pieces).tocsr()  # (vocab, buckets)

    def __call__(self, seqs: Sequence[Sequence[int]]) -> sp.csr_matrix:
        bodies = [np.asarray(s[1:-1], dtype=np.int64) for s in seqs]  # without [CLS] / [SEP]
        n = len(bodies)
        row = np.repeat(np.arange(n), [len(b) for b in bodies])
        ids = np.concatenate(bodies) if n else np.zeros(0, np.int64)
        unigrams = sp.csr_matrix((np.ones(len(ids)), (row, ids)), shape=(n, self.vocab))
        blocks = [unigrams]
        if self.bigrams:
            pairs = [(b[:-1] * _MIX ^ b[1:]) % self.buckets for b in bodies]
            prow = np.repeat(np.arange(n), [len(p) for p in pairs])
            cols = np.concatenate(pairs) if n else np.zeros(0, np.int64)
            blocks.append(sp.csr_matrix((np.ones(len(cols)), (prow, cols)), shape=(n, self.buckets)))
        else:
            blocks.append(sp.csr_matrix((n, self.buckets)))
        blocks.append(unigrams @ self._chars)
        for block in blocks:
            block.sum_duplicates()
            block.data[:] = 1.0
        return sp.hstack([normalize(b) for b in blocks], format="csr")


@dataclass
class NgramHead:
    features: NgramFeatures
    weight: np.ndarray  # (2 * 2**bits, n_labels + 1) float64: class logits, then in-domain logit
    bias: np.ndarray  # (n_labels + 1,)

    def __call__(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> class logits (N, n_labels) and in-domain logit (N,), float64."""
        out = torch.from_numpy(np.asarray(self.features(seqs) @ self.weight) + self.bias)
        return out[:, :-1], out[:, -1]

    def tensors(self) -> dict[str, torch.Tensor]:
        """For the checkpoint: float16, as the encoder's weights."""
        return {"ngram.weight": torch.from_numpy(self.weight).to(torch.float16),
                "ngram.bias": torch.from_numpy(self.bias).to(torch.float16)}

    @classmethod
    def from_tensors(cls, features: NgramFeatures, weight: torch.Tensor, bias: torch.Tensor) -> "NgramHead":
        return cls(features, weight.double().numpy(), bias.double().numpy())

    @classmethod
    def fit(cls, features: NgramFeatures, labelled: Sequence[Sequence[int]], targets: np.ndarray,
            in_domain: Sequence[Sequence[int]], background: Sequence[Sequence[int]], seed: int = 0) -> "NgramHead":
        """labelled texts with targets (N, C) class probabilities (a teacher's soft labels,
        or one-hot); in_domain and background texts for the domain logit (none: a zero
        logit, the score is then switched off by the caller). The weights are stored in
        float16, so they are rounded to it here, before the head's scales are fitted."""
        from sklearn.linear_model import LogisticRegression

        n_labels = targets.shape[1]
        x = features(labelled)
        n = x.shape[0]
        # soft labels as weighted copies: each row once per class, weighted by its probability
        xs = sp.vstack([x] * n_labels, format="csr")
        ys = np.repeat(np.arange(n_labels), n)
        ws = targets.T.reshape(-1)
        keep = ws > 0
        cls_lr = LogisticRegression(C=4.0, max_iter=3000, random_state=seed).fit(xs[keep], ys[keep], sample_weight=ws[keep])
        coef, intercept = cls_lr.coef_, cls_lr.intercept_
        if n_labels == 2:  # binary: one decision function d; logits (-d/2, d/2) give the same softmax
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.r_[-intercept / 2, intercept / 2]
        weight = np.zeros((features.width, n_labels + 1))
        bias = np.zeros(n_labels + 1)
        weight[:, :n_labels] = coef.T
        bias[:n_labels] = intercept
        if len(background):
            xd = sp.vstack([features(in_domain), features(background)], format="csr")
            yd = np.r_[np.ones(len(in_domain)), np.zeros(len(background))]
            dom = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced", random_state=seed).fit(xd, yd)
            weight[:, n_labels] = dom.coef_[0]
            bias[n_labels] = dom.intercept_[0]
        rounded = lambda a: a.astype(np.float16).astype(np.float64)  # noqa: E731
        return cls(features, rounded(weight), rounded(bias))
