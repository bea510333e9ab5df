"""The wide part of the model (as in wide-and-deep, or fastText): one linear map over hashed
word and character n-grams of the text the transformer reads (its word pieces decoded, so
both parts see the same normalised, truncated text). It gives

- class logits, added to every view's transformer logits with a weight fitted on
  validation: on this data it corrects the compact transformer where a word or phrase
  decides (distilled from the same teacher, it scores 0.75 alone on validation);
- an in-domain logit (training text against background text), a fourth familiarity score:
  character n-grams tell source code, markup, e-mail and scientific English from reviews
  better than the transformer's features do.

Each text's outputs depend on that text alone (a sparse row times the weights), so they
never change with what shares a batch. Hashing is scikit-learn's HashingVectorizer, which
keeps no vocabulary: the weights are the whole state."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import HashingVectorizer

from .config import NgramConfig
from .tokenizer import TextTokenizer

TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"  # words and single punctuation marks (a "!" matters)


class NgramFeatures:
    """Texts -> (N, 2 * 2**bits) sparse rows: word n-grams, then character n-grams, each
    binary and L2-normalised."""

    def __init__(self, cfg: NgramConfig, tokenizer: TextTokenizer) -> None:
        self.width = 2 * 2**cfg.bits
        self._tok = tokenizer
        self._words = HashingVectorizer(ngram_range=tuple(cfg.word_ngrams), n_features=2**cfg.bits,
                                        token_pattern=TOKEN_PATTERN, alternate_sign=False, binary=True)
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(cfg.char_ngrams),
                                        n_features=2**cfg.bits, alternate_sign=False, binary=True)

    def texts(self, seqs: Sequence[Sequence[int]]) -> list[str]:
        """What the transformer reads, as text: the word pieces between [CLS] and [SEP]."""
        return [self._tok.decode(list(s[1:-1])) for s in seqs]

    def __call__(self, seqs: Sequence[Sequence[int]]) -> sp.csr_matrix:
        texts = self.texts(seqs)
        return sp.hstack([self._words.transform(texts), self._chars.transform(texts)], format="csr")


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
