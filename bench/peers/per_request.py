"""Peer: the per-request pattern of tutorials. A FastAPI handler runs the model once per
request (a plain `def`, so FastAPI runs it in its thread pool); no batching.

    python -m bench.peers.per_request --port 8100"""
from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from model.predictor import Predictor


class Request(BaseModel):
    text: str
    confidence_threshold: float = 0.5


def create_app(predictor: Predictor) -> FastAPI:
    app = FastAPI()

    @app.get("/health/ready")
    def ready() -> dict:
        return {"status": "ok"}

    @app.post("/v1/predict")
    def predict(request: Request) -> dict:
        [p] = predictor.predict([request.text])
        return {"prediction": p.label, "label_id": p.label_id, "confidence": p.confidence,
                "probabilities": p.probabilities,
                "uncertainty": {"total": p.uncertainty.total, "aleatoric": p.uncertainty.aleatoric,
                                "epistemic": p.uncertainty.epistemic}}

    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(create_app(Predictor.load()), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
