"""Production checkpoints: a directory of safetensors weights, JSON metadata and the
tokenizer, with a manifest of sha256 digests that is verified at every load.

Layout: model.safetensors, config.json, tokenizer.json, labels.json, metadata.json
(name, version, created_at), metrics.json, manifest.json.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .network import Encoder
from .ngrams import NgramFeatures, NgramHead
from .tokenizer import TextTokenizer
from .uncertainty import PAIR_BUCKETS, FeatureDensity, UnigramDensity

FILES = ("model.safetensors", "config.json", "tokenizer.json", "labels.json", "metadata.json", "metrics.json")
MANIFEST = "manifest.json"
DEFAULT_DIR = Path(__file__).parent / "default"


class CheckpointError(Exception):
    """A checkpoint that cannot be served; the message names the file at fault."""


@dataclass
class Checkpoint:
    cfg: ModelConfig
    encoder: Encoder
    density: FeatureDensity | None
    unigram: UnigramDensity | None
    ngrams: NgramHead | None
    tokenizer: TextTokenizer
    labels: list[str]
    metadata: dict
    metrics: dict
    digest: str  # sha256 of the manifest: names this exact checkpoint


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(
    out: str | Path,
    cfg: ModelConfig,
    encoder: Encoder,
    density: FeatureDensity | None,
    unigram: UnigramDensity | None,
    ngrams: NgramHead | None,
    tokenizer: TextTokenizer,
    labels: list[str],
    metrics: dict,
    version: str,
    name: str = "bet",
    extra: dict | None = None,
) -> Path:
    """Writes a production checkpoint. Weights are stored as float16 (half the size); the
    caller fits calibration on the same rounded weights, see `round_weights`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in encoder.state_dict().items()
               if not k.startswith("distill.")}
    if density is not None:
        tensors["density.means"] = density.means.contiguous()
        tensors["density.whiten"] = density.whiten.contiguous()
    if unigram is not None:
        tensors["unigram.nll"] = unigram.nll.contiguous()
        if unigram.ratio is not None:
            tensors["unigram.ratio"] = unigram.ratio.contiguous()
        if unigram.pairs is not None:
            tensors["unigram.pairs"] = unigram.pairs.contiguous()
    if ngrams is not None:
        tensors.update(ngrams.tensors())
    save_file(tensors, str(out / "model.safetensors"))
    stored = cfg.to_dict()
    stored["network"]["distill_dim"] = 0  # the distillation head is training-only, not stored
    _write_json(out / "config.json", stored)
    tokenizer.save(out / "tokenizer.json")
    _write_json(out / "labels.json", labels)
    meta = {"name": name, "version": version, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    meta.update(extra or {})
    _write_json(out / "metadata.json", meta)
    _write_json(out / "metrics.json", metrics)
    _write_json(out / MANIFEST, {"files": {f: sha256_file(out / f) for f in FILES}})
    return out


def round_weights(encoder: Encoder) -> None:
    """Rounds weights to what float16 storage keeps, so fitted statistics match a reload."""
    with torch.no_grad():
        for p in encoder.state_dict().values():
            if p.is_floating_point():
                p.copy_(p.to(torch.float16).to(p.dtype))


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    root = Path(path) if path is not None else DEFAULT_DIR
    if not root.is_dir():
        raise CheckpointError(f"{root}: checkpoint directory not found")
    manifest = _read_json(root, MANIFEST)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        raise CheckpointError(f"{root / MANIFEST}: no 'files' table")
    for name in FILES:
        if name not in listed:
            raise CheckpointError(f"{root / MANIFEST}: does not list {name}")
        f = root / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        if sha256_file(f) != listed[name]:
            raise CheckpointError(f"{f}: sha256 differs from the manifest (truncated or altered)")
    try:
        cfg = ModelConfig.from_dict(_read_json(root, "config.json"))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{root / 'config.json'}: {e}") from None
    labels = _read_json(root, "labels.json")
    if not (isinstance(labels, list) and len(labels) == cfg.network.n_labels
            and all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"{root / 'labels.json'}: expected {cfg.network.n_labels} label names")
    try:
        tokenizer = TextTokenizer.from_file(root / "tokenizer.json", cfg.network.max_len)
    except Exception as e:  # the tokenizers library raises its own exception types
        raise CheckpointError(f"{root / 'tokenizer.json'}: unreadable tokenizer ({e})") from None
    if tokenizer.vocab_size != cfg.network.vocab_size:
        raise CheckpointError(f"{root / 'tokenizer.json'}: vocabulary {tokenizer.vocab_size}"
                              f" != config {cfg.network.vocab_size}")
    try:
        tensors = load_file(str(root / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{root / 'model.safetensors'}: unreadable ({e})") from None
    density = unigram = None
    if "density.means" in tensors and "density.whiten" in tensors:
        density = FeatureDensity(tensors.pop("density.means").float(), tensors.pop("density.whiten").float())
    if "unigram.nll" in tensors:
        ratio, pairs = tensors.pop("unigram.ratio", None), tensors.pop("unigram.pairs", None)
        unigram = UnigramDensity(tensors.pop("unigram.nll").float(), None if ratio is None else ratio.float(),
                                 None if pairs is None else pairs.float())
        if any(t.shape != (cfg.network.vocab_size,) for t in (unigram.nll, ratio) if t is not None):
            raise CheckpointError(f"{root / 'model.safetensors'}: unigram density does not match the vocabulary")
        if pairs is not None and pairs.shape != (PAIR_BUCKETS,):
            raise CheckpointError(f"{root / 'model.safetensors'}: unigram.pairs is not {PAIR_BUCKETS} buckets")
    ngrams = None
    if "ngram.weight" in tensors and "ngram.bias" in tensors:
        weight, bias = tensors.pop("ngram.weight"), tensors.pop("ngram.bias")
        features = NgramFeatures(cfg.ngrams, tokenizer)
        if weight.shape != (features.width, cfg.network.n_labels + 1) or bias.shape != (cfg.network.n_labels + 1,):
            raise CheckpointError(f"{root / 'model.safetensors'}: n-gram weights do not match config.json")
        ngrams = NgramHead.from_tensors(features, weight, bias)
    encoder = Encoder(cfg.network)
    try:
        encoder.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(s.strip() for s in first[:3])[:300]
        raise CheckpointError(f"{root / 'model.safetensors'}: weights do not match config.json ({detail})") from None
    if density is not None and density.means.shape != (cfg.network.n_labels, cfg.network.d_model):
        raise CheckpointError(f"{root / 'model.safetensors'}: density statistics do not match config.json")
    encoder.to(device).eval()
    return Checkpoint(
        cfg=cfg, encoder=encoder, density=density, unigram=unigram, ngrams=ngrams, tokenizer=tokenizer, labels=labels,
        metadata=_read_json(root, "metadata.json"), metrics=_read_json(root, "metrics.json"),
        digest=hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest(),
    )


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(root: Path, name: str):
    f = root / name
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{f}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from None
