"""The batched inference API the serving core calls: texts in, one Prediction per text."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from . import checkpoint
from .cot import cot_length
from .evidence import occlusion, reasoning_steps
from .expectation import Expectation
from .types import ModelInfo, Prediction, Uncertainty
from .views import text_seed


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    def __init__(self, ckpt: checkpoint.Checkpoint, device: torch.device):
        self.ckpt = ckpt
        self.device = device
        self.expectation = Expectation(ckpt.encoder, ckpt.density, ckpt.unigram, ckpt.cfg, device, ckpt.ngrams)
        self.labels: list[str] = list(ckpt.labels)
        self.version: str = str(ckpt.metadata.get("version", "unknown"))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None) -> "Predictor":
        dev = pick_device(device)
        return cls(checkpoint.load(path, dev), dev)

    def info(self) -> ModelInfo:
        c = self.ckpt
        return ModelInfo(
            name=str(c.metadata.get("name", "bet")), version=self.version, labels=self.labels,
            n_views=c.cfg.views.n_views, digest=c.digest, created_at=str(c.metadata.get("created_at", "")),
            config=c.cfg.to_dict(), metrics=dict(c.metrics),
        )

    def predict(self, texts: Sequence[str], *, with_reasoning: bool = False) -> list[Prediction]:
        if not texts:
            return []
        enc = self.ckpt.tokenizer.encode(texts)
        seqs = [e.ids for e in enc]
        seeds = [text_seed(t) for t in texts]
        out = self.expectation.raw(seqs, seeds)
        r = self.expectation.similarity(out, seqs)
        dec = self.expectation.combine(out, r)
        probs = dec.probs.tolist()
        label_ids = [max(range(len(p)), key=p.__getitem__) for p in probs]
        effects = None
        if with_reasoning:
            effects = occlusion(self.expectation, self.ckpt.tokenizer, seqs, seeds, label_ids, probs)
        fam = r.mean(1).tolist()
        out = []
        for i, p in enumerate(probs):
            lab = label_ids[i]
            unc = Uncertainty(float(dec.total[i]), float(dec.aleatoric[i]), float(dec.epistemic[i]))
            reasoning = None
            if effects is not None:
                reasoning = reasoning_steps(
                    effects[i], self.labels[lab], self.labels, p[lab], enc[i].n_tokens, len(seqs[i]) - 2,
                    self.ckpt.cfg.views.n_views, unc.total, unc.aleatoric, unc.epistemic, fam[i],
                )
            out.append(Prediction(
                label_id=lab, label=self.labels[lab], confidence=float(p[lab]),
                probabilities={name: float(x) for name, x in zip(self.labels, p)},
                uncertainty=unc, cot_length=cot_length(enc[i].n_tokens, p[lab]), reasoning=reasoning,
            ))
        return out
