"""The wide part of the model (as in wide-and-deep, or fastText): one linear map over
n-grams of the word pieces the transformer reads (so both parts see the same normalised
text, all of it) and over the character n-grams of those pieces. It gives

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
        self.sublinear = cfg.sublinear_tf
        # a continuation piece ("##ing") is hashed as its characters; markers would only
        # split one n-gram into two
        pieces = [t[2:] if t.startswith("##") else t for t in tokenizer.tokens(range(self.vocab))]
        chars = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(cfg.char_ngrams), n_features=self.buckets,
                                  alternate_sign=False, binary=True, norm=None, lowercase=False)
        self._chars = chars.transform(pieces).tocsr()  # (vocab, buckets)

    def __call__(self, seqs: Sequence[Sequence[int]]) -> sp.csr_matrix:
        # one sparse matrix built from column lists: scipy's per-call costs dominate at
        # serving batch sizes, so the three blocks are not built and stacked apart
        bodies = [np.asarray(s[1:-1], dtype=np.int64) for s in seqs]  # without [CLS] / [SEP]
        n = len(bodies)
        lengths = np.array([len(b) for b in bodies], dtype=np.int64)
        ids = np.concatenate(bodies) if n else np.zeros(0, np.int64)
        id_rows = np.repeat(np.arange(n), lengths)
        rows, cols = [id_rows], [ids]
        if self.bigrams:
            pairs = [(b[:-1] * _MIX ^ b[1:]) % self.buckets for b in bodies]
            rows.append(np.repeat(np.arange(n), np.maximum(lengths - 1, 0)))
            cols.append(self.vocab + (np.concatenate(pairs) if n else np.zeros(0, np.int64)))
        # each piece's character n-gram columns, gathered from the vocabulary's rows
        start, stop = self._chars.indptr[ids], self._chars.indptr[ids + 1]
        counts = stop - start
        offsets = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        rows.append(np.repeat(id_rows, counts))
        cols.append(self.vocab + self.buckets + self._chars.indices[offsets].astype(np.int64))
        r, c = np.concatenate(rows), np.concatenate(cols)
        x = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, self.width))
        x.sum_duplicates()
        # binary (or 1 + log count), then each block scaled to unit length
        block = np.searchsorted([self.vocab, self.vocab + self.buckets], x.indices, side="right")
        per_block = np.zeros((n, 3))
        x_rows = np.repeat(np.arange(n), np.diff(x.indptr))
        if self.sublinear:
            values = 1.0 + np.log(x.data)
            np.add.at(per_block, (x_rows, block), values**2)
            x.data = values / np.sqrt(per_block[x_rows, block])
        else:  # serving's path for binary models: no per-n-gram logs or squares
            np.add.at(per_block, (x_rows, block), 1.0)
            x.data = 1.0 / np.sqrt(per_block[x_rows, block])
        return x


@dataclass
class NgramHead:
    features: NgramFeatures
    weight: np.ndarray  # (features.width, n_labels + 1) float64: class logits, then in-domain logit
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
    def from_tensors(cls, features: NgramFeatures, weight: torch.Tensor, bias: torch.Tensor) -> NgramHead:
        return cls(features, weight.double().numpy(), bias.double().numpy())

    @classmethod
    def fit(cls, features: NgramFeatures, labelled: Sequence[Sequence[int]], targets: np.ndarray,
            in_domain: Sequence[Sequence[int]], background: Sequence[Sequence[int]], seed: int = 0,
            weights: np.ndarray | None = None, idf: bool = False) -> NgramHead:
        """labelled texts with targets (N, C) class probabilities (a teacher's soft labels,
        or one-hot); in_domain and background texts for the domain logit (none: a zero
        logit, the score is then switched off by the caller); `weights` (N,) weigh the
        labelled texts in the class fit (default 1); `idf`: the class fit reads each feature
        scaled by its inverse document frequency over those texts, which lightens the
        regularisation of rare n-grams as tf-idf does, folded into the stored weights (the
        features at inference stay as they are). The weights are stored in
        float16, so they are rounded to it here, before the head's scales are fitted."""
        from .logistic import logistic

        n_labels = targets.shape[1]
        x = features(labelled)
        n = x.shape[0]
        scale = np.ones(x.shape[1])
        if idf:
            df = np.bincount(x.indices, minlength=x.shape[1])
            scale = np.log((1 + n) / (1 + df)) + 1.0
            x = x @ sp.diags(scale)
        # soft labels as weighted copies: each row once per class, weighted by its probability
        xs = sp.vstack([x] * n_labels, format="csr")
        ys = np.repeat(np.arange(n_labels), n)
        ws = (targets * (np.ones(n) if weights is None else weights)[:, None]).T.reshape(-1)
        keep = ws > 0
        cls_lr = logistic(4.0, random_state=seed).fit(xs[keep], ys[keep], sample_weight=ws[keep])
        coef, intercept = cls_lr.coef_, cls_lr.intercept_
        if n_labels == 2:  # binary: one decision function d; logits (-d/2, d/2) give the same softmax
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.r_[-intercept / 2, intercept / 2]
        weight = np.zeros((features.width, n_labels + 1))
        bias = np.zeros(n_labels + 1)
        weight[:, :n_labels] = coef.T * scale[:, None]
        bias[:n_labels] = intercept
        if len(background):
            xd = sp.vstack([features(in_domain), features(background)], format="csr")
            yd = np.r_[np.ones(len(in_domain)), np.zeros(len(background))]
            dom = logistic(1.0, class_weight="balanced", random_state=seed).fit(xd, yd)
            weight[:, n_labels] = dom.coef_[0]
            bias[n_labels] = dom.intercept_[0]
        rounded = lambda a: a.astype(np.float16).astype(np.float64)  # noqa: E731
        return cls(features, rounded(weight), rounded(bias))
