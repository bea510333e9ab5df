"""The batched inference API the serving core calls: texts in, one Prediction per text."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from . import checkpoint, windows
from .config import SHAPE_SCORES
from .cot import cot_length
from .evidence import occlusion, reasoning_steps
from .expectation import Expectation
from .network import COMPUTE_DTYPES
from .types import ModelInfo, Prediction, Uncertainty
from .uncertainty import PieceShape
from .views import text_seed

_HANGUL = re.compile("[\uac00-\ud7a3]")
log = logging.getLogger(__name__)


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bfloat16(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 in hardware: on CUDA, as torch says; on a CPU,
    by the processor's flags (x86: AVX512_BF16 or AMX; Arm: BF16). Without it, bfloat16 is
    emulated and slower than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = {word for line in fh if line.lower().startswith(("flags", "features")) for word in line.split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


class Predictor:
    def __init__(self, ckpt: checkpoint.Checkpoint, device: torch.device, dtype: str = "float32"):
        """dtype: the precision of the transformer blocks (network.COMPUTE_DTYPES): float32,
        or bfloat16, faster where the processor multiplies it natively, and off float32's
        answers by a few thousandths at most (bench/README.md, "bfloat16 blocks")."""
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype {dtype!r}: one of {', '.join(COMPUTE_DTYPES)}")
        self.ckpt = ckpt
        self.device = device
        self.dtype = dtype
        if dtype == "bfloat16" and not native_bfloat16(device):  # served, evaluated or benched alike
            log.warning("bfloat16 blocks on a device without native bfloat16: slower than float32",
                        extra={"fields": {"device": str(device)}})
        ckpt.encoder.compute_in(COMPUTE_DTYPES[dtype])
        # a head fitted without the shape scores reads them as off: no need to compute them
        shape = None if set(SHAPE_SCORES) <= set(ckpt.cfg.head.scores_off()) else PieceShape.of(ckpt.tokenizer)
        self.expectation = Expectation(ckpt.encoder, ckpt.density, ckpt.unigram, ckpt.cfg, device, ckpt.ngrams, shape)
        self.labels: list[str] = list(ckpt.labels)
        self.version: str = str(ckpt.metadata.get("version", "unknown"))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None, dtype: str = "float32") -> Predictor:
        dev = pick_device(device)
        return cls(checkpoint.load(path, dev), dev, dtype)

    def info(self) -> ModelInfo:
        c = self.ckpt
        return ModelInfo(
            name=str(c.metadata.get("name", "bet")), version=self.version, labels=self.labels,
            n_views=c.cfg.views.n_views, n_draws=c.cfg.views.n_draws,
            window_pieces=windows.window_pieces(c.cfg.network), max_windows=c.cfg.views.max_windows,
            digest=c.digest, created_at=str(c.metadata.get("created_at", "")),
            config={**c.cfg.to_dict(), "compute_dtype": self.dtype}, metrics=dict(c.metrics),
        )

    def windows(self, texts: Sequence[str]) -> list[int]:
        """The most windows each text takes in a view: its cost in forward passes per view.
        Raises windows.TooLong past the most windows. The batcher asks for every request,
        on the event loop: a text no longer than a window in characters (outside Hangul,
        whose syllables split into jamo, no character gives two pieces) is one window
        without tokenizing; only longer ones are tokenized."""
        cfg = self.ckpt.cfg
        width = windows.window_pieces(cfg.network)
        long = [i for i, t in enumerate(texts) if len(t) > width or _HANGUL.search(t)]
        counts = [1] * len(texts)
        for i, body in zip(long, self.ckpt.tokenizer.bodies([texts[i] for i in long]), strict=True):
            counts[i] = windows.checked(len(body), cfg.views, cfg.network)
        return counts

    def predict(self, texts: Sequence[str], *, with_reasoning: bool = False) -> list[Prediction]:
        """Raises windows.TooLong for a text of more than max_windows windows."""
        if not texts:
            return []
        bodies = self.ckpt.tokenizer.bodies(texts)
        seeds = [text_seed(t) for t in texts]
        out = self.expectation.raw(bodies, seeds)
        r = self.expectation.similarity(out, bodies)
        dec = self.expectation.combine(out, r)
        probs = dec.probs.tolist()
        label_ids = [max(range(len(p)), key=p.__getitem__) for p in probs]
        effects = None
        if with_reasoning:
            effects = occlusion(self.expectation, self.ckpt.tokenizer, bodies, seeds, label_ids, probs)
        fam = r.mean(1).tolist()
        views = self.ckpt.cfg.views
        width = windows.window_pieces(self.ckpt.cfg.network)
        answers = []
        for i, p in enumerate(probs):
            lab = label_ids[i]
            n = len(bodies[i])
            unc = Uncertainty(float(dec.total[i]), float(dec.aleatoric[i]), float(dec.epistemic[i]))
            reasoning = None
            if effects is not None:
                reasoning = reasoning_steps(
                    effects[i], self.labels[lab], self.labels, p[lab], n, max(1, -(-n // width)),
                    views.n_views, views.n_draws, unc.total, unc.aleatoric, unc.epistemic, fam[i],
                )
            answers.append(Prediction(
                label_id=lab, label=self.labels[lab], confidence=float(p[lab]),
                probabilities={name: float(x) for name, x in zip(self.labels, p, strict=True)},
                uncertainty=unc, cot_length=cot_length(n, p[lab]), reasoning=reasoning,
            ))
        return answers
