"""Peer: MLServer 1.7.1 serving the same model through a custom runtime, with MLServer's own
adaptive batching (bench/peers/mlserver/model-settings.json: max batch 32, 5 ms). Runs in
its own environment (bench/.venv-mlserver, `make bench-mlserver-env`), never the project's
.venv; torch and model/ come from the project through a .pth file.

    MLSERVER_HTTP_PORT=8300 MLSERVER_GRPC_PORT=8301 bench/.venv-mlserver/bin/mlserver start bench/peers/mlserver

Open Inference Protocol (V2): `POST /v2/models/bet/infer` or gRPC `ModelInfer` with a BYTES
input "text" of shape [n]; outputs per text: label, label_id, confidence, probabilities
[n, labels] and the uncertainty split (total, aleatoric, epistemic, in nats)."""
from __future__ import annotations

import os
import time

from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.logging import logger
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

LOG_EVERY_S = 5.0  # the batch sizes seen, a line at most this often (the bench checks batching)


class BetRuntime(MLModel):
    async def load(self) -> bool:
        import torch

        from model.predictor import Predictor

        # torch threads in the process that runs the model (model-settings.json
        # parameters.extra.torch_threads; 0 or absent: torch's default, one a core)
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        if int(extra.get("torch_threads", 0)) > 0:
            torch.set_num_threads(int(extra["torch_threads"]))
        self.predictor = Predictor.load()
        self.batches = self.texts = self.largest = 0
        self.logged = time.monotonic()
        logger.info(f"bet runtime loaded in pid {os.getpid()}, {torch.get_num_threads()} torch threads")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # With adaptive batching MLServer hands over one request merged from up to
        # max_batch_size requests; the model runs once for all of its texts.
        [text_input] = [i for i in payload.inputs if i.name == "text"]
        texts = StringCodec.decode_input(text_input)
        preds = self.predictor.predict(texts)
        self._count(len(texts))
        n, labels = len(preds), self.predictor.labels
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=[
            StringCodec.encode_output("label", [p.label for p in preds]),
            ResponseOutput(name="label_id", shape=[n], datatype="INT64", data=[p.label_id for p in preds]),
            ResponseOutput(name="confidence", shape=[n], datatype="FP64", data=[p.confidence for p in preds]),
            ResponseOutput(name="probabilities", shape=[n, len(labels)], datatype="FP64",
                           data=[p.probabilities[lab] for p in preds for lab in labels]),
            ResponseOutput(name="uncertainty_total", shape=[n], datatype="FP64",
                           data=[p.uncertainty.total for p in preds]),
            ResponseOutput(name="uncertainty_aleatoric", shape=[n], datatype="FP64",
                           data=[p.uncertainty.aleatoric for p in preds]),
            ResponseOutput(name="uncertainty_epistemic", shape=[n], datatype="FP64",
                           data=[p.uncertainty.epistemic for p in preds]),
        ])

    def _count(self, size: int) -> None:
        self.batches += 1
        self.texts += size
        self.largest = max(self.largest, size)
        now = time.monotonic()
        if now - self.logged >= LOG_EVERY_S:
            logger.info(f"bet batches: {self.batches} batches, {self.texts} texts, "
                        f"mean {self.texts / self.batches:.2f}, largest {self.largest} (pid {os.getpid()})")
            self.logged = now
